"""The interactive HTML viewer: one self-contained file, no network.

The page holds its data as JSON in a ``<script type="application/json">`` element and a
small vanilla-JS viewer (:mod:`tim.viz.viewer_assets`) that builds everything with
``textContent``. It has:

- a collapsible tree, drawn lazily (children on first expand, 200 rows at a time), so a
  run with thousands of tasks opens at once;
- a detail panel for the selected task: thought, tool call and result, conclusion,
  tokens, position range, the steps it ran in and when it was evicted;
- a timeline of the workers (inline SVG): which streams ran when, forks, joins, tool
  calls and evictions, over the live-KV curve;
- for a run with shared siblings, per worker, which siblings it saw and how many of their
  tokens at each step (from the record's sights), drawn in its detail panel;
- a search box over titles, thoughts, conclusions and tool calls.

Safety: the JSON escapes ``<``, ``>``, ``&``, U+2028 and U+2029, so no text can close the
script element; the viewer never assigns model text to ``innerHTML``; and a
Content-Security-Policy allows only the page's own script and style (by hash) and no
network at all.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from dataclasses import asdict
from pathlib import Path as FilePath
from typing import Any

import tim
from tim.tree import TaskPath
from tim.viz.load import RunLike, RunView, as_view
from tim.viz.nodes import describe_tasks
from tim.viz.viewer_assets import VIEWER_CSS, VIEWER_JS

__all__ = ["render_html", "write_html", "viewer_data", "script_json"]

MAX_TIMELINE_POINTS = 2000


def render_html(run: RunLike, *, title: str = "tim task tree") -> str:
    """The whole viewer page as one HTML string.

    Parameters
    ----------
    run : RunView, Result, RunRecord, TaskTree or path
        See :func:`tim.viz.as_view`.
    title : str
        The page title (the question, when there is one, is added by the viewer).

    Examples
    --------
    >>> from tim.tree import Task, TaskTree
    >>> page = render_html(TaskTree([Task("<b>bold?</b>", "done", title="t")], "42"))
    >>> page.startswith("<!DOCTYPE html>") and "<b>bold?" not in page
    True
    """
    data = script_json(viewer_data(run))
    css, js = VIEWER_CSS, VIEWER_JS
    policy = (f"default-src 'none'; script-src '{_sha256(js)}'; style-src '{_sha256(css)}'; "
              "img-src data:; base-uri 'none'; form-action 'none'")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{css}</style>",
        "</head><body>",
        '<div id="app"><noscript>This viewer needs JavaScript.</noscript></div>',
        f'<script type="application/json" id="tim-data">{data}</script>',
        f"<script>{js}</script>",
        "</body></html>",
    ])


def write_html(run: RunLike, path: str | os.PathLike, *, title: str = "tim task tree"
               ) -> FilePath:
    """Write :func:`render_html` to ``path`` (UTF-8) and return the path.

    Examples
    --------
    >>> import tempfile
    >>> from tim.tree import Task, TaskTree
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = write_html(TaskTree([Task("t", "c")], "a"), f"{d}/tree.html")
    ...     out.read_text(encoding="utf-8").count("<script")
    2
    """
    out = FilePath(path)
    out.write_text(render_html(run, title=title), encoding="utf-8")
    return out


def script_json(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: ``<``, ``>``, ``&``, U+2028 and
    U+2029 become ``\\u`` escapes (the JSON value is unchanged).

    Examples
    --------
    >>> script_json({"t": "</script><b>&"})
    '{"t": "\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e\\\\u0026"}'
    >>> json.loads(script_json({"t": "</script>"}))["t"]
    '</script>'
    """
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def viewer_data(run: RunLike) -> dict[str, Any]:
    """The plain-JSON data the viewer draws (tasks flat, parents first; the timeline).

    Examples
    --------
    >>> from tim.tree import Task, TaskTree
    >>> data = viewer_data(TaskTree([Task("a", "b", subtasks=[Task("c", "d")])], "x"))
    >>> [(t["path"], t["p"]) for t in data["tasks"]], data["timeline"]
    ([('0', -1), ('0/0', 0)], None)
    """
    view = as_view(run)
    infos = describe_tasks(view)
    index: dict[TaskPath, int] = {info.path: i for i, info in enumerate(infos)}
    tasks = []
    for info in infos:
        tool = None
        if info.tooluse is not None:
            tool = {"name": info.tooluse.tool_name,
                    "params": json.dumps(info.tooluse.parameters, ensure_ascii=False, indent=1),
                    "result": None if info.tooluse.tool_result is None else
                    json.dumps(info.tooluse.tool_result, ensure_ascii=False, indent=1)}
        tasks.append({
            "p": index.get(info.path[:-1], -1),
            "path": "/".join(map(str, info.path)),
            "ti": info.title, "th": info.thought, "co": info.conclusion,
            "st": info.status.value, "n": info.num_tokens, "pr": info.pruned,
            "er": info.error, "tool": tool,
            "pos": list(info.positions) if info.positions else None,
            "ev": [[step, list(stream), n] for step, stream, n in info.evicted],
            "kids": info.num_children,
        })
    return {"meta": _meta(view), "tasks": tasks, "timeline": _timeline(view, index),
            "sights": _sights(view, index)}


