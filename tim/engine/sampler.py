"""Sampling: greedy or temperature / top-k / top-p, seeded per stream, grammar masks in plain torch."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = ["SamplingParams", "Sampled", "sample", "stream_generator", "apply_token_bitmask"]


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is picked. ``temperature == 0`` is greedy.

    Examples
    --------
    >>> SamplingParams(temperature=0.7, top_p=0.95).greedy
    False
    >>> SamplingParams(top_p=1.5)
    Traceback (most recent call last):
    ...
    ValueError: top_p must be in (0, 1], got 1.5
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    tool_bias: float = 0.0  # nats added to a call at every tooluse choice (tim.engine.tool_bias)

    def __post_init__(self) -> None:
        if not math.isfinite(self.tool_bias):
            raise ValueError(f"tool_bias must be a finite number of nats, got {self.tool_bias!r}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class Sampled(NamedTuple):
    token_ids: torch.Tensor  # (B,) int64
    logprobs: torch.Tensor  # (B,) fp32, raw model log-probability of the chosen token, before any mask


def stream_generator(seed: int, stream_key: str) -> torch.Generator:
    """A CPU generator seeded by (run seed, stream), so sampling does not depend on scheduling."""
    digest = hashlib.blake2b(f"{seed}:{stream_key}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


def apply_token_bitmask(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """Set disallowed tokens to -inf.

    logits: (B, V) float; bitmask: (B, ceil(V / 32)) int32, bit j of word w allows token 32*w + j
    (llguidance's layout). Returns a new tensor.
    """
    num_words = bitmask.shape[1]
    bits = torch.arange(32, dtype=torch.int32, device=bitmask.device)
    allowed = ((bitmask.unsqueeze(-1) >> bits) & 1).bool().reshape(bitmask.shape[0], num_words * 32)
    vocab = logits.shape[1]
    if allowed.shape[1] < vocab:  # tokens past the mask's vocabulary are never allowed
        allowed = torch.nn.functional.pad(allowed, (0, vocab - allowed.shape[1]))
    return logits.masked_fill(~allowed[:, :vocab], float("-inf"))


def sample(
    logits: torch.Tensor,
    params: SamplingParams,
    generators: list[torch.Generator],
    bitmask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> Sampled:
    """Pick one token per row of ``logits`` (B, V), after adding ``bias`` (B, V) if given.

    The recorded log-probability is the model's own (log_softmax of the raw logits), so the
    oracles can compare it with a plain forward whatever mask, bias or temperature was used.
    """
    logits = logits.float()
    raw_logprobs = torch.log_softmax(logits, dim=-1)  # (B, V)
    if bias is not None:
        logits = logits + bias
    masked = apply_token_bitmask(logits, bitmask) if bitmask is not None else logits
    if params.greedy:
        token_ids = masked.argmax(dim=-1)
    else:
        token_ids = torch.stack(
            [_sample_row(row, params, gen) for row, gen in zip(masked, generators, strict=True)]
        )
    chosen = raw_logprobs.gather(1, token_ids[:, None]).squeeze(1)
    return Sampled(token_ids=token_ids, logprobs=chosen)


def _sample_row(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator) -> torch.Tensor:
    scaled = logits / params.temperature  # (V,)
    if params.top_k:
        kth = torch.topk(scaled, min(params.top_k, scaled.numel())).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = sorted_probs.cumsum(0) - sorted_probs >= params.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=gen).squeeze(0)
