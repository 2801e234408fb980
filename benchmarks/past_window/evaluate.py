"""Run both trained models on held-out questions, in every configuration, and keep
what each run did.

Configurations (``CONFIGS``):

- ``tree-shift``: the tree model through tim, ``buffer:k``, positions ``shift``;
- ``tree-reencode``: the same with ``reencode`` (recomputes what ``shift`` rotates);
- ``tree-keep``: the same with ``keep``; positions keep growing, and the engine stops the
  run with ``PositionWindowError`` before a position reaches the window (every tree run
  gets ``max_position=window``);
- ``flat-truncate``: the flat model, plain generation, stopped when the window is full;
- ``flat-sliding``: the flat model with a sliding window that keeps the prompt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .data import encode_problem
from .flat import decode_flat
from .task import Problem, answer_of, make_tools

__all__ = ["CONFIGS", "RunOutcome", "run_tree", "run_flat", "run_config"]

CONFIGS = ("tree-shift", "tree-reencode", "tree-keep", "flat-truncate", "flat-sliding")
MAX_DEPTH = 12  # the grammar's only limits: depth and fan-out far above what a question needs
MAX_FANOUT = 4


@dataclass(frozen=True)
class RunOutcome:
    """One question in one configuration."""

    config: str
    height: int
    seed: int
    expected: str
    answer: str | None
    failure: str | None
    prompt_tokens: int
    num_generated: int
    num_forced: int
    num_evicted: int  # tokens that left the KV cache (pruned, or slid out)
    peak_live_tokens: int
    max_position: int
    wall_time_s: float
    flat_trace_tokens: int  # the reference flat trace, to place the run against the window

    @property
    def correct(self) -> bool:
        return self.answer == self.expected

    @property
    def num_tokens(self) -> int:
        """Every token of the run: prompt, generated and forced."""
        return self.prompt_tokens + self.num_generated + self.num_forced

    @property
    def pruned_share(self) -> float:
        return self.num_evicted / self.num_tokens if self.num_tokens else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.num_generated / self.wall_time_s if self.wall_time_s else 0.0


def _budget(forced: tuple[bool, ...]) -> int:
    """Generated-token budget: twice the reference trace's sampled tokens, plus slack."""
    return 2 * sum(not f for f in forced) + 64


def run_tree(model: Any, tokenizer: Any, problem: Problem, *, positions: str, k: int,
             window: int) -> RunOutcome:
    """The tree model through tim (``thread2``, grammar on, greedy) on one question."""
    import torch

    import tim
    from tim.engine.sampler import SamplingParams
    from tim.errors import PositionWindowError, TimError, recorded_error_is
    from tim.result import tree_of_record

    enc = encode_problem(tokenizer, problem)
    config = tim.EngineConfig(format="thread2", pruning=f"buffer:{k}", positions=positions,
                              max_depth=MAX_DEPTH, max_fanout=MAX_FANOUT,
                              kv_budget_tokens=4 * window, max_workers=1, max_position=window)
    engine = tim.Engine(model, tokenizer, config, tools=list(make_tools(problem)))
    seen: list[Any] = []  # the record, kept when run() raises (KVBudgetError, ...)

    def on_step(record: Any) -> None:
        if not seen:
            seen.append(record)

    failure = None
    start = time.perf_counter()
    with torch.inference_mode():
        try:
            record = engine.run(list(enc.prompt), sampling=SamplingParams(temperature=0.0),
                                on_step=on_step,
                                max_new_tokens=_budget(enc.tree_forced))
        except TimError as exc:
            if not seen:  # nothing ran: a prompt longer than the window, a bad model
                raise
            record, failure = seen[0], type(exc).__name__
    wall = time.perf_counter() - start
    if recorded_error_is(record.error, PositionWindowError):
        failure = PositionWindowError.__name__  # by name, as the report counts failures
    tree = tree_of_record(record) if failure is None else None
    failure = failure or record.error or (None if tree is not None else "no tree")
    return RunOutcome(
        config=f"tree-{positions}", height=problem.height, seed=problem.seed,
        expected=answer_of(problem), answer=tree.answer if tree is not None else None,
        failure=failure, prompt_tokens=len(enc.prompt), num_generated=record.num_generated,
        num_forced=record.num_forced, num_evicted=record.num_evicted,
        peak_live_tokens=record.peak_live_tokens, max_position=record.max_position,
        wall_time_s=wall, flat_trace_tokens=len(enc.prompt) + len(enc.flat_ids))


def run_flat(model: Any, tokenizer: Any, problem: Problem, *, mode: str,
             window: int) -> RunOutcome:
    """The flat model with plain generation (``truncate``) or a sliding window."""
    enc = encode_problem(tokenizer, problem)
    out = decode_flat(model, tokenizer, list(enc.prompt), problem, mode=mode, window=window,
                      max_new_tokens=_budget(enc.flat_forced))
    return RunOutcome(
        config=f"flat-{mode}", height=problem.height, seed=problem.seed,
        expected=answer_of(problem), answer=out.answer, failure=out.failure,
        prompt_tokens=len(enc.prompt), num_generated=out.num_generated,
        num_forced=out.num_forced, num_evicted=out.num_dropped,
        peak_live_tokens=out.peak_live_tokens, max_position=out.max_position,
        wall_time_s=out.wall_time_s, flat_trace_tokens=len(enc.prompt) + len(enc.flat_ids))


def run_config(config: str, *, tree_model: Any, flat_model: Any, tokenizer: Any,
               problem: Problem, k: int, window: int) -> RunOutcome:
    """One question in one of :data:`CONFIGS`."""
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {CONFIGS}, got {config!r}")
    kind, variant = config.split("-")
    if kind == "tree":
        return run_tree(tree_model, tokenizer, problem, positions=variant, k=k, window=window)
    return run_flat(flat_model, tokenizer, problem, mode=variant, window=window)
