"""See the tree: terminal, Graphviz (SVG/PNG), a self-contained HTML viewer, the live-KV plot.

Every function takes a *run*: a :class:`RunView`, a :class:`tim.result.Result`, a
:class:`~tim.engine.record.RunRecord`, a :class:`~tim.tree.TaskTree`, or the path of a run
file (``Result.save``) or of plain TIM Thread-2 JSON (:func:`load_run`).

- :func:`render_terminal` / :func:`tree_renderable`: a ``rich`` tree; :class:`LiveTree`
  redraws one during a run (pass it as ``on_step``).
- :func:`render_graphviz`: SVG or PNG through Graphviz's ``dot`` (``apt-get install
  graphviz``); :func:`dot_source` gives the DOT text.
- :func:`render_html` / :func:`write_html`: one HTML file, no network, usable with
  thousands of tasks.
- :func:`plot_kv_timeline`: live KV tokens against tokens processed (matplotlib).
- :func:`main_viz`: the ``tim viz`` command.

matplotlib, graphviz and rich are imported only when a function needs them.

Examples
--------
>>> from tim.tree import Task, TaskTree
>>> from tim.viz import as_view, render_html
>>> tree = TaskTree([Task("Add 2 and 2.", "4", title="add")], answer="4")
>>> as_view(tree).tree.num_tasks
1
>>> "tim-data" in render_html(tree)
True
"""

from tim.viz.cli import main_viz
from tim.viz.dot import dot_source, render_graphviz
from tim.viz.load import RunView, as_view, load_run
from tim.viz.partial import partial_tree
from tim.viz.plot import plot_kv_timeline
from tim.viz.terminal import LiveTree, render_terminal, tree_renderable
from tim.viz.timeline import WorkerTimeline, worker_timeline
from tim.viz.viewer import render_html, write_html

__all__ = [
    "RunView",
    "load_run",
    "as_view",
    "partial_tree",
    "worker_timeline",
    "WorkerTimeline",
    "render_terminal",
    "tree_renderable",
    "LiveTree",
    "render_graphviz",
    "dot_source",
    "render_html",
    "write_html",
    "plot_kv_timeline",
    "main_viz",
]
