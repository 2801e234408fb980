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

__all__ = ["TreeOutcome", "run_tree_question", "tokens_processed", "flat_question", "evaluate", "load_outcomes",
           "summary_rows", "markdown_table", "plot_accuracy"]


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


def tokens_processed(record: Any) -> int:
    """Every token the run fed through the model (prompt, sampled, forced, re-encoded): the
    engine's own count, the x axis of ``tim viz``'s live-KV plot."""
    return record.timeline[-1].num_processed if record.timeline else 0


def run_tree_question(model: Any, family: str, size: int, index: int, *, window: int,
                      pruning: str = "buffer:0@conclusion", positions: str = "shift",
                      max_new_tokens: int = 20_000, unseen_phrasing: bool = False,
                      config: str | None = None,
                      runtimes: dict[str, Any] | None = None) -> TreeOutcome:
    """Run held-out question ``index`` of ``family`` at ``size`` through tim.

    ``model`` is a ``(model, tokenizer)`` pair (:func:`tim.train.load_trained`).
    ``unseen_phrasing`` asks in the template kept out of training. ``runtimes`` keeps one
    runtime per format across calls, so questions share its engine and grammar.
    """
    from tim.api import Runtime
    from tim.prompt import PromptStyle

    seed = HELD_OUT_SEEDS.start + index
    example = make_example(family, size, seed, held_out=True,
                           template=HELD_OUT_TEMPLATE if unseen_phrasing else None)
    runtimes = {} if runtimes is None else runtimes
    if example.format not in runtimes:
        runtimes[example.format] = Runtime(
            model=model, format=example.format, pruning=pruning, positions=positions,
            max_depth=12, max_fanout=4, max_position=window, seed=0,
            prompt_style=PromptStyle(instructions=False), kv_budget_tokens=1 << 16)
    runtime = runtimes[example.format]
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
        num_processed=tokens_processed(record),
        num_generated=record.num_generated, peak_live_tokens=record.peak_live_tokens,
        max_position=record.max_position, wall_time_s=round(wall, 2))


def load_outcomes(path: Path) -> list[dict[str, Any]]:
    """The outcomes saved at ``path`` (none if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return json.loads(path.read_text())["outcomes"]


def evaluate(run_one: Callable[[str, int, int], TreeOutcome], config: str,
             families: Sequence[str], questions: dict[int, int], *, window: int, out: Path,
             on_outcome: Callable[[TreeOutcome], None] | None = None) -> list[dict[str, Any]]:
    """Run ``questions[size]`` held-out questions of every family at every size through
    ``run_one(family, size, index)``, question by question (every size and family before
    the next index), saving to ``out`` after each; outcomes of ``config`` already in ``out``
    are skipped, so a stopped evaluation resumes, and other configurations' outcomes in
    the same file are kept."""
    out = Path(out)
    saved = load_outcomes(out)
    done = {(o["config"], o["family"], o["size"], o["seed"]) for o in saved}
    for i in range(max(questions.values())):
        for size, num in questions.items():
            if i >= num:
                continue
            for family in families:
                if (config, family, size, HELD_OUT_SEEDS.start + i) in done:
                    continue
                outcome = run_one(family, size, i)
                saved.append(asdict(outcome))
                out.write_text(json.dumps({"window": window, "outcomes": saved}, indent=1))
                if on_outcome is not None:
                    on_outcome(outcome)
    return saved

def flat_question(model: Any, family: str, size: int, index: int, *, window: int, mode: str,
                  max_new_tokens: int = 20_000, unseen_phrasing: bool = False) -> TreeOutcome:
    """Run held-out question ``index`` through the flat baseline (``mode``: ``truncate`` or
    ``sliding``) in ``window`` tokens; the outcome has the tree outcome's fields."""
    from tim.tools import ToolRegistry

    from .flat import decode_flat, flat_prompt

    net, tokenizer = model
    seed = HELD_OUT_SEEDS.start + index
    example = make_example(family, size, seed, held_out=True,
                           template=HELD_OUT_TEMPLATE if unseen_phrasing else None)
    prompt = flat_prompt(tokenizer, example.question, ToolRegistry(example.tools).specs)
    out = decode_flat(net, tokenizer, prompt, example.tools, mode=mode, window=window,
                      max_new_tokens=max_new_tokens)
    return TreeOutcome(
        config=f"flat-{mode}", family=family, size=size, seed=seed, template=example.template,
        expected=example.expected, answer=out.answer, correct=out.answer == example.expected,
        error=out.failure, num_processed=out.num_processed, num_generated=out.num_generated,
        peak_live_tokens=out.peak_live_tokens, max_position=out.max_position,
        wall_time_s=out.wall_time_s)


