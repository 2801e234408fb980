"""tim/tree/events.py."""

from __future__ import annotations

import pytest

from tim.tree import Event, EventKind


@pytest.mark.parametrize("kwargs, bad", [
    (dict(kind="task_opened", offset=0), "'task_opened'"),
    (dict(kind=EventKind.TASK_OPENED, offset=-1), "-1"),
    (dict(kind=EventKind.TASK_OPENED, offset=True), "True"),
    (dict(kind=EventKind.TASK_OPENED, offset=0, path=[0]), r"\[0\]"),
])
def test_event_validation_quotes_the_bad_value(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        Event(**kwargs)


def test_events_are_frozen_values():
    a = Event(EventKind.FIELD_CLOSED, 5, (0, 1), field="thought", value="x")
    assert a == Event(EventKind.FIELD_CLOSED, 5, (0, 1), field="thought", value="x")
    assert a != Event(EventKind.FIELD_CLOSED, 6, (0, 1), field="thought", value="x")
    with pytest.raises(AttributeError):
        a.offset = 3
    assert a.message == "offset 5: field_closed at (0, 1)"
