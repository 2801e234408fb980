"""The rich tree: what each node shows, hostile text printed as written, the live view."""

from __future__ import annotations

import io

from rich.console import Console

from tests.viz.conftest import big_tree
from tim.engine.record import RunRecord, StreamRecord
from tim.tree import get_format
from tim.viz import LiveTree, load_run, render_terminal, tree_renderable


def _text(run, **kw) -> str:
    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    render_terminal(run, console, **kw)
    return console.export_text()


def test_each_node_shows_status_title_tokens_pruned_and_tool(parallel_path):
    view = load_run(parallel_path)
    lines = _text(view).splitlines()
    by_title = {title: next(line for line in lines if f"✓ {title} " in line)
                for title in ("plan", "compute A", "compute B", "add")}
    for title, task in ((t.title, t) for _, t in view.tree.walk()):
        line = by_title[title]
        assert f"{task.num_tokens} tok" in line and "done" in line
        assert ("✂ pruned" in line) == task.pruned
    tool_line = lines[lines.index(by_title["compute B"]) + 1]
    assert '⚙ calc(op="mul", a=3, b=4) → 12' in tool_line
    text = "\n".join(lines)
    assert "answer: 403" in text and "What is 17*23 + 3*4?" in text
    assert f"forks {view.stats.num_forks}" in text and "pruning buffer:0" in text


def test_unfinished_run_shows_running_tasks_and_the_error(unfinished_path):
    text = _text(unfinished_path)
    assert "◐ plan" in text and "running" in text
    assert "answer: none" in text and "max_new_tokens" in text and "partial tree" in text


def test_untitled_task_shows_the_start_of_its_thought(hostile_tree):
    text = _text(hostile_tree)
    untitled = hostile_tree.reasoning[1]
    assert untitled.title is None and f"✓ {untitled.thought} → " in text
    leaf = hostile_tree.reasoning[0].subtasks[0]
    assert leaf.title.startswith("#6 [bold red]")
    assert f"✗ {leaf.title} → " in text  # rich markup printed as written, not interpreted
    assert "<script>alert(1)</script>" in text and f"error: {leaf.error}" in text


def test_max_tasks_leaves_a_note():
    text = _text(big_tree(3, 3, 3), max_tasks=5)
    assert text.count("✓") == 5 and "… 34 more tasks" in text


def test_renderable_is_a_rich_group():
    from rich.console import Group

    assert isinstance(tree_renderable(big_tree(1, 1, 1)), Group)


def test_live_tree_redraws_as_the_record_grows():
    fmt = get_format("parallel")
    record = RunRecord("parallel", "none", "shift", [1])
    record.streams[()] = StreamRecord((), text='{"reasoning": [{"title": "first"}, {"title": "se')
    console = Console(file=io.StringIO(), width=80, record=True, color_system=None,
                      force_terminal=True)
    with LiveTree(console, question="Q?", refresh_per_second=1000) as live:
        live(record)
        record.streams[()].text = '{"reasoning": [{"title": "first"}, {"title": "second"}]'
        record.streams[(0,)] = StreamRecord((0,), token_ids=[1] * 4,
                                            text=fmt.child_header("first") + "thinking")
        live(record)
    text = console.export_text()
    assert "Q?" in text and "◐ first" in text and "4 tok" in text and "○ second" in text
