"""Showing stress reports: rich tables for the terminal and a PNG timeline."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from tim.errors import TimError
from tim.stress.run import StressReport

__all__ = ["comparison_table", "report_tables", "write_timeline_png"]


def _shape_line(report: StressReport) -> str:
    s = report.shape
    tools = "no tool calls" if s.tool_calls == "none" else (
        f"tool calls at {'leaves' if s.tool_calls == 'leaves' else 'every task'} "
        f"({s.tool_result_chars}-char results)")
    return (f"{s.num_tasks} top-level tasks, depth {s.depth}, fan-out {s.fanout} "
            f"({s.num_task_nodes} tasks); {s.thought_tokens}/{s.conclusion_tokens}/"
            f"{s.answer_tokens} tokens per thought/conclusion/answer; {tools}")


def _run_title(report: StressReport) -> str:
    return (f"{report.model} · {report.format} · positions={report.positions} · "
            f"pruning={report.pruning} · window {report.window} · KV budget "
            f"{report.kv_budget_tokens}")


def report_tables(report: StressReport) -> list[Any]:
    """Rich renderables for one run: the checks, the numbers, tokens/s per tenth."""
    from rich.table import Table
    from rich.text import Text

    def mark(ok: bool) -> Text:
        return Text("held", style="green") if ok else Text("FAILED", style="bold red")

    head = Text(_run_title(report) + "\n" + _shape_line(report))
    checks = Table(title="O6 checks", show_header=True, header_style="bold")
    checks.add_column("check")
    checks.add_column("value", justify="right")
    checks.add_column("result")
    pos_ok = report.max_position_id < report.window and report.failure_name != "PositionWindowError"
    checks.add_row("max position id < window", f"{report.max_position_id} < {report.window}",
                   mark(pos_ok))
    live_ok = (report.peak_live_tokens <= report.kv_budget_tokens
               and report.failure_name != "KVBudgetError")
    live = (f"{report.peak_live_tokens} ≤ {report.kv_budget_tokens}" if live_ok else
            f"ran out at {report.peak_live_tokens} of {report.kv_budget_tokens}")
    checks.add_row("live KV ≤ budget", live, mark(live_ok))
    checks.add_row("no page leaks", "pool checked after the run",
                   mark(report.failure is None or "leak" not in report.failure))
    checks.add_row("run finished, tree has the forced shape", f"{report.shape.num_task_nodes} tasks",
                   mark(report.ok))
    numbers = Table(title="numbers", show_header=False)
    numbers.add_column("what")
    numbers.add_column("value", justify="right")
    numbers.add_row("total tokens (prompt + written)", f"{report.total_tokens:,}")
    numbers.add_row("total ÷ window", f"{report.window_ratio:.1f}×")
    numbers.add_row("tokens processed (re-encodes count again)", f"{report.tokens_processed:,}")
    numbers.add_row("peak live KV ÷ total", f"{report.live_ratio:.1%}")
    numbers.add_row("tokens evicted", f"{report.num_evicted:,}")
    numbers.add_row("steps / wall time", f"{report.num_steps:,} / {report.wall_time_s:.1f} s")
    if report.wall_time_s:
        numbers.add_row("tokens/s overall", f"{report.total_tokens / report.wall_time_s:.0f}")
    if report.needle_answered is not None:
        numbers.add_row("needle", "answered" if report.needle_answered else "not answered")
    out: list[Any] = [head, checks, numbers]
    if report.decile_tokens_per_s:
        deciles = Table(title="tokens/s per tenth of the run", header_style="bold")
        for i in range(10):
            deciles.add_column(f"{i + 1}", justify="right")
        deciles.add_column("last ÷ first", justify="right")
        ratio = report.steady_ratio
        deciles.add_row(*[f"{r:.0f}" for r in report.decile_tokens_per_s],
                        "-" if ratio is None else f"{ratio:.2f}")
        out.append(deciles)
    if report.needle_answered is not None:
        out.append(Text(f"final answer: {report.answer!r}"))
    if report.failure:
        out.append(Text(report.failure, style="bold red"))
    return out


def comparison_table(reports: Sequence[StressReport]) -> Any:
    """A rich table with one row per run."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    first = reports[0]
    table = Table(title=f"{first.model} · {first.format} · window {first.window} · KV budget "
                        f"{first.kv_budget_tokens}\n{_shape_line(first)}",
                  header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("positions", "pruning", "result"):
        table.add_column(name, no_wrap=True)
    for name in ("tokens (×window)", "peak live", "max pos", "tok/s 1st→10th", "wall s"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in reports:
        if r.ok:
            result = Text("ok", style="green")
        else:
            style = "yellow" if not r.expected_to_hold else "bold red"
            result = Text(r.failure_name or "failed", style=style)
        rates = r.decile_tokens_per_s
        speed = f"{rates[0]:.0f}→{rates[-1]:.0f}" if rates else "-"
        table.add_row(r.positions, r.pruning, result,
                      f"{r.total_tokens:,} ({r.window_ratio:.1f}×)",
                      f"{r.peak_live_tokens:,} ({r.live_ratio:.1%})",
                      str(r.max_position_id), speed, f"{r.wall_time_s:.1f}")
    return table


def write_timeline_png(reports: Sequence[StressReport], path: str | os.PathLike) -> None:
    """Live KV tokens and the max position id so far against tokens processed, with the
    window; one panel for a single run, two (live KV | max position) for a comparison,
    where colour is the pruning rule and line style the position policy. A failed run
    ends in an ×.

    Raises
    ------
    TimError
        When matplotlib is missing (``pip install 'tim-runtime[viz]'``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise TimError("--png needs matplotlib: pip install 'tim-runtime[viz]'") from exc

    first, single = reports[0], len(reports) == 1
    fig = Figure(figsize=(9 if single else 12, 4.8), dpi=110)
    axes = [fig.add_subplot()] if single else fig.subplots(1, 2, sharex=False)
    rules = list(dict.fromkeys(r.pruning for r in reports))
    styles = {"shift": "-", "reencode": "-.", "keep": ":"}
    colors = matplotlib.colormaps["tab10"]
    for r in reports:
        if not r.timeline:
            continue
        xs = [row[0] for row in r.timeline]
        color = colors(rules.index(r.pruning) % 10)
        series = [(axes[0], 1, "live KV tokens"), (axes[0], 2, "max position id so far")]
        if not single:
            series = [(axes[0], 1, f"{r.positions}, {r.pruning}"), (axes[1], 2, None)]
        for k, (ax, col, label) in enumerate(series):
            style = ("-" if k == 0 else "--") if single else styles.get(r.positions, "-")
            ax.plot(xs, [row[col] for row in r.timeline], color=color if not single else
                    colors(k), ls=style, lw=1.2, label=label)
            if not r.ok:
                ax.plot([xs[-1]], [r.timeline[-1][col]], marker="x", ms=8, mew=2,
                        color=color if not single else colors(k))
    titles = ["live KV tokens" if not single else "", "max position id so far"]
    for ax, title in zip(axes, titles, strict=False):
        ax.axhline(first.window, color="black", lw=1, ls=":", label=f"window {first.window}")
        if first.kv_budget_tokens != first.window and ax is axes[0]:
            ax.axhline(first.kv_budget_tokens, color="gray", lw=1, ls="-.",
                       label=f"KV budget {first.kv_budget_tokens}")
        ax.set_xlabel("tokens processed (re-encodes count again)")
        ax.set_ylabel("tokens" if ax is axes[0] else "position id")
        if title:
            ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    run = "" if not single else f", {first.positions}, {first.pruning}"
    fig.suptitle(f"tim stress: {first.model}, {first.format}{run}", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
