"""One stress run: a forced tree shape, far past the context window, with oracle O6 checked.

This module owns running: resolving the model, building the prompt and the engine, stepping
it under the window and checking O6 on what it recorded. The report it fills, and the
errors a failure names, are :mod:`tim.stress.outcome`'s (re-exported here).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from tim.errors import TimError, recorded_error_is
from tim.stress.outcome import (
    PositionWindowError,
    StressCheckError,
    StressReport,
    decile_rates,
    expected_to_hold,
)
from tim.stress.shape import Content, StressShape, check_segments, make_lookup, stream_segments

__all__ = [
    "PositionWindowError",
    "StressCheckError",
    "StressReport",
    "compare",
    "decile_rates",
    "expected_to_hold",
    "stress",
]

PRUNING_RULES = ("none", "buffer:0", "buffer:1", "buffer:2")
DEFAULT_QUESTION = "Work through a long plan, one small step at a time."


def stress(
    model: Any = None,
    *,
    shape: StressShape | None = None,
    format: str = "thread2",
    positions: str = "shift",
    pruning: str = "buffer:0",
    window: int | None = None,
    kv_budget_tokens: int | None = None,
    max_workers: int = 4,
    cascade: bool = True,
    siblings: str = "isolated",
    temperature: float = 0.0,
    seed: int = 0,
    question: str = DEFAULT_QUESTION,
    instructions: bool | None = None,
    replay: Any = None,
) -> StressReport:
    """Run one forced-shape tree and check oracle O6 on it.

    Parameters
    ----------
    model : str, LoadedModel, (model, tokenizer) or None
        None: a tiny random Qwen3 (2 layers, hidden 64, ``max_position_embeddings=512``).
        A string goes to :func:`tim.models.load_model` (e.g. ``"smollm2-135m"``).
    shape : StressShape
        Depth, fan-out, tokens per field, top-level tasks, tool calls, needle.
    format, positions, pruning, max_workers, cascade, siblings
        See :class:`tim.engine.config.EngineConfig`.
    window : int, optional
        The context window positions must stay below; default the model's
        ``max_position_embeddings``. A smaller one makes a real model's run shorter. It is
        the engine's ``max_position``: the engine ends a run that would feed a position at
        or past it, before that forward (``PositionWindowError`` in ``report.failure``).
    kv_budget_tokens : int, optional
        KV slots in the page pool; default ``window``.
    temperature, seed
        Content sampling: greedy at 0, else seeded per stream.
    question : str
        The user message of the prompt.
    instructions : bool, optional
        Put the format's instructions in the prompt (chat template). Default: only for a
        named model (the tiny model's byte tokens would fill its window).
    replay : RunRecord, optional
        Teacher-force the sampled tokens of an earlier run (``report.record``) instead of
        sampling, so that runs under other rules, policies or models write the same tokens.
        The record must come from the same shape, format, question and tokenizer.

    Returns
    -------
    StressReport
        Failures (``KVBudgetError``, ``PositionWindowError``, ...) are recorded in
        ``report.failure``, never raised.

    Raises
    ------
    ValueError
        For a bad configuration value, quoted.
    TimError
        When the model cannot be loaded or run.

    Examples
    --------
    >>> from tim.stress import StressShape, stress
    >>> report = stress(shape=StressShape(num_tasks=2, depth=2, fanout=2, thought_tokens=4,
    ...                                   conclusion_tokens=4, answer_tokens=4))
    >>> report.ok, report.max_position_id < report.window
    (True, True)
    """
    import torch

    from tim.engine.choosers import TokenReplay
    from tim.engine.config import EngineConfig
    from tim.engine.engine import Engine
    from tim.models.spec import inspect_model
    from tim.result import tree_of_record
    from tim.stress.chooser import ShapeChooser, allowed_token_mask

    shape = shape or StressShape()
    loaded, name = resolve_model(model)
    lm, tokenizer = loaded[0], loaded[1]
    spec = inspect_model(lm)
    window = _window(window, spec.max_position_embeddings)
    budget = window if kv_budget_tokens is None else kv_budget_tokens
    segments = stream_segments(shape, format)
    check_segments(shape, format, segments)
    tools = (make_lookup(shape.tool_result_chars),) if shape.tool_calls != "none" else ()
    upper = sum(s.num_tokens if isinstance(s, Content) else len(s.text)
                for segs in segments.values() for s in segs)  # chars bound literal tokens
    config = EngineConfig(
        format=format, max_workers=max_workers, cascade=cascade, pruning=pruning,
        positions=positions, siblings=siblings, max_position=window,
        max_new_tokens=upper + 16, kv_budget_tokens=budget, structure="free",
        max_depth=shape.depth, max_fanout=max(shape.fanout, shape.num_tasks),
    )
    with_instructions = isinstance(model, str) if instructions is None else instructions
    prompt = _prompt(tokenizer, format, tools, question, with_instructions)
    report = StressReport(name, format, positions, pruning, shape, window, budget,
                          prompt_tokens=len(prompt))
    if replay is None:
        chooser = ShapeChooser(segments, tokenizer,
                               allowed_token_mask(tokenizer, spec.vocab_size),
                               temperature=temperature, seed=seed)
    elif list(replay.prompt_ids) != prompt:
        raise ValueError("replay: the record's prompt differs from this run's; replay a record "
                         "made with the same question, instructions and tokenizer")
    else:
        chooser = TokenReplay.from_record(replay)
    engine = Engine(lm, tokenizer, config, tools=tools)
    seen: list[Any] = []  # the record, kept even when run() raises
    rows: list[tuple[int, int, int, int, float]] = []  # (written, processed, live, max pos, t)

    def on_step(record: Any) -> None:
        if not seen:
            seen.append(record)
        row = record.timeline[-1]
        processed, live = row.num_processed, row.live_tokens
        written = len(prompt) + record.num_generated + record.num_forced
        rows.append((written, processed, live, record.max_position, time.perf_counter() - start))

    start = time.perf_counter()
    with torch.inference_mode():
        try:  # the engine stops at the window: a PositionWindowError, raised or recorded
            record = engine.run(prompt, chooser=chooser, on_step=on_step)
        except TimError as exc:
            record = seen[0] if seen else None
            report.failure = f"{type(exc).__name__}: {exc}"
    report.wall_time_s = time.perf_counter() - start
    if record is not None:
        report.record = record
        _fill(report, record, rows)
    if report.failure is None:
        report.failure = _check(report, record, shape, tree_of_record(record))
    return report


def compare(
    model: Any = None,
    *,
    positions: Sequence[str] | None = None,
    pruning: Sequence[str] = PRUNING_RULES,
    **kwargs: Any,
) -> list[StressReport]:
    """One :func:`stress` run per (position policy, pruning rule), on one loaded model.

    ``positions`` defaults to every :class:`~tim.cache.PositionPolicy`. ``kwargs`` go to
    every run. Runs expected to fail (``keep``, ``none``) stop at their first broken bound,
    so they cost little.

    Examples
    --------
    >>> from tim.stress import StressShape, compare
    >>> reports = compare(shape=StressShape(num_tasks=2, depth=3, fanout=3),
    ...                   positions=["shift", "keep"], pruning=["buffer:0"])
    >>> [(r.positions, r.failure_name) for r in reports]
    [('shift', None), ('keep', 'PositionWindowError')]
    """
    if kwargs.get("instructions") is None:  # as stress() decides it, before loading
        kwargs["instructions"] = isinstance(model, str)
    if positions is None:
        from tim.cache import PositionPolicy

        positions = [policy.value for policy in PositionPolicy]
    loaded, _ = resolve_model(model)
    return [stress(loaded, positions=pos, pruning=rule, **kwargs)
            for pos in positions for rule in pruning]


def _window(window: int | None, model_window: int | None) -> int:
    window = window if window is not None else model_window
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    if model_window is not None and window > model_window:
        raise ValueError(f"window must be at most the model's max_position_embeddings "
                         f"({model_window}), got {window!r}")
    return window


def _prompt(tokenizer: Any, format: str, tools: Sequence[Any], question: str,
            instructions: bool) -> list[int]:
    """The chat-template prompt with the format's instructions, or the bare question."""
    if not instructions:
        return tokenizer.encode(question + "\n", add_special_tokens=False)
    from tim.prompt import build_prompt
    from tim.tools import ToolRegistry
    from tim.tree import get_format

    text = get_format(format).instructions(ToolRegistry(tools).specs)
    return build_prompt(tokenizer, text, question)


def _fill(report: StressReport, record: Any, rows: list[tuple[int, int, int, int, float]]) -> None:
    report.total_tokens = report.prompt_tokens + record.num_generated + record.num_forced
    report.tokens_processed = rows[-1][1] if rows else 0
    report.peak_live_tokens = record.peak_live_tokens
    report.max_position_id = record.max_position
    report.num_evicted = record.num_evicted
    report.num_steps = record.num_steps
    report.timeline = [row[1:] for row in rows]
    report.decile_tokens_per_s = decile_rates([(row[0], row[-1]) for row in rows[1:]])


def _check(report: StressReport, record: Any, shape: StressShape, tree: Any) -> str | None:
    """The O6 checks on a run that finished; a failure string, or None."""
    if recorded_error_is(record.error, PositionWindowError):  # the engine stopped it there
        return record.error
    if record.error is not None:
        return f"StressCheckError: the run ended early: {record.error}"
    if report.peak_live_tokens > report.kv_budget_tokens:
        return (f"StressCheckError: peak live KV {report.peak_live_tokens} tokens > budget "
                f"{report.kv_budget_tokens}")
    if tree is None or sum(1 for _ in tree.walk()) != shape.num_task_nodes:
        return "StressCheckError: the streams' text is not a tree of the forced shape"
    report.answer = tree.answer
    if shape.needle is not None:
        report.needle_answered = shape.needle in (tree.answer or "")
    return None


def resolve_model(model: Any) -> tuple[Any, str]:
    """``(LoadedModel-like (model, tokenizer, ...), display name)`` for ``stress(model=...)``."""
    from tim.models import load_model
    from tim.stress.model import stress_model

    if model is None:
        loaded = stress_model()
        return loaded, loaded.name
    if isinstance(model, str):
        loaded = load_model(model, quiet=True)
        return loaded, loaded.name
    if isinstance(model, tuple) and len(model) >= 2:  # LoadedModel is a tuple too
        name = model[2] if len(model) > 2 else type(model[0]).__name__
        return model, str(name)
    raise ValueError(f"model must be None, a name, a LoadedModel or a (model, tokenizer) "
                     f"pair, got {type(model).__name__}")
