"""tim/tree/task.py: validation, walking, counting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.tree import Task, TaskStatus, TaskTree, ToolUse


def _count(tasks):  # independent oracle: plain recursion
    return sum(1 + _count(t.subtasks or []) for t in tasks)


def _depth(tasks):
    return max((1 + _depth(t.subtasks or []) for t in tasks), default=0)


def _paths(tasks, prefix=()):
    out = []
    for i, t in enumerate(tasks):
        out.append((*prefix, i))
        out += _paths(t.subtasks or [], (*prefix, i))
    return out


@settings(deadline=None, max_examples=50)
@given(data=st.data())
def test_walk_count_depth_match_recursion(strategies, data):
    tree = data.draw(strategies.trees(max_depth=4))
    walked = list(tree.walk())
    assert [p for p, _ in walked] == _paths(tree.reasoning)
    assert tree.num_tasks == _count(tree.reasoning)
    assert tree.depth == _depth(tree.reasoning)
    for path, task in walked:
        assert tree.task_at(path) is task


def test_task_at_rejects_paths_that_name_no_task():
    tree = TaskTree([Task("a", "b", subtasks=[Task("c", "d")])], "x")
    for path in [(), (1,), (0, 1), (0, 0, 0), (-1,)]:
        with pytest.raises(KeyError, match=str(path).replace("(", r"\(").replace(")", r"\)")):
            tree.task_at(path)


@pytest.mark.parametrize("kwargs, bad", [
    (dict(thought=1, conclusion="c"), "1"),
    (dict(thought="t", conclusion=None), "None"),
    (dict(thought="t", conclusion="c", title=3), "3"),
    (dict(thought="t", conclusion="c", tooluse={"tool_name": "x"}), "tool_name"),
    (dict(thought="t", conclusion="c", subtasks=({},)), r"\(\{\},\)"),
    (dict(thought="t", conclusion="c", subtasks=["x"]), "'x'"),
    (dict(thought="t", conclusion="c", status="done"), "'done'"),
    (dict(thought="t", conclusion="c", num_tokens=-1), "-1"),
    (dict(thought="t", conclusion="c", num_tokens=True), "True"),
    (dict(thought="t", conclusion="c", pruned=0), "0"),
    (dict(thought="t", conclusion="c", error=1.5), "1.5"),
])
def test_task_validation_quotes_the_bad_value(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        Task(**kwargs)


def test_tooluse_and_tree_validation():
    with pytest.raises(ValueError, match="'p'"):
        ToolUse("x", "p")
    with pytest.raises(ValueError, match="7"):
        ToolUse(7, {})
    with pytest.raises(ValueError, match="'r'"):
        TaskTree("r", None)
    with pytest.raises(ValueError, match="5"):
        TaskTree([], 5)


def test_defaults_describe_a_finished_task():
    task = Task("t", "c")
    assert (task.status, task.num_tokens, task.pruned, task.error) == (TaskStatus.DONE, 0,
                                                                        False, None)
    assert TaskTree().reasoning == [] and TaskTree().depth == 0
