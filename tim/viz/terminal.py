"""The task tree in the terminal, with rich; also live, while a run goes on.

Model text goes into :class:`rich.text.Text` objects, never into markup strings, so a
thought that contains ``[bold]`` or escape sequences prints as written.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from tim.tree import TaskStatus
from tim.viz.load import RunLike, RunView, as_view
from tim.viz.nodes import NodeInfo, describe_tasks, short_text, tool_text

__all__ = ["tree_renderable", "render_terminal", "stats_lines", "LiveTree"]

STATUS_STYLE = {
    TaskStatus.DONE: ("✓", "green"),
    TaskStatus.RUNNING: ("◐", "yellow"),
    TaskStatus.PENDING: ("○", "bright_black"),
    TaskStatus.ERROR: ("✗", "bold red"),
}


def tree_renderable(run: RunLike, *, max_tasks: int | None = 2000) -> Any:
    """A ``rich`` renderable of the task tree, its answer and its statistics.

    Each task shows its status, its title (or the start of its thought), its conclusion,
    its token count, a ``✂ pruned`` marker when its subtask list left the KV cache, and
    its tool call with the result, in short.

    Parameters
    ----------
    run : RunView, Result, RunRecord, TaskTree or path
        See :func:`tim.viz.as_view`.
    max_tasks : int or None
        Draw at most this many tasks (a note says how many were left out).

    Examples
    --------
    >>> import io
    >>> from rich.console import Console
    >>> from tim.tree import Task, TaskTree
    >>> console = Console(file=io.StringIO(), width=60, record=True, color_system=None)
    >>> console.print(tree_renderable(TaskTree([Task("Add.", "4", title="add")], "4")))
    >>> print(console.export_text().splitlines()[1])
    └── ✓ add → 4  done
    """
    from rich.console import Group
    from rich.text import Text
    from rich.tree import Tree

    view = as_view(run)
    title = Text("task tree", style="bold")
    if view.question:
        title.append("  " + short_text(view.question, 80), style="italic")
    root = Tree(title)
    nodes = {(): root}
    infos = describe_tasks(view)
    shown = infos if max_tasks is None else infos[:max_tasks]
    for info in shown:
        node = nodes[info.path[:-1]].add(_task_text(info))
        nodes[info.path] = node
        if info.tooluse is not None:
            node.add(Text("⚙ " + tool_text(info.tooluse), style="cyan"))
        if info.error:
            node.add(Text("error: " + short_text(info.error, 100), style="red"))
    if len(shown) < len(infos):
        root.add(Text(f"… {len(infos) - len(shown)} more tasks (see the HTML viewer)",
                      style="italic"))
    if view.tree is None:
        root.add(Text("(no task written yet)", style="italic"))
    parts: list[Any] = [root]
    answer = Text("answer: ", style="bold")
    if view.answer is not None:
        answer.append(short_text(view.answer, 200), style="bold green")
    else:
        answer.append("none", style="bold red")
        if view.error:
            answer.append(f"  ({short_text(view.error, 160)})", style="red")
    parts.append(answer)
    parts.extend(Text(line, style="bright_black") for line in stats_lines(view))
    return Group(*parts)


def render_terminal(run: RunLike, console: Any = None, *, max_tasks: int | None = 2000) -> None:
    """Print :func:`tree_renderable` to ``console`` (a new ``rich`` console by default).

    Examples
    --------
    >>> import io
    >>> from rich.console import Console
    >>> from tim.tree import Task, TaskTree
    >>> console = Console(file=io.StringIO(), width=60, record=True, color_system=None)
    >>> render_terminal(TaskTree([Task("Add.", "4", title="add")], "4"), console)
    >>> "answer: 4" in console.export_text()
    True
    """
    if console is None:
        from rich.console import Console

        console = Console()
    console.print(tree_renderable(run, max_tasks=max_tasks))


def stats_lines(view: RunView) -> list[str]:
    """A few lines of run statistics (tasks and depth only for a bare tree)."""
    lines = []
    if view.tree is not None:
        pruned = sum(1 for _, t in view.tree.walk() if t.pruned)
        lines.append(f"tasks {view.tree.num_tasks} · depth {view.tree.depth} · pruned {pruned}"
                     + (" · partial tree (the run did not finish)" if view.partial else ""))
    s = view.stats
    if s is not None:
        lines.append(f"tokens: generated {s.tokens_generated} · forced {s.tokens_forced} · "
                     f"prefilled {s.tokens_prefilled} · evicted {s.tokens_evicted}")
        lines.append(f"KV: peak live {s.peak_live_tokens} · max position {s.max_position_id} · "
                     f"forks {s.num_forks} · max concurrency {s.max_concurrency}")
        lines.append(f"{s.num_steps} steps in {s.wall_time_s:.2f} s · "
                     f"{s.tokens_per_s:.1f} generated tok/s")
    if view.record is not None:
        r = view.record
        lines.append(f"format {r.format} · pruning {r.pruning} · positions {r.positions}"
                     + (f" · model {view.model}" if view.model else ""))
    return lines


def _task_text(info: NodeInfo) -> Any:
    from rich.text import Text

    glyph, style = STATUS_STYLE[info.status]
    text = Text(glyph + " ", style=style)
    text.append(info.label, style="dim" if info.pruned else "bold")
    if info.conclusion:
        text.append(" → " + short_text(info.conclusion, 50))
    text.append(f"  {info.status.value}", style=style)
    if info.num_tokens:
        text.append(f" · {info.num_tokens} tok", style="bright_black")
    if info.pruned:
        text.append(" · ✂ pruned", style="magenta")
    return text


class LiveTree:
    """A terminal tree that redraws itself while a run goes on.

    Pass it as the engine's ``on_step`` callback inside a ``with`` block; it redraws at
    most ``refresh_per_second`` times (rebuilding the tree from the streams costs time
    linear in the text written so far).

    Examples
    --------
    >>> import io
    >>> from rich.console import Console
    >>> from tim.engine.record import RunRecord, StreamRecord
    >>> record = RunRecord("thread2", "none", "shift", [1])
    >>> record.streams[()] = StreamRecord((), text='{"reasoning": [{"thought": "Sta')
    >>> console = Console(file=io.StringIO(), width=60, record=True, color_system=None)
    >>> with LiveTree(console) as live:
    ...     live.update(record)
    >>> "◐ Sta" in console.export_text()
    True
    """

    def __init__(self, console: Any = None, *, question: str = "",
                 refresh_per_second: float = 4.0, max_tasks: int = 200) -> None:
        self.console, self.question = console, question
        self.min_interval = 1.0 / refresh_per_second
        self.max_tasks = max_tasks
        self._live: Any = None
        self._last = 0.0
        self._record: Any = None

    def __enter__(self) -> LiveTree:
        from rich.live import Live

        self._live = Live(console=self.console, auto_refresh=False, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._record is not None:
            self._draw(self._record)  # the last state, whatever the throttle skipped
        self._live.__exit__(*exc)
        self._live = None

    def __call__(self, record: Any) -> None:
        self.update(record)

    def update(self, record: Any) -> None:
        """Redraw from a :class:`~tim.engine.record.RunRecord` (throttled)."""
        if self._live is None:
            raise RuntimeError("LiveTree.update needs an open `with LiveTree(...)` block")
        self._record = record
        now = time.monotonic()
        if now - self._last >= self.min_interval:
            self._draw(record)

    def _draw(self, record: Any) -> None:
        self._last = time.monotonic()
        view = replace(as_view(record), question=self.question)
        self._live.update(tree_renderable(view, max_tasks=self.max_tasks), refresh=True)
