"""Shared pieces of the engine tests: an eager copy of a model and a plain HF forward."""

from __future__ import annotations

import copy

import torch


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
