"""Evaluate a trained tree model through tim on held-out questions of the task families.

Each question is a held-out seed (:data:`tim.train.families.HELD_OUT_SEEDS`), run through a
:class:`tim.Runtime` with the format of its family, greedy, its tools, the prompt without
instructions, and positions capped at ``window`` (the engine stops a stream that would
pass it with ``PositionWindowError``). An outcome keeps what the run did: the answer, the
tokens it processed, its peak live KV and largest position, its wall time. Outcomes are
appended to a JSON file as they finish, and a rerun skips the questions already there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .families import HELD_OUT_SEEDS, HELD_OUT_TEMPLATE, make_example

__all__ = ["TreeOutcome", "run_tree_question", "evaluate_trees", "load_outcomes"]


@dataclass(frozen=True)
class TreeOutcome:
    """One held-out question, run once."""

    config: str
    family: str
    size: int
    seed: int
    template: int
    expected: str
    answer: str | None
    correct: bool
    error: str | None
    num_processed: int  # prompt + every token fed (sampled, forced, re-encoded)
    num_generated: int
    peak_live_tokens: int
    max_position: int
    wall_time_s: float


def run_tree_question(model: Any, family: str, size: int, index: int, *, window: int,
                      pruning: str = "buffer:0@conclusion", positions: str = "shift",
                      max_new_tokens: int = 20_000, unseen_phrasing: bool = False,
                      config: str | None = None) -> TreeOutcome:
    """Run held-out question ``index`` of ``family`` at ``size`` through tim.

    ``model`` is a ``(model, tokenizer)`` pair (:func:`tim.train.load_trained`).
    ``unseen_phrasing`` asks in the template kept out of training.
    """
    from tim.api import Runtime
    from tim.prompt import PromptStyle

    seed = HELD_OUT_SEEDS.start + index
    example = make_example(family, size, seed, held_out=True,
                           template=HELD_OUT_TEMPLATE if unseen_phrasing else None)
    runtime = Runtime(model=model, format=example.format, pruning=pruning, positions=positions,
                      max_depth=12, max_fanout=4, max_position=window, seed=0,
                      prompt_style=PromptStyle(instructions=False),
                      kv_budget_tokens=1 << 16)
    began = time.perf_counter()
    result = runtime.reason(example.question, tools=example.tools, temperature=0,
                            max_new_tokens=max_new_tokens)
    wall = time.perf_counter() - began
    record = result.record
    answer = None if result.answer is None else str(result.answer).strip()
    return TreeOutcome(
        config=config or f"tree/{pruning}/{positions}", family=family, size=size, seed=seed,
        template=example.template, expected=example.expected, answer=answer,
        correct=answer == example.expected, error=result.error,
        num_processed=record.num_prefilled + record.num_generated,
        num_generated=record.num_generated, peak_live_tokens=record.peak_live_tokens,
        max_position=record.max_position, wall_time_s=round(wall, 2))


def load_outcomes(path: Path) -> list[dict[str, Any]]:
    """The outcomes saved at ``path`` (none if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return json.loads(path.read_text())["outcomes"]


def evaluate_trees(model: Any, families: Sequence[str], sizes: Sequence[int], num: int, *,
                   window: int, out: Path, questions: dict[int, int] | None = None,
                   on_outcome: Callable[[TreeOutcome], None] | None = None,
                   **kwargs: Any) -> list[dict[str, Any]]:
    """Run ``num`` held-out questions per family and size (``questions`` overrides it per
    size), question by question, saving after each; questions already in ``out`` are
    skipped, so a stopped evaluation resumes."""
    out = Path(out)
    saved = load_outcomes(out)
    config = kwargs.get("config") or (f"tree/{kwargs.get('pruning', 'buffer:0@conclusion')}/"
                                      f"{kwargs.get('positions', 'shift')}")
    done = {(o["config"], o["family"], o["size"], o["seed"]) for o in saved}
    for i in range(max((questions or {}).get(s, num) for s in sizes)):
        for size in sizes:
            if i >= (questions or {}).get(size, num):
                continue
            for family in families:
                if (config, family, size, HELD_OUT_SEEDS.start + i) in done:
                    continue
                outcome = run_tree_question(model, family, size, i, window=window, **kwargs)
                saved.append(asdict(outcome))
                out.write_text(json.dumps({"window": window, "outcomes": saved}, indent=1))
                if on_outcome is not None:
                    on_outcome(outcome)
    return saved