def summary_rows(outcomes: Sequence[dict[str, Any]], window: int) -> list[dict[str, Any]]:
    """One row per configuration, family and size: accuracy with its 95% Wilson interval,
    mean tokens processed (and over ``window``), peak live KV, max position, wall time."""
    from tim.eval.report import wilson_interval

    cells: dict[tuple, list[dict[str, Any]]] = {}
    for o in outcomes:
        cells.setdefault((o["family"], o["size"], o["config"]), []).append(o)
    rows = []
    for (family, size, config), runs in sorted(cells.items()):
        n, k = len(runs), sum(o["correct"] for o in runs)
        lo, hi = wilson_interval(k, n)
        processed = sum(o["num_processed"] for o in runs) / n
        rows.append({"family": family, "size": size, "config": config, "n": n, "correct": k,
                     "accuracy": k / n, "ci": (lo, hi), "processed": processed,
                     "over_window": processed / window,
                     "peak_live": max(o["peak_live_tokens"] for o in runs),
                     "max_position": max(o["max_position"] for o in runs),
                     "wall_s": sum(o["wall_time_s"] for o in runs) / n})
    return rows


def markdown_table(outcomes: Sequence[dict[str, Any]], window: int) -> str:
    """The summary as a Markdown table."""
    lines = ["| family | size | config | right | accuracy (95% CI) | tokens processed | "
             "÷ W | peak live KV | max position | s / question |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary_rows(outcomes, window):
        lo, hi = r["ci"]
        lines.append(f"| {r['family']} | {r['size']} | {r['config']} | {r['correct']}/{r['n']}"
                     f" | {r['accuracy']:.0%} ({lo:.0%}-{hi:.0%}) | {r['processed']:,.0f} | "
                     f"{r['over_window']:.1f} | {r['peak_live']:,} | {r['max_position']:,} | "
                     f"{r['wall_s']:.1f} |")
    return "\n".join(lines)


def plot_accuracy(outcomes: Sequence[dict[str, Any]], window: int, path: Path) -> None:
    """Accuracy (with its interval) against tokens processed ÷ W, one panel per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    rows = summary_rows(outcomes, window)
    families = sorted({r["family"] for r in rows})
    configs = sorted({r["config"] for r in rows})
    colors = {c: f"C{i}" for i, c in enumerate(configs)}  # one colour per config everywhere
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.6), dpi=120,
                             squeeze=False)
    for ax, family in zip(axes[0], families, strict=True):
        for config in configs:
            pts = [r for r in rows if r["family"] == family and r["config"] == config]
            if not pts:
                continue
            xs = [r["over_window"] for r in pts]
            ys = [r["accuracy"] for r in pts]
            err = [[y - r["ci"][0] for y, r in zip(ys, pts, strict=True)],
                   [r["ci"][1] - y for y, r in zip(ys, pts, strict=True)]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, color=colors[config])
        ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        spread = [r["over_window"] for r in rows if r["family"] == family]
        ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32)
                 if min(spread) / 1.5 <= t <= max(spread) * 1.5]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(family)
        ax.set_xlabel(f"tokens processed ÷ W (W = {window})")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (95% CI)")
    handles = [plt.Line2D([], [], color=colors[c], marker="o", label=c) for c in configs]
    fig.legend(handles=handles, loc="lower center", ncol=len(configs), frameon=False,
               fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path)
    plt.close(fig)
