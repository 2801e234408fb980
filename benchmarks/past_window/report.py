"""Accuracy and memory per size and configuration: aggregate, table, plot."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tim.eval.report import wilson_interval

from .evaluate import CONFIGS, RunOutcome

__all__ = ["Cell", "aggregate", "accuracy_table", "cost_table", "solved_table",
           "plot_accuracy", "replace_block"]


@dataclass(frozen=True)
class Cell:
    """Every run of one configuration at one height."""

    config: str
    height: int
    num_runs: int
    num_correct: int
    flat_over_window: float  # mean reference flat trace length / window
    mean_tokens: float  # mean tokens of a run (prompt + generated + forced)
    peak_live_tokens: int  # largest over the runs
    max_position: int  # largest over the runs
    tokens_per_s: float  # generated tokens / wall time, over all the runs
    pruned_share: float  # evicted / tokens, over all the runs
    misses: str  # why the other runs missed, with counts ("3 wrong answer, 2 PositionWindowError")

    @property
    def accuracy(self) -> float:
        return self.num_correct / self.num_runs


def aggregate(outcomes: Sequence[RunOutcome], *, window: int) -> list[Cell]:
    """One :class:`Cell` per (configuration, height), configurations in ``CONFIGS`` order."""
    groups: dict[tuple[str, int], list[RunOutcome]] = {}
    for out in outcomes:
        groups.setdefault((out.config, out.height), []).append(out)
    cells = []
    for (config, height), runs in sorted(groups.items(),
                                         key=lambda kv: (CONFIGS.index(kv[0][0]), kv[0][1])):
        misses = Counter(r.failure or "wrong answer" for r in runs if not r.correct)
        tokens = sum(r.num_tokens for r in runs)
        wall = sum(r.wall_time_s for r in runs)
        cells.append(Cell(
            config=config, height=height, num_runs=len(runs),
            num_correct=sum(r.correct for r in runs),
            flat_over_window=sum(r.flat_trace_tokens for r in runs) / len(runs) / window,
            mean_tokens=tokens / len(runs),
            peak_live_tokens=max(r.peak_live_tokens for r in runs),
            max_position=max(r.max_position for r in runs),
            tokens_per_s=sum(r.num_generated for r in runs) / wall if wall else 0.0,
            pruned_share=sum(r.num_evicted for r in runs) / tokens if tokens else 0.0,
            misses=", ".join(f"{n} {why}" for why, n in misses.most_common()),
        ))
    return cells


def accuracy_table(cells: Sequence[Cell]) -> str:
    """Markdown: one row per height, one column per configuration, ``k/n (interval)``."""
    configs = [c for c in CONFIGS if any(cell.config == c for cell in cells)]
    heights = sorted({cell.height for cell in cells})
    by_key = {(c.config, c.height): c for c in cells}
    head = "| height | leaves | flat trace ÷ window | " + " | ".join(f"`{c}`" for c in configs)
    lines = [head + " |", "|---:|---:|---:|" + "---|" * len(configs)]
    for h in heights:
        ratio = next(c.flat_over_window for c in cells if c.height == h)
        row = [str(h), str(2**h), f"{ratio:.1f}×"]
        for config in configs:
            cell = by_key.get((config, h))
            if cell is None:
                row.append("–")
                continue
            lo, hi = wilson_interval(cell.num_correct, cell.num_runs)
            row.append(f"{cell.num_correct}/{cell.num_runs} ({lo:.2f}–{hi:.2f})")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def cost_table(cells: Sequence[Cell]) -> str:
    """Markdown: memory, positions, speed and the common failure of every cell."""
    lines = ["| configuration | height | tokens per run | peak live KV | max position | "
             "generated tok/s | KV pruned or dropped | runs that missed, and why |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for c in cells:
        lines.append(f"| `{c.config}` | {c.height} | {c.mean_tokens:,.0f} | "
                     f"{c.peak_live_tokens} | {c.max_position} | {c.tokens_per_s:,.0f} | "
                     f"{100 * c.pruned_share:.0f}% | {c.misses or '–'} |")
    return "\n".join(lines)


def solved_table(outcomes: Sequence[RunOutcome], *, window: int) -> str:
    """Markdown: length, memory and positions over the runs that got the answer, per
    configuration and height (a derailed run stopped at the window would hide them)."""
    lines = ["| configuration | height | solved | longest solved run (tokens) | ÷ window | "
             "peak live KV | max position | KV pruned |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    groups: dict[tuple[str, int], list[RunOutcome]] = {}
    for out in outcomes:
        if out.correct:
            groups.setdefault((out.config, out.height), []).append(out)
    for (config, height), runs in sorted(groups.items(),
                                         key=lambda kv: (CONFIGS.index(kv[0][0]), kv[0][1])):
        tokens = sum(r.num_tokens for r in runs)
        longest = max(r.num_tokens for r in runs)
        lines.append(f"| `{config}` | {height} | {len(runs)} | {longest:,} | "
                     f"{longest / window:.1f}× | {max(r.peak_live_tokens for r in runs)} | "
                     f"{max(r.max_position for r in runs)} | "
                     f"{100 * sum(r.num_evicted for r in runs) / tokens:.1f}% |")
    return "\n".join(lines)


def plot_accuracy(cells: Sequence[Cell], path: Path, *, title: str) -> None:
    """Accuracy against the flat trace's length in windows (log scale), one line per
    configuration, with 95% intervals and the chance level (1 in 10)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for config in CONFIGS:
        mine = [c for c in cells if c.config == config]
        if not mine:
            continue
        xs = [c.flat_over_window for c in mine]
        ys = [c.accuracy for c in mine]
        bounds = [wilson_interval(c.num_correct, c.num_runs) for c in mine]
        err = [[y - lo for y, (lo, _) in zip(ys, bounds, strict=True)],
               [hi - y for y, (_, hi) in zip(ys, bounds, strict=True)]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=config)
    ax.axvline(1.0, color="grey", linestyle=":", label="flat trace = window")
    ax.axhline(0.1, color="grey", linestyle="--", linewidth=0.8, label="chance (1 in 10)")
    ax.set_xscale("log")
    ax.set_xlabel("flat trace length ÷ context window")
    ax.set_ylabel("accuracy (95% interval)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def replace_block(doc: str, name: str, body: str) -> str:
    """Put ``body`` between ``<!-- name -->`` and ``<!-- /name -->`` in ``doc``.

    >>> replace_block("a\\n<!-- t -->\\nold\\n<!-- /t -->\\nb", "t", "new")
    'a\\n<!-- t -->\\nnew\\n<!-- /t -->\\nb'
    """
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if doc.count(begin) != 1 or doc.count(end) != 1:
        raise ValueError(f"the document needs exactly one {begin} ... {end} block")
    head, rest = doc.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{body}\n{end}{tail}"
