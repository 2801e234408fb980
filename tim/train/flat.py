"""The flat baseline: the same solver steps as one serialized trace (APR's SoS-style), trained
on and decoded with plain Hugging Face caching in a window of ``W`` tokens.

A task tree becomes lines, depth-first: a task opens with ``title: thought``; a tool call
follows as `` | name {json}`` and the runtime writes `` = result`` (forced); a task with
subtasks writes its children's lines, then ``title => conclusion``; a leaf ends its line with
`` => conclusion``; the trace ends with ``answer: ...``::

    hops 1-2: from 180
    hop 1: from 180 | lookup {"key": "180"} = "839" => 839
    hop 2: from 839 | lookup {"key": "839"} = "521" => 521
    hops 1-2 => 521
    answer: 521

Two ways to live in ``W`` tokens (:func:`decode_flat`):

- ``truncate``: plain generation; the run stops when the window is full;
- ``sliding``: StreamingLLM-style; the prompt stays as the attention sink and when the cache
  is full the oldest written tokens leave, keeping the newest half of the room, re-encoded
  at contiguous positions (so positions stay below ``W``).

Training windows (:func:`flat_windows`) show the model what each mode shows it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tim.tree import Task, TaskTree

from .views import IGNORE, TrainingView

__all__ = ["FLAT_MODES", "FlatOutcome", "flat_segments", "flat_windows", "decode_flat",
           "flat_answer", "flat_prompt"]

FLAT_MODES = ("truncate", "sliding")
ANSWER = "answer: "
_ANSWER = re.compile(r"(?:^|\n)answer: ([^\n]*)\n")
_CALL = re.compile(r" \| (\w+) (\{[^\n]*\})$")


def flat_segments(tree: TaskTree) -> list[tuple[str, bool]]:
    """The trace as ``(text, forced)`` segments (forced: a tool result the runtime writes).

    >>> from tim.train.families import make_example
    >>> "".join(t for t, _ in flat_segments(make_example("chain", 1, 3).tree)).splitlines()
    ... # doctest: +NORMALIZE_WHITESPACE
    ['hops 1-2: from 180', 'hop 1: from 180 | lookup {"key": "180"} = "839" => 839',
     'hop 2: from 839 | lookup {"key": "839"} = "521" => 521', 'hops 1-2 => 521',
     'answer: 521']
    """
    out: list[tuple[str, bool]] = []
    for task in tree.reasoning:
        _task(task, out)
    out.append((f"{ANSWER}{tree.answer}\n", False))
    return _merged(out)


def _task(task: Task, out: list[tuple[str, bool]]) -> None:
    out.append((f"{task.title}: {task.thought}", False))
    if task.tooluse is not None:
        params = json.dumps(task.tooluse.parameters)
        out.append((f" | {task.tooluse.tool_name} {params}", False))
        out.append((f" = {json.dumps(task.tooluse.tool_result)}", True))
    if task.subtasks:
        out.append(("\n", False))
        for child in task.subtasks:
            _task(child, out)
        out.append((f"{task.title} => {task.conclusion}\n", False))
    else:
        out.append((f" => {task.conclusion}\n", False))


def _merged(segments: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for text, forced in segments:
        if out and out[-1][1] == forced:
            out[-1] = (out[-1][0] + text, forced)
        else:
            out.append((text, forced))
    return out


def flat_prompt(tokenizer: Any, question: str, tool_specs: Sequence[Any]) -> list[int]:
    """The flat model's prompt: the same as the tree model's (tools, then the question)."""
    from tim.prompt import build_prompt, tool_lines

    return build_prompt(tokenizer, tool_lines(tool_specs), question)


def encode_trace(tokenizer: Any, segments: Sequence[tuple[str, bool]]) -> tuple[list[int],
                                                                              list[bool]]:
    """Token ids of the trace and whether each is forced, segment by segment (as decoding
    meets them: the model's text, then the forced result), plus the end-of-sequence."""
    ids: list[int] = []
    forced: list[bool] = []
    for text, is_forced in segments:
        part = tokenizer.encode(text, add_special_tokens=False)
        ids += part
        forced += [is_forced] * len(part)
    return ids, forced


def flat_windows(prompt: Sequence[int], ids: Sequence[int], forced: Sequence[bool], *,
                 window: int, mode: str) -> list[TrainingView]:
    """The training windows of one flat trace under ``mode`` in ``window`` tokens, as
    :func:`decode_flat` holds them.

    ``truncate``: the prompt and the trace's first ``room = window - len(prompt)`` tokens.
    ``sliding``: that window, then each window the decoder holds after a slide: the prompt
    and the newest ``room // 2`` tokens, grown back to full, with labels only on the tokens
    predicted in it. A full window's last position predicts the token after it.

    >>> views = flat_windows([1, 2], list(range(10, 20)), [False] * 10, window=8,
    ...                      mode="sliding")
    >>> [(v.input_ids, v.num_labels) for v in views]  # doctest: +NORMALIZE_WHITESPACE
    [((1, 2, 10, 11, 12, 13, 14, 15), 7), ((1, 2, 14, 15, 16, 17, 18, 19), 3)]
    """
    if mode not in FLAT_MODES:
        raise ValueError(f"mode must be one of {FLAT_MODES}, got {mode!r}")
    room = window - len(prompt)
    if room < 2:
        raise ValueError(f"the prompt ({len(prompt)} tokens) leaves no room in a window of "
                         f"{window}")
    views, start, first = [], 0, 0
    while True:
        end = min(len(ids), start + room)
        seq = list(prompt) + list(ids[start:end])
        labels = [IGNORE] * len(seq)
        for t in range(max(first, start), min(end, len(ids) - 1) + 1):
            if not forced[t]:
                labels[len(prompt) + t - 1 - start] = ids[t]
        views.append(TrainingView((), tuple(seq), tuple(range(len(seq))), tuple(labels)))
        if end >= len(ids) or mode == "truncate":
            break
        first = end + 1
        start = end + 1 - room // 2
    return [v for v in views if v.num_labels]


@dataclass(frozen=True)
class FlatOutcome:
    """One flat run: its answer (None: it never wrote one) and what it cost."""

    answer: str | None
    text: str
    failure: str | None
    num_generated: int
    num_forced: int
    num_processed: int
    peak_live_tokens: int
    max_position: int
    wall_time_s: float


def flat_answer(text: str) -> str | None:
    """The answer a flat trace wrote, if it wrote one.

    >>> flat_answer("p => 3\\nanswer: 42\\n"), flat_answer("p => 3\\nansw")
    ('42', None)
    """
    match = _ANSWER.search(text)
    return None if match is None else match.group(1).strip()


def decode_flat(model: Any, tokenizer: Any, prompt: list[int], tools: Sequence[Callable], *,
                mode: str, window: int, max_new_tokens: int) -> FlatOutcome:
    """Greedy-decode a flat trace after ``prompt`` in ``window`` tokens; run a tool when a
    line ends in a call (`` | name {json}``) and force `` = result``."""
    import torch
    from transformers import DynamicCache

    if mode not in FLAT_MODES:
        raise ValueError(f"mode must be one of {FLAT_MODES}, got {mode!r}")
    if len(prompt) >= window // 2:
        raise ValueError(f"the prompt ({len(prompt)} tokens) must be under half the window "
                         f"({window})")
    by_name = {tool.__name__: tool for tool in tools}
    room = window - len(prompt)
    written: list[int] = []  # every token after the prompt
    cached = 0  # tokens in the cache
    pending = list(prompt)
    text, failure = "", None
    counts = {"generated": 0, "forced": 0, "processed": 0, "peak": 0, "maxpos": 0}
    cache = DynamicCache(config=model.config)
    cache_arg = _cache_kwarg(model)
    eos = tokenizer.eos_token_id
    start = time.perf_counter()
    with torch.inference_mode():
        while counts["generated"] < max_new_tokens:
            if cached + len(pending) > window:
                if mode == "truncate":
                    failure = f"window full ({window} tokens) before the answer"
                    break
                pending = list(prompt) + written[len(written) - room // 2:]
                cached, cache = 0, DynamicCache(config=model.config)
            logits = model(input_ids=torch.tensor([pending]), use_cache=True,
                           **{cache_arg: cache}).logits  # (1, T, V)
            cached += len(pending)
            counts["processed"] += len(pending)
            counts["peak"] = max(counts["peak"], cached)
            counts["maxpos"] = max(counts["maxpos"], cached - 1)
            token = int(logits[0, -1].argmax())
            if token == eos:
                break
            written.append(token)
            counts["generated"] += 1
            text += tokenizer.decode([token])
            pending = [token]
            if (answer := flat_answer(text)) is not None:
                return _outcome(answer, text, None, counts, start)
            call = _CALL.search(text)
            if call is not None and text.endswith("}"):
                result = _call(by_name, call.group(1), call.group(2))
                forced = tokenizer.encode(result, add_special_tokens=False)
                written += forced
                pending += forced
                counts["forced"] += len(forced)
                text += result
    return _outcome(flat_answer(text), text,
                    failure or "max_new_tokens or end of text before the answer", counts, start)


def _call(tools: dict[str, Callable], name: str, params: str) -> str:
    try:
        args = json.loads(params)
        if name not in tools or not isinstance(args, dict):
            raise ValueError(f"no tool {name!r}")
        return f" = {json.dumps(tools[name](**args))}"
    except (ValueError, TypeError) as exc:
        return f" = {json.dumps({'error': str(exc)})}"


def _outcome(answer: str | None, text: str, failure: str | None, counts: dict,
             start: float) -> FlatOutcome:
    return FlatOutcome(answer=answer, text=text, failure=None if answer else failure,
                       num_generated=counts["generated"], num_forced=counts["forced"],
                       num_processed=counts["processed"], peak_live_tokens=counts["peak"],
                       max_position=counts["maxpos"],
                       wall_time_s=round(time.perf_counter() - start, 2))


def _cache_kwarg(model: Any) -> str:
    """``cache`` from transformers 5.20 on, ``past_key_values`` before."""
    import inspect

    params = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"
