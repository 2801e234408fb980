"""Events -> :class:`~tim.tree.task.TaskTree`: a pure function for both formats.

Event paths are paths in the whole tree, so the events of several streams (the
``parallel`` format's root and child streams) can be assembled in any order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tim.errors import FormatError
from tim.tree.events import Event, EventKind
from tim.tree.task import Task, TaskPath, TaskTree, ToolUse

__all__ = ["assemble_tree"]


def assemble_tree(events: Iterable[Event]) -> TaskTree:
    """Build the tree that a complete set of events describes.

    Parameters
    ----------
    events : iterable of Event
        Every event of every stream of one document.

    Raises
    ------
    tim.errors.FormatError
        On a ``MALFORMED`` event, an unfinished task or document, a plan title that its
        child contradicts, or children that are not numbered 0..n-1.

    Examples
    --------
    >>> from tim.tree.formats import get_format
    >>> fmt = get_format("thread2")
    >>> parser = fmt.parser()
    >>> events = parser.feed('{"reasoning": [{"thought": "t", "tooluse": null, '
    ...                      '"subtasks": null, "conclusion": "c"}], "answer": "a"}')
    >>> assemble_tree(events + parser.close())
    TaskTree(reasoning=[Task(thought='t', conclusion='c', title=None, tooluse=None, subtasks=None, node_id=None, status=<TaskStatus.DONE: 'done'>, num_tokens=0, pruned=False, error=None)], answer='a')
    """
    records: dict[TaskPath, dict[str, Any]] = {(): {}}
    for event in events:
        kind, path = event.kind, event.path
        if kind is EventKind.MALFORMED:
            raise FormatError(f"stream of task {path}: {event.message}")
        record = records.setdefault(path, {})
        if kind is EventKind.TASK_OPENED:
            record["opened"] = True
        elif kind is EventKind.TASK_CLOSED:
            record["closed"] = True
        elif kind in (EventKind.FIELD_CLOSED, EventKind.PLAN_ITEM):
            if event.field == "title" and record.get("title", event.value) != event.value:
                raise FormatError(f"task {path}: title {event.value!r} differs from its plan "
                                  f"item's {record['title']!r}")
            record[event.field] = event.value
        elif kind is EventKind.TOOLUSE_READY:
            record["tooluse"] = ToolUse(event.tool_name, event.value)
        elif kind is EventKind.TOOL_RESULT_CLOSED:
            record["tooluse"].tool_result = event.value
        elif kind is EventKind.SUBTASKS_OPENED:
            record["has_subtasks"] = True
        elif kind is EventKind.ANSWER_CLOSED:
            record["answer"] = event.value
        elif kind is EventKind.DOCUMENT_CLOSED:
            record["closed"] = True
    root = records[()]
    if not root.get("closed") or "answer" not in root:
        raise FormatError("the document is not finished: no answer and closing '}'")
    kids: dict[TaskPath, list[int]] = {}
    for path in records:
        if path and path[:-1] not in records:
            raise FormatError(f"events for task {path}, whose parent has none")
        if path:
            kids.setdefault(path[:-1], []).append(path[-1])
    return TaskTree(_children(records, kids, ()), root["answer"])


def _children(records: dict, kids: dict[TaskPath, list[int]], path: TaskPath) -> list[Task]:
    indices = sorted(kids.get(path, []))
    if indices != list(range(len(indices))):
        raise FormatError(f"the children of {path} are numbered {indices}, not 0..n-1")
    return [_task(records, kids, (*path, i)) for i in indices]


def _task(records: dict, kids: dict[TaskPath, list[int]], path: TaskPath) -> Task:
    record = records[path]
    if not (record.get("opened") and record.get("closed")):
        raise FormatError(f"task {path} is not finished")
    children = _children(records, kids, path)
    if children and not record.get("has_subtasks"):
        raise FormatError(f"task {path} has children but no subtask list")
    return Task(
        thought=record["thought"],
        conclusion=record["conclusion"],
        title=record.get("title"),
        tooluse=record.get("tooluse"),
        subtasks=children if record.get("has_subtasks") else None,
    )
