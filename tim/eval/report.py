"""The report of ``tim eval``: per task and configuration, accuracy with a 95% Wilson
interval, mean sampled tokens, peak live KV, max position and wall time; as a rich table,
as JSON, and as a plot of accuracy against problem size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tim.eval.leaks import copied_example
from tim.eval.runner import Outcome

__all__ = ["Cell", "wilson_interval", "summarize", "to_json", "from_json", "save_json",
           "load_json", "render_table", "render_markdown", "ending", "plot_accuracy", "REPORT_VERSION"]

REPORT_VERSION = 1


def wilson_interval(successes: int, trials: int, *, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (95% by default).

    >>> [round(x, 4) for x in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # the interval holds p exactly; rounding alone can put p a hair outside at 0 or n
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


@dataclass(frozen=True)
class Cell:
    """One task x configuration (and, for the plot, size; ``size`` None: all sizes)."""

    task: str
    config: str
    size: int | None
    num_questions: int
    num_correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    mean_sampled_tokens: float
    peak_live_kv: int
    max_position: int
    mean_wall_time_s: float
    failures: dict[str, int]
    mean_tool_calls: float = 0.0
    mean_redundancy: float | None = None  # over runs with a list of two siblings
    duplicate_titles: int = 0
    copied_example: int = 0  # answers that copy a worked example (tim.eval.leaks)


def _cell(task: str, config: str, size: int | None, group: Sequence[Outcome]) -> Cell:
    n = len(group)
    k = sum(o.correct for o in group)
    low, high = wilson_interval(k, n)
    shares = [o.redundancy for o in group if o.redundancy is not None]
    failures: dict[str, int] = {}
    for o in group:
        if o.failure is not None:
            failures[o.failure] = failures.get(o.failure, 0) + 1
    return Cell(task=task, config=config, size=size, num_questions=n, num_correct=k,
                accuracy=k / n, ci_low=low, ci_high=high,
                mean_sampled_tokens=sum(o.sampled_tokens for o in group) / n,
                peak_live_kv=max(o.peak_live_kv for o in group),
                max_position=max(o.max_position for o in group),
                mean_wall_time_s=sum(o.wall_time_s for o in group) / n,
                failures=dict(sorted(failures.items())),
                mean_tool_calls=sum(o.tool_calls for o in group) / n,
                mean_redundancy=sum(shares) / len(shares) if shares else None,
                duplicate_titles=sum(o.duplicate_titles for o in group),
                copied_example=sum(copied_example(o.task, o.size, o.seed, o.answer)
                                   for o in group))


def summarize(outcomes: Sequence[Outcome], *, by_size: bool = False) -> list[Cell]:
    """Cells in first-seen order of task, then configuration (then size).

    >>> o = Outcome("lookup", 2, 0, "cot", True, "7", None, 30, 12, 42, 41, 0.5)
    >>> cell, = summarize([o, o.__class__(**{**o.to_json(), "correct": False})])
    >>> cell.num_correct, cell.num_questions, cell.mean_sampled_tokens
    (1, 2, 12.0)
    """
    groups: dict[tuple[str, str, int | None], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o.task, o.config, o.size if by_size else None), []).append(o)
    pairs = list(dict.fromkeys(key[:2] for key in groups))
    keys = sorted(groups, key=lambda key: (pairs.index(key[:2]), key[2] or 0))
    return [_cell(*key, groups[key]) for key in keys]


def to_json(outcomes: Sequence[Outcome], meta: dict[str, Any]) -> dict[str, Any]:
    """The whole report: settings, every outcome, and the summary cells."""
    return {"version": REPORT_VERSION, "meta": meta,
            "summary": [asdict(c) for c in summarize(outcomes)],
            "by_size": [asdict(c) for c in summarize(outcomes, by_size=True)],
            "outcomes": [o.to_json() for o in outcomes]}


def from_json(data: dict[str, Any]) -> tuple[list[Outcome], dict[str, Any]]:
    """Outcomes and settings back from :func:`to_json` (the summary is recomputed)."""
    if data.get("version") != REPORT_VERSION:
        raise ValueError(f"not a tim eval report of version {REPORT_VERSION}: "
                         f"version {data.get('version')!r}")
    return [Outcome.from_json(o) for o in data["outcomes"]], data["meta"]


def save_json(path: str | Path, outcomes: Sequence[Outcome], meta: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(to_json(outcomes, meta), indent=1) + "\n",
                          encoding="utf-8")


def load_json(path: str | Path) -> tuple[list[Outcome], dict[str, Any]]:
    return from_json(json.loads(Path(path).read_text(encoding="utf-8")))


_COLUMNS = ("task", "config", "accuracy [95% CI]", "sampled", "peak KV", "max pos", "wall s",
            "tools", "redundancy", "copied example", "failures")
_LEFT = ("task", "config", "failures")


def _rows(outcomes: Sequence[Outcome]) -> list[tuple[str, ...]]:
    """One row of :data:`_COLUMNS` per task and configuration."""
    return [(c.task, c.config,
             f"{c.num_correct}/{c.num_questions} = {c.accuracy:.0%} "
             f"[{c.ci_low:.0%}, {c.ci_high:.0%}]",
             f"{c.mean_sampled_tokens:.1f}", str(c.peak_live_kv), str(c.max_position),
             f"{c.mean_wall_time_s:.2f}", f"{c.mean_tool_calls:.1f}",
             "-" if c.mean_redundancy is None else
             f"{c.mean_redundancy:.0%} · {c.duplicate_titles} dup",
             f"{c.copied_example}/{c.num_questions}",
             ", ".join(f"{k} {v}" for k, v in c.failures.items()) or "-")
            for c in summarize(outcomes)]


def render_table(outcomes: Sequence[Outcome], *, title: str = "tim eval") -> Any:
    """A :class:`rich.table.Table` with one row per task and configuration: accuracy with
    its Wilson interval, mean sampled tokens, the peak live KV and max position over the
    questions, mean wall time per question, mean tool calls, sibling redundancy (mean share of
    a sibling's 4-grams another wrote; duplicate titles), answers that copy a worked example
    (:mod:`tim.eval.leaks`), and how many runs failed, by reason."""
    from rich.table import Table

    table = Table(title=title)
    for name in _COLUMNS:
        table.add_column(name, justify="left" if name in _LEFT else "right",
                         no_wrap=name in ("task", "config"))
    for row in _rows(outcomes):
        table.add_row(*row)
    return table


def render_markdown(outcomes: Sequence[Outcome]) -> str:
    """The same table as :func:`render_table`, in Markdown (for docs and notes).

    >>> o = Outcome(task="lookup", size=2, seed=0, config="cot", correct=True, answer="7",
    ...             failure=None, prompt_tokens=5, sampled_tokens=3, peak_live_kv=8,
    ...             max_position=7, wall_time_s=0.5)
    >>> print(render_markdown([o]).splitlines()[2])
    | lookup | cot | 1/1 = 100% [21%, 100%] | 3.0 | 8 | 7 | 0.50 | 0.0 | - | 0/1 | - |
    """
    lines = ["| " + " | ".join(_COLUMNS) + " |",
             "|" + "|".join("---" if n in _LEFT else "---:" for n in _COLUMNS) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(outcomes)]
    return "\n".join(lines)


def ending(outcome: Outcome) -> str:
    """How a run ended, for the plot: ``correct``, ``wrong answer`` or its failure.

    >>> o = Outcome(task="lookup", size=2, seed=0, config="cot", correct=False, answer="7",
    ...             failure=None, prompt_tokens=5, sampled_tokens=3, peak_live_kv=8,
    ...             max_position=7, wall_time_s=0.5)
    >>> ending(o), ending(Outcome(**{**o.to_json(), "failure": "max_new_tokens"}))
    ('wrong answer', 'max_new_tokens')
    """
    return "correct" if outcome.correct else outcome.failure or "wrong answer"


def plot_accuracy(outcomes: Sequence[Outcome], path: str | Path, *, title: str = "") -> bool:
    """One column per task: accuracy against problem size per configuration, with the
    Wilson intervals as bars; below it, how each configuration's runs ended (correct, wrong
    answer, out of budget, ...), stacked. Returns False (and draws nothing) without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cells = summarize(outcomes, by_size=True)
    tasks = list(dict.fromkeys(c.task for c in cells))
    kinds = sorted({ending(o) for o in outcomes},
                   key=lambda k: ({"correct": 0, "wrong answer": 1}.get(k, 2), k))
    named = {"correct": "tab:green", "wrong answer": "tab:red", "max_new_tokens": "tab:orange",
             "window": "tab:purple", "no answer": "tab:gray"}
    others = iter(plt.get_cmap("Set2").colors)
    colors = {k: named.get(k) or next(others, "black") for k in kinds}
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.8 * len(tasks), 8), squeeze=False)
    for ax, bars, task in zip(axes[0], axes[1], tasks, strict=True):
        configs = list(dict.fromkeys(c.config for c in cells if c.task == task))
        for i, config in enumerate(configs):
            line = sorted((c for c in cells if c.task == task and c.config == config),
                          key=lambda c: c.size or 0)
            dodge = 0.06 * (i - (len(configs) - 1) / 2)  # equal values stay visible
            xs = [(c.size or 0) + dodge for c in line]
            ys = [c.accuracy for c in line]
            err = [[c.accuracy - c.ci_low for c in line], [c.ci_high - c.accuracy for c in line]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=config)
        ax.set(title=task, xlabel="problem size", ylabel="accuracy", ylim=(-0.05, 1.05),
               xticks=sorted({c.size for c in cells if c.task == task}))
        ax.legend(fontsize=7)
        bottom = [0] * len(configs)
        for kind in kinds:
            counts = [sum(1 for o in outcomes if o.task == task and o.config == config
                          and ending(o) == kind) for config in configs]
            bars.barh(configs, counts, left=bottom, color=colors[kind], label=kind)
            bottom = [b + n for b, n in zip(bottom, counts, strict=True)]
        bars.set(xlabel="runs", title=f"{task}: how the runs ended")
        bars.invert_yaxis()
        bars.tick_params(axis="y", labelsize=7)
        bars.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
