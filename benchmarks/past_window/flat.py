"""The flat model's decoding: greedy, with the leaf tool, in a fixed context window.

Two ways to live in a window of ``W`` tokens:

- ``truncate``: plain generation; the run stops when the window is full.
- ``sliding``: the StreamingLLM-style baseline. The prompt is kept as the attention sink;
  when the cache is full, the oldest written tokens leave, keeping the newest ``W // 2``,
  and the kept tokens are re-encoded at contiguous positions (so positions stay below
  ``W``, as StreamingLLM's in-cache positions do). Re-encoding is exact, and costs one
  prefill per ``W // 2`` tokens written.

The tools work as tim's do: when a line ends in a call (``p0110: leaf`` or
``p01+: add 3 7``), the runtime calls the tool and forces `` <result>`` into the stream.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from .task import Problem, make_tools
from .traces import flat_tool_call

__all__ = ["FlatOutcome", "decode_flat", "FLAT_MODES"]

FLAT_MODES = ("truncate", "sliding")
_ANSWER = re.compile(r"(?:^|\n)answer (\d)")


@dataclass(frozen=True)
class FlatOutcome:
    """One flat run: its answer (None: it never wrote one) and what it cost."""

    answer: str | None
    text: str
    failure: str | None
    num_generated: int
    num_forced: int
    num_dropped: int  # tokens that left the cache (sliding)
    num_reencoded: int
    peak_live_tokens: int
    max_position: int
    wall_time_s: float


def decode_flat(model: Any, tokenizer: Any, prompt: list[int], problem: Problem, *,
                mode: str, window: int, max_new_tokens: int) -> FlatOutcome:
    """Greedy-decode a flat trace after ``prompt``; stop at ``answer <digit>``."""
    import torch
    from transformers import DynamicCache

    if mode not in FLAT_MODES:
        raise ValueError(f"mode must be one of {FLAT_MODES}, got {mode!r}")
    if len(prompt) >= window // 2:
        raise ValueError(f"the prompt ({len(prompt)} tokens) must be under half the window "
                         f"({window})")
    tools = {tool.__name__: tool for tool in make_tools(problem)}
    written: list[int] = []  # every token after the prompt
    cached: list[int] = []  # the tokens in the cache, in position order
    pending = list(prompt)
    text, failure = "", None
    counts = {"generated": 0, "forced": 0, "dropped": 0, "reencoded": 0, "peak": 0, "maxpos": 0}
    cache = DynamicCache(config=model.config)
    start = time.perf_counter()
    with torch.inference_mode():
        while counts["generated"] < max_new_tokens:
            if len(cached) + len(pending) > window:
                if mode == "truncate":
                    failure = f"window full ({window} tokens) before the answer"
                    break
                keep = written[len(written) - window // 2:]
                counts["dropped"] += len(cached) - len(prompt) - len(keep) + len(pending)
                pending = list(prompt) + keep
                counts["reencoded"] += len(keep)
                cached, cache = [], DynamicCache(config=model.config)
            ids = torch.tensor([pending])  # (1, T)
            logits = model(input_ids=ids, **{_cache_kwarg(model): cache},
                           use_cache=True).logits  # (1, T, V)
            cached += pending
            counts["peak"] = max(counts["peak"], len(cached))
            counts["maxpos"] = max(counts["maxpos"], len(cached) - 1)
            token = int(logits[0, -1].argmax())
            written.append(token)
            counts["generated"] += 1
            text += tokenizer.decode([token])
            pending = [token]
            if (match := _ANSWER.search(text)) is not None:
                return _outcome(match.group(1), text, None, counts, start)
            call = flat_tool_call(text)
            if call is not None:
                try:
                    result = f" {tools[call[0]](**call[1])}"
                except ValueError as exc:
                    result = f" error: {exc}"
                forced = tokenizer.encode(result, add_special_tokens=False)
                written += forced
                pending += forced
                counts["forced"] += len(forced)
                text += result
    return _outcome(None, text, failure or "max_new_tokens reached before the answer",
                    counts, start)


def _outcome(answer: str | None, text: str, failure: str | None, counts: dict,
             start: float) -> FlatOutcome:
    return FlatOutcome(answer=answer, text=text, failure=failure,
                       num_generated=counts["generated"], num_forced=counts["forced"],
                       num_dropped=counts["dropped"], num_reencoded=counts["reencoded"],
                       peak_live_tokens=counts["peak"], max_position=counts["maxpos"],
                       wall_time_s=time.perf_counter() - start)


def _cache_kwarg(model: Any) -> str:
    """``cache`` from transformers 5.20 on, ``past_key_values`` before."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
