"""Shared pieces of the engine tests: a capturing chooser and the Hugging Face oracle."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from tim.engine.choosers import TextReplay


@dataclass
class Snapshot:
    path: tuple
    view_ids: list[int]
    view_positions: list[int]
    token: int
    logprob: float


class CapturingReplay(TextReplay):
    """TextReplay that also snapshots each sampling stream's view at the moment of choice."""

    def __init__(self, texts, tokenizer) -> None:
        super().__init__(texts, tokenizer)
        self.snapshots: list[Snapshot] = []

    def choose(self, streams, logits, bitmask=None):
        picked = super().choose(streams, logits, bitmask)
        for stream, (token, logprob) in zip(streams, picked, strict=True):
            self.snapshots.append(Snapshot(
                stream.path, stream.view.token_ids().tolist(),
                stream.view.position_ids().tolist(), token, logprob,
            ))
        return picked


def eager_copy(model):
    ref = copy.deepcopy(model)
    ref.set_attn_implementation("eager")
    return ref


@torch.no_grad()
def hf_logprobs(ref_model, ids: list[int], positions: list[int]) -> torch.Tensor:
    """(len(ids), V) log-probabilities of a plain HF forward over ``ids`` at ``positions``."""
    out = ref_model(
        input_ids=torch.tensor([ids]), position_ids=torch.tensor([positions]), use_cache=False
    )
    return torch.log_softmax(out.logits[0].float(), dim=-1)


def max_oracle_error(ref_model, snapshots: list[Snapshot], *, contiguous: bool) -> float:
    """Largest |engine logprob - HF logprob| over all snapshots.

    Each snapshot's view is run through HF (at the view's positions, or at 0..n-1 when
    ``contiguous``); a snapshot whose view extends the previous one reuses its forward.
    """
    worst = 0.0
    cache: tuple[list[int], list[int], torch.Tensor] | None = None
    for snap in sorted(snapshots, key=lambda s: (s.path, len(s.view_ids)), reverse=True):
        positions = list(range(len(snap.view_ids))) if contiguous else snap.view_positions
        n = len(snap.view_ids)
        if cache is None or cache[0][:n] != snap.view_ids or cache[1][:n] != positions:
            cache = (snap.view_ids, positions, hf_logprobs(ref_model, snap.view_ids, positions))
        expected = cache[2][n - 1, snap.token].item()
        worst = max(worst, abs(expected - snap.logprob))
    return worst
