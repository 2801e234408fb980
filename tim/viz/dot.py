"""The task tree as a Graphviz drawing (SVG or PNG), through the ``graphviz`` package.

- Fill and border colour show the status; a pruned task is grey with a dashed border.
- The children of one fork (the siblings that ran concurrently) sit in one dashed box
  (a ``cluster`` subgraph) labelled with the fork's step; in a run without forks each
  subtask list gets a box instead.
- A tool call is its own node, in a "tab" shape, hanging off its task.

Labels are escaped for DOT (backslashes, ``<...>``) and stripped of control characters,
so model text cannot change the drawing's structure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path as FilePath

from tim.errors import TimError
from tim.tree import TaskPath, TaskStatus, get_format
from tim.viz.load import RunLike, as_view
from tim.viz.nodes import NodeInfo, describe_tasks, short_text, tool_text

__all__ = ["dot_source", "render_graphviz", "STATUS_COLORS", "PRUNED_COLORS", "TOOL_COLORS"]

# status -> (fill, border)
STATUS_COLORS = {
    TaskStatus.DONE: ("#d8f0d8", "#2e7d32"),
    TaskStatus.RUNNING: ("#fff1c2", "#b8860b"),
    TaskStatus.PENDING: ("#ffffff", "#9e9e9e"),
    TaskStatus.ERROR: ("#f9d0d0", "#c62828"),
}
PRUNED_COLORS = ("#e8e8e8", "#8c8c8c")
TOOL_COLORS = ("#dbe9f6", "#1f5f99")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_INSTALL = ("the Graphviz `dot` program was not found on PATH. Install it with "
            "`apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) or "
            "`conda install graphviz`; see https://graphviz.org/download/")


def dot_source(run: RunLike, *, max_tasks: int | None = 1500) -> str:
    """The DOT text of the drawing (no ``dot`` binary needed).

    Parameters
    ----------
    run : RunView, Result, RunRecord, TaskTree or path
    max_tasks : int or None
        Draw at most this many tasks, parents first; Graphviz gets slow past a few
        thousand nodes (the HTML viewer has no such limit).

    Examples
    --------
    >>> from tim.tree import Task, TaskTree, ToolUse
    >>> tree = TaskTree([Task("3*4", "12", title="mul", tooluse=ToolUse("mul", {"a": 3}, 12))],
    ...                 "12")
    >>> src = dot_source(tree)
    >>> "mul(a=3) → 12" in src and "shape=tab" in src
    True
    """
    graphviz = _graphviz()
    view = as_view(run)
    graph = graphviz.Digraph("tim", graph_attr={
        "rankdir": "LR", "fontname": "Helvetica", "fontsize": "11", "labelloc": "t",
        "label": _label(_caption(view)), "nodesep": "0.15", "ranksep": "0.35",
    }, node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica",
                  "fontsize": "10", "margin": "0.08,0.04"},
        edge_attr={"color": "#777777", "arrowsize": "0.6"})
    root_label = [short_text(view.question or "task tree", 50)]
    root_label.append("answer: " + ("none" if view.answer is None else short_text(view.answer, 50)))
    graph.node("root", _label(root_label), fillcolor="#e3e7f7", color="#3949ab", penwidth="1.5")
    infos = describe_tasks(view)
    if max_tasks is not None:
        infos = infos[:max_tasks]
    groups = _groups(view, {i.path for i in infos})
    grouped = {p for _, children in groups for p in children}
    for info in infos:
        if info.path not in grouped:
            _add_task(graph, info)
    by_path = {i.path: i for i in infos}
    for n, (label, children) in enumerate(groups):
        with graph.subgraph(name=f"cluster_{n}") as sub:
            sub.attr(label=_label([label]), style="dashed,rounded", color="#9aa5b1",
                     fontsize="9", fontcolor="#5f6b7a")
            for path in children:
                _add_task(sub, by_path[path])
    for info in infos:
        parent = "root" if len(info.path) == 1 else _node_id(info.path[:-1])
        style = "dashed" if info.pruned else "solid"
        graph.edge(parent, _node_id(info.path), style=style)
        if info.tooluse is not None:
            graph.edge(_node_id(info.path), "tool_" + _node_id(info.path), style="dotted",
                       arrowhead="none")
    return graph.source


def render_graphviz(run: RunLike, path: str | os.PathLike, format: str = "svg",
                    *, max_tasks: int | None = 1500) -> FilePath:
    """Draw the task tree to ``path`` as SVG or PNG with Graphviz's ``dot``.

    Parameters
    ----------
    run : RunView, Result, RunRecord, TaskTree or path
    path : str or path-like
        The output file (written whole; parent folders must exist).
    format : {"svg", "png"}
    max_tasks : int or None
        See :func:`dot_source`.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    tim.errors.TimError
        When the ``graphviz`` Python package or the ``dot`` program is missing (the
        message says how to install it), or when ``dot`` fails.
    ValueError
        For a format other than ``"svg"`` or ``"png"``.

    Examples
    --------
    >>> import tempfile, os
    >>> from tim.tree import Task, TaskTree
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = render_graphviz(TaskTree([Task("t", "c", title="x")], "a"), f"{d}/t.svg")
    ...     "<svg" in out.read_text()
    True
    """
    if format not in ("svg", "png"):
        raise ValueError(f"format must be 'svg' or 'png', got {format!r}")
    graphviz = _graphviz()
    source = graphviz.Source(dot_source(run, max_tasks=max_tasks))
    try:
        data = source.pipe(format=format, quiet=True)
    except graphviz.ExecutableNotFound as exc:
        raise TimError(_INSTALL) from exc
    except graphviz.CalledProcessError as exc:
        raise TimError(f"Graphviz `dot` failed: {exc}") from exc
    out = FilePath(path)
    out.write_bytes(data)
    return out


def _graphviz():
    try:
        import graphviz
    except ImportError as exc:
        raise TimError("drawing trees needs the `graphviz` Python package: "
                       "pip install 'tim-runtime[viz]' (and the `dot` program: "
                       "apt-get install graphviz)") from exc
    return graphviz


def _add_task(graph, info: NodeInfo) -> None:
    fill, border = PRUNED_COLORS if info.pruned else STATUS_COLORS[info.status]
    style = "rounded,filled" + (",dashed" if info.pruned or info.status is TaskStatus.PENDING
                                else "")
    graph.node(_node_id(info.path), _label(_node_lines(info)), fillcolor=fill, color=border,
               style=style, fontcolor="#555555" if info.pruned else "#111111")
    if info.tooluse is not None:
        fill, border = TOOL_COLORS
        graph.node("tool_" + _node_id(info.path), _label(["⚙ " + tool_text(info.tooluse, 60)]),
                   shape="tab", style="filled", fillcolor=fill, color=border, fontsize="9")


def _node_lines(info: NodeInfo) -> list[str]:
    lines = [info.label if len(info.label) <= 40 else short_text(info.label, 40)]
    if info.conclusion:
        lines.append("→ " + short_text(info.conclusion, 40))
    facts = [info.status.value]
    if info.num_tokens:
        facts.append(f"{info.num_tokens} tok")
    if info.pruned:
        facts.append("✂ pruned")
    lines.append(" · ".join(facts))
    if info.error:
        lines.append("error: " + short_text(info.error, 40))
    return lines


def _groups(view, drawn: set[TaskPath]) -> list[tuple[str, list[TaskPath]]]:
    """(label, child paths) for each box of siblings that ran concurrently."""
    record = view.record
    if record is not None and get_format(record.format).forks:
        return [(f"fork at step {f.step + 1} · {len(f.children)} workers",
                 [c for c in f.children if c in drawn])
                for f in record.forks if any(c in drawn for c in f.children)]
    if view.tree is None:
        return []
    lists: dict[TaskPath, list[TaskPath]] = {}
    for path, _ in view.tree.walk():
        if path in drawn and len(path) > 1:
            lists.setdefault(path[:-1], []).append(path)
    return [("subtasks (in sequence)", kids) for kids in lists.values()]


def _caption(view) -> list[str]:
    head = "tim task tree"
    if view.record is not None:
        r = view.record
        head += f" · {r.format} · pruning {r.pruning}"
    key = ("green: done · yellow: running · red: error · grey dashed: pruned · "
           "tab: tool call · dashed box: siblings of one fork")
    return [head, key]


def _label(lines: list[str]):
    import graphviz

    clean = [_CONTROL.sub("", line).replace("\u2028", " ").replace("\u2029", " ")
             for line in lines]
    return graphviz.nohtml("\\n".join(graphviz.escape(line) for line in clean))


def _node_id(path: TaskPath) -> str:
    return "t_" + "_".join(map(str, path))
