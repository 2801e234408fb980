"""A fresh engine run (tiny random model, replayed tree) goes through every picture.

The committed run files in data/ may age as the engine changes; this run is made now.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tests.viz.conftest import needs_dot
from tests.viz.realruns import run, tool
from tim.tree import Task, TaskTree
from tim.viz import (
    dot_source,
    load_run,
    plot_kv_timeline,
    render_graphviz,
    render_terminal,
    worker_timeline,
    write_html,
)


@pytest.fixture(scope="module")
def fresh_run_file(tmp_path_factory):
    """A run file the engine writes now (about 6 s: some 300 engine steps)."""
    tree = TaskTree([Task("Two parts.", "2 and 2", title="P", subtasks=[
        Task("one", "2", title="x", tooluse=tool("add", 1, 1)),
        Task("two", "2", title="y"),
    ])], answer="4")
    result = run(tree, "2+2?", pruning="buffer:0")
    assert result.answer == "4", result.error
    path = tmp_path_factory.mktemp("fresh") / "run.json"
    result.save(path)
    return path


@pytest.mark.slow
def test_fresh_run_round_trips_through_every_view(tmp_path, fresh_run_file):
    view = load_run(fresh_run_file)
    assert [t.title for _, t in view.tree.walk()] == ["P", "x", "y"]
    assert [t.pruned for _, t in view.tree.walk()] == [False, True, True]
    timeline = worker_timeline(view.record)
    assert timeline.num_lanes == 2
    assert [e.kind for e in timeline.events].count("tool") == 1

    console = Console(file=io.StringIO(), width=100, record=True, color_system=None)
    render_terminal(view, console)
    text = console.export_text()
    assert "⚙ calc(" in text and "✂ pruned" in text
    assert "fork at step" in dot_source(view)
    assert '"ti": "x"' in write_html(view, tmp_path / "v.html").read_text(encoding="utf-8")
    assert plot_kv_timeline(view, tmp_path / "kv.png", window=1024).stat().st_size > 10_000


@pytest.mark.slow
@needs_dot
def test_fresh_run_draws_with_graphviz(tmp_path, fresh_run_file):
    assert "✂ pruned" in render_graphviz(fresh_run_file, tmp_path / "t.svg").read_text()