def _meta(view: RunView) -> dict[str, Any]:
    record = view.record
    return {
        "question": view.question, "answer": view.answer, "error": view.error,
        "model": view.model, "partial": view.partial,
        "format": record.format if record else None,
        "pruning": record.pruning if record else None,
        "positions": record.positions if record else None,
        "siblings": record.siblings if record else None,
        "stats": None if view.stats is None else {
            k: round(v, 3) if isinstance(v, float) else v
            for k, v in asdict(view.stats).items()},
        "num_tasks": view.tree.num_tasks if view.tree else 0,
        "version": tim.__version__,
    }


def _timeline(view: RunView, index: dict[TaskPath, int]) -> dict[str, Any] | None:
    from tim.viz.timeline import worker_timeline

    record = view.record
    if record is None or not record.timeline:
        return None
    tl = worker_timeline(record)
    return {
        "steps": tl.num_steps, "lanes": tl.num_lanes,
        "segments": [[index.get(s.path, -1), s.start, s.end, s.lane] for s in tl.segments],
        "events": [[e.step, e.kind, index.get(e.path, -1), e.detail] for e in tl.events],
        "kv": _downsample([[r.step, r.num_processed, r.live_tokens, r.num_streams]
                           for r in record.timeline], MAX_TIMELINE_POINTS),
    }


def _sights(view: RunView, index: dict[TaskPath, int]) -> dict[str, list]:
    """Task index -> ``[[sibling task index, [[step, tokens seen], ...]], ...]``: what each
    worker saw of each sibling (shared siblings; empty otherwise), at most about
    ``MAX_TIMELINE_POINTS`` points per pair."""
    record = view.record
    if record is None or not record.sights:
        return {}
    series: dict[int, dict[int, list[list[int]]]] = {}
    for sight in record.sights:
        mine = series.setdefault(index.get(sight.stream, -1), {})
        for sibling, n in sight.seen:
            mine.setdefault(index.get(sibling, -1), []).append([sight.step, n])
    return {str(i): [[j, _downsample(points, MAX_TIMELINE_POINTS, value=1)]
                     for j, points in mine.items()] for i, mine in series.items() if i >= 0}


def _downsample(rows: list[list[int]], limit: int, *, value: int = 2) -> list[list[int]]:
    """At most about ``limit`` rows, keeping each bucket's lowest and highest ``row[value]``
    (the live KV of a timeline row)."""
    if len(rows) <= limit:
        return rows
    size = -(-len(rows) // (limit // 2))
    out = []
    for i in range(0, len(rows), size):
        bucket = rows[i: i + size]
        low, high = min(bucket, key=lambda r: r[value]), max(bucket, key=lambda r: r[value])
        out.extend(sorted({id(low): low, id(high): high}.values(), key=lambda r: r[0]))
    if out[-1] is not rows[-1]:
        out.append(rows[-1])
    return out


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")
