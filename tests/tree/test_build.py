"""tim/tree/build.py: events -> tree, and the errors of incomplete or inconsistent events."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.errors import FormatError
from tim.tree import Event, EventKind, Task, TaskTree, assemble_tree, get_format

THREAD2 = get_format("thread2")
_TREE = TaskTree([Task("t", "c", subtasks=[Task("u", "d")]), Task("v", "e")], "a")


def _events(text: str) -> list[Event]:
    parser = THREAD2.parser()
    return parser.feed(text) + parser.close()


_EVENTS = _events(THREAD2.render(_TREE))


def _drop(kind, path):
    return [e for e in _EVENTS if not (e.kind is kind and e.path == path)]


@pytest.mark.parametrize("events, message", [
    (_drop(EventKind.TASK_CLOSED, (0, 0)), r"task \(0, 0\) is not finished"),
    (_drop(EventKind.SUBTASKS_OPENED, (0,)), r"task \(0,\) has children but no subtask list"),
    (_drop(EventKind.DOCUMENT_CLOSED, ()), "the document is not finished"),
    (_drop(EventKind.ANSWER_CLOSED, ()), "the document is not finished"),
    ([*_EVENTS, Event(EventKind.TASK_OPENED, 0, (5,))], r"numbered \[0, 1, 5\]"),
    ([*_EVENTS, Event(EventKind.TASK_OPENED, 0, (7, 0))], r"task \(7, 0\), whose parent"),
    ([*_EVENTS, Event(EventKind.MALFORMED, 3, (0,), value="'x'", expected="','")],
     r"stream of task \(0,\): offset 3: expected ',', found 'x'"),
    ([*_EVENTS, Event(EventKind.PLAN_ITEM, 0, (1,), field="title", value="B")]
     + [Event(EventKind.FIELD_CLOSED, 0, (1,), field="title", value="C")],
     "title 'C' differs from its plan item's 'B'"),
])
def test_incomplete_or_inconsistent_events_are_refused(events, message):
    with pytest.raises(FormatError, match=message):
        assemble_tree(events)


@settings(deadline=None, max_examples=30)
@given(data=st.data())
def test_event_order_across_tasks_does_not_matter(strategies, data):
    tree = data.draw(strategies.trees(max_depth=2))
    events = _events(THREAD2.render(tree))
    by_task: dict = {}
    for e in events:  # keep each task's own order; interleave tasks at random
        by_task.setdefault(e.path, []).append(e)
    groups = data.draw(st.permutations(list(by_task.values())))
    assert assemble_tree(e for g in groups for e in g) == tree
