"""Shared pieces of the engine tests: an eager copy of a model and a plain HF forward."""

from __future__ import annotations

import copy

import pytest
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


@pytest.fixture(autouse=True)
def pool_checked_after_every_step(monkeypatch):
    """Every engine test checks the page pool from scratch after every step of every run
    (reference counts equal the references held, no page freed while in use)."""
    from tim.engine.run import Run

    postprocess = Run.postprocess
    steps = []

    def checked(run, fed, logits):
        postprocess(run, fed, logits)
        integrity = run.executor.store.check_integrity()
        assert integrity.num_live_tokens == run.executor.store.num_live_tokens
        steps.append(run.record.num_steps)

    monkeypatch.setattr(Run, "postprocess", checked)
    yield steps
