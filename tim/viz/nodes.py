"""One flat row per task, with what every picture shows about it.

The renderers (terminal, Graphviz, HTML) all draw from :func:`describe_tasks`, so a
task's label, status, token count, positions and evictions read the same everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tim.result import is_pruned
from tim.tree import TaskPath, TaskStatus, ToolUse, get_format
from tim.viz.load import RunView

__all__ = ["NodeInfo", "describe_tasks", "short_text", "task_label", "tool_text"]


@dataclass(frozen=True)
class NodeInfo:
    """A task and its run facts, as the pictures show them (one per node of the drawn tree).

    ``positions`` is the (first, last) position id its stream's tokens had when written
    (``parallel`` runs only); ``evicted`` lists ``(step, stream path, num_tokens)`` of the
    evictions that dropped the subtask list holding it.
    """

    path: TaskPath
    title: str | None
    thought: str
    conclusion: str
    status: TaskStatus
    num_tokens: int
    pruned: bool
    error: str | None
    tooluse: ToolUse | None
    num_children: int
    positions: tuple[int, int] | None = None
    evicted: tuple[tuple[int, TaskPath, int], ...] = ()

    @property
    def label(self) -> str:
        return task_label(self.title, self.thought)


def describe_tasks(view: RunView) -> list[NodeInfo]:
    """Every task of ``view.tree`` in depth-first order, parents first.

    Examples
    --------
    >>> from tim.tree import Task, TaskTree
    >>> from tim.viz.load import as_view
    >>> tree = TaskTree([Task("Split.", "3", title="top", subtasks=[Task("1+2", "3")])], "3")
    >>> [(i.path, i.label, i.num_children) for i in describe_tasks(as_view(tree))]
    [((0,), 'top', 1), ((0, 0), '1+2', 0)]
    """
    if view.tree is None:
        return []
    record = view.record
    forks = record is not None and get_format(record.format).forks
    evictions: list[tuple[TaskPath, tuple[int, TaskPath, int]]] = []
    if record is not None:
        evictions = [(e.list_owner, (e.step + 1, e.stream, e.num_tokens))
                     for e in record.evictions if not e.deferred and e.num_tokens]
    out = []
    for path, task in view.tree.walk():
        positions = None
        if forks and path in record.streams and record.streams[path].position_ids:
            ids = record.streams[path].position_ids
            positions = (min(ids), max(ids))
        out.append(NodeInfo(
            path=path,
            title=task.title,
            thought=task.thought,
            conclusion=task.conclusion,
            status=task.status,
            num_tokens=task.num_tokens,
            pruned=task.pruned,
            error=task.error,
            tooluse=task.tooluse,
            num_children=len(task.subtasks or ()),
            positions=positions,
            evicted=tuple(ev for owner, ev in evictions if is_pruned(path, {owner})),
        ))
    return out


def short_text(text: Any, limit: int = 60) -> str:
    """One line of at most ``limit`` characters: whitespace collapsed, cut with '…'.

    Examples
    --------
    >>> short_text("a\\n  b " + "c" * 80, 10)
    'a b ccccc…'
    """
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def task_label(title: str | None, thought: str, limit: int = 60) -> str:
    """The task's title, or the start of its thought when it has none."""
    if title:
        return short_text(title, limit)
    return short_text(thought, limit) if thought.strip() else "(no thought yet)"


def tool_text(tooluse: ToolUse, limit: int = 80) -> str:
    """``name(a=1, b=2) -> result`` in one short line.

    Examples
    --------
    >>> tool_text(ToolUse("mul", {"a": 3, "b": 4}, 12))
    'mul(a=3, b=4) → 12'
    """
    args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}"
                     for k, v in tooluse.parameters.items())
    result = "…" if tooluse.tool_result is None else json.dumps(tooluse.tool_result,
                                                                ensure_ascii=False)
    call = short_text(f"{tooluse.tool_name}({args})", limit // 2 + 10)
    return f"{call} → {short_text(result, limit // 2)}"
