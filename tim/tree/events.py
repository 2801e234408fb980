"""Structural events that a format's incremental parser emits.

Offsets count characters (not bytes, not tokens) from the start of one stream. An
event's ``offset`` is the position just after the character that completes it, so
``text[:event.offset]`` is the text that was needed to see it. The one exception is
``MALFORMED``: its offset is where the first character that cannot continue a valid
stream begins (the start of the offending JSON token), or the stream's length when the
stream ends early; ``text[:offset]`` is then the longest prefix the parser accepted.

========================  ==========================  ========================================
kind                      offset just after           payload
========================  ==========================  ========================================
``TASK_OPENED``           the task's ``{``            --
``FIELD_OPENED``          the value's opening ``"``   ``field``: title/thought/conclusion/answer
``FIELD_CLOSED``          the value's closing ``"``   ``field``, ``value`` (decoded str)
``TOOLUSE_READY``         the ``}`` of parameters     ``tool_name``, ``value`` (parameters dict)
``TOOL_RESULT_CLOSED``    the ``}`` of the tooluse    ``tool_name``, ``value`` (decoded result)
``SUBTASKS_OPENED``       the list's ``[``            -- (path ``()`` is the reasoning list)
``PLAN_ITEM``             the plan item's ``}``       ``field="title"``, ``value`` (child title)
``SUBTASKS_CLOSED``       the list's ``]``            --
``TASK_CLOSED``           the task's ``}``            --
``ANSWER_CLOSED``         the answer's closing ``"``  ``field="answer"``, ``value``
``DOCUMENT_CLOSED``       the root object's ``}``     --
``MALFORMED``             see above                   ``expected``, ``value`` (what was found)
========================  ==========================  ========================================

The text strictly inside a subtask list is ``text[opened.offset:closed.offset - 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from tim.tree.task import TaskPath

__all__ = ["EventKind", "Event"]


class EventKind(Enum):
    """What happened in the stream; see the module docstring for offsets and payloads."""

    TASK_OPENED = "task_opened"
    FIELD_OPENED = "field_opened"
    FIELD_CLOSED = "field_closed"
    TOOLUSE_READY = "tooluse_ready"
    TOOL_RESULT_CLOSED = "tool_result_closed"
    SUBTASKS_OPENED = "subtasks_opened"
    PLAN_ITEM = "plan_item"
    SUBTASKS_CLOSED = "subtasks_closed"
    TASK_CLOSED = "task_closed"
    ANSWER_CLOSED = "answer_closed"
    DOCUMENT_CLOSED = "document_closed"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class Event:
    """One structural event.

    Parameters
    ----------
    kind : EventKind
    offset : int
        Character offset in the stream (see the module docstring).
    path : tuple of int
        The task the event is about, as a path in the whole tree (``()`` is the root).
        For ``PLAN_ITEM`` it is the child's path; for ``MALFORMED`` the innermost open task.
    field : str or None
        ``"title"``, ``"thought"``, ``"conclusion"`` or ``"answer"`` for field events.
    value : Any
        The decoded payload: a field's string, the tool parameters or result, a plan
        title, or for ``MALFORMED`` a description of what was found.
    tool_name : str or None
        For ``TOOLUSE_READY`` and ``TOOL_RESULT_CLOSED``.
    expected : str or None
        For ``MALFORMED``: what the parser expected at ``offset``.

    Examples
    --------
    >>> e = Event(EventKind.MALFORMED, 7, (0,), value="'x'", expected="','")
    >>> e.message
    "offset 7: expected ',', found 'x'"
    """

    kind: EventKind
    offset: int
    path: TaskPath = ()
    field: str | None = None
    value: Any = None
    tool_name: str | None = None
    expected: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, EventKind):
            raise ValueError(f"Event.kind must be an EventKind, got {self.kind!r}")
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0:
            raise ValueError(f"Event.offset must be an int >= 0, got {self.offset!r}")
        if not isinstance(self.path, tuple):
            raise ValueError(f"Event.path must be a tuple, got {self.path!r}")

    @property
    def message(self) -> str:
        """A one-line description; for ``MALFORMED`` what was expected and found."""
        if self.kind is EventKind.MALFORMED:
            return f"offset {self.offset}: expected {self.expected}, found {self.value}"
        return f"offset {self.offset}: {self.kind.value} at {self.path}"
