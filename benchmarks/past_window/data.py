"""Training rows for both models, from the same problems: tree windows and flat windows.

Both pools are drawn from the same seeds and heights. The tree model's rows are the views
``buffer:k`` leaves it (:func:`.views.tree_windows`); the flat model's rows are its trace
seen through the sliding window it will run with: the prompt, then a run of recent tokens
(from the start when the whole trace fits).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .task import Problem, question_text, solve
from .tokenizer import encode_segments
from .traces import flat_trace, trace_text, tree_trace
from .views import Window, flat_window, list_spans, plan_evictions, tree_windows

__all__ = ["Encoded", "encode_problem", "prompt_ids", "tree_rows", "flat_rows",
           "corpus_texts", "TRAIN_SEEDS", "EVAL_SEEDS"]

TRAIN_SEEDS = range(0, 5000)  # questions trained on
EVAL_SEEDS = range(5000, 10_000)  # questions evaluated on: never trained on


@dataclass(frozen=True)
class Encoded:
    """One problem's traces as token ids, with per-token forced flags."""

    prompt: tuple[int, ...]
    tree_ids: tuple[int, ...]
    tree_forced: tuple[bool, ...]
    flat_ids: tuple[int, ...]
    flat_forced: tuple[bool, ...]


def prompt_ids(tokenizer: Any, problem: Problem) -> list[int]:
    """The question line, as both models read it."""
    return tokenizer.encode(question_text(problem) + "\n", add_special_tokens=False)


def encode_problem(tokenizer: Any, problem: Problem) -> Encoded:
    tree = solve(problem)
    tree_ids, tree_forced = encode_segments(tokenizer, tree_trace(tree))
    flat_ids, flat_forced = encode_segments(tokenizer, flat_trace(tree))
    return Encoded(tuple(prompt_ids(tokenizer, problem)), tuple(tree_ids), tuple(tree_forced),
                   tuple(flat_ids), tuple(flat_forced))


def corpus_texts(heights: Sequence[int], *, num_per_height: int = 3) -> list[str]:
    """Questions with both traces, for training the tokenizer."""
    texts = []
    for height in heights:
        for seed in TRAIN_SEEDS[:num_per_height]:
            problem = Problem(height=height, seed=seed)
            tree = solve(problem)
            for trace in (tree_trace(tree), flat_trace(tree)):
                texts.append(question_text(problem) + "\n" + trace_text(trace))
    return texts


def tree_rows(tokenizer: Any, enc: Encoded, *, k: int) -> list[Window]:
    """Every epoch's view of the tree trace under ``buffer:k``."""
    evictions = plan_evictions(list_spans(tokenizer, enc.tree_ids), k)
    return tree_windows(enc.prompt, enc.tree_ids, enc.tree_forced, evictions)


def flat_rows(enc: Encoded, *, window: int, rng: random.Random) -> list[Window]:
    """The flat trace through a ``window``-token sliding window that keeps the prompt: the
    whole trace when it fits, else the first window and about two random windows per
    window-length of trace."""
    span = window - len(enc.prompt)
    n = len(enc.flat_ids)
    if n < span:
        return [flat_window(enc.prompt, enc.flat_ids, enc.flat_forced, start=0, end=n)]
    starts = [0] + [rng.randrange(0, n - span + 1) for _ in range(2 * n // span)]
    return [flat_window(enc.prompt, enc.flat_ids, enc.flat_forced, start=s, end=s + span)
            for s in starts]
