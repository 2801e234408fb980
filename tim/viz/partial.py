"""The tree an unfinished run has written so far, rebuilt from its streams' text.

``tim.result.tree_of_record`` needs a whole document. A run that stopped early (an error,
``max_new_tokens``) or one still running (``on_step``) has only part of it; this module
parses each stream's text as far as it goes and keeps every task it saw:

- a task whose closing ``}`` was read is ``done``;
- one that was opened but not closed is ``running``, or ``error`` when its stream failed
  (the stream's error is kept on the task);
- a planned child (``parallel``) whose stream never started is ``pending``.

A field still being written shows the text written so far.
"""

from __future__ import annotations

import json
from typing import Any

from tim.engine.record import RunRecord
from tim.result import is_pruned, pruned_owners
from tim.tree import EventKind, Task, TaskPath, TaskStatus, TaskTree, ToolUse, get_format

__all__ = ["partial_tree"]


def partial_tree(record: RunRecord) -> TaskTree | None:
    """The tasks the record's streams have written so far, with run metadata.

    Parameters
    ----------
    record : RunRecord
        A finished or unfinished record.

    Returns
    -------
    TaskTree or None
        None when no stream has written a task yet; ``answer`` is None until written.

    Examples
    --------
    >>> from tim.engine.record import RunRecord, StreamRecord
    >>> rec = RunRecord("thread2", "none", "shift", [1])
    >>> rec.streams[()] = StreamRecord((), text='{"reasoning": [{"thought": "Half wr')
    >>> task = partial_tree(rec).reasoning[0]
    >>> task.thought, task.status.value
    ('Half wr', 'running')
    """
    fmt = get_format(record.format)
    tasks: dict[TaskPath, dict[str, Any]] = {}
    answer = None
    for path, stream in record.streams.items():
        parser = fmt.parser(path)
        open_field: tuple[TaskPath, str, int] | None = None
        for event in parser.feed(stream.text):
            kind, info = event.kind, tasks.setdefault(event.path, {}) if event.path else {}
            if kind is EventKind.TASK_OPENED:
                info["opened"] = True
            elif kind is EventKind.TASK_CLOSED:
                info["closed"] = True
            elif kind is EventKind.FIELD_OPENED:
                open_field = (event.path, event.field, event.offset)
            elif kind in (EventKind.FIELD_CLOSED, EventKind.PLAN_ITEM):
                info[event.field] = event.value
                open_field = None
            elif kind is EventKind.TOOLUSE_READY:
                info["tooluse"] = ToolUse(event.tool_name, event.value)
            elif kind is EventKind.TOOL_RESULT_CLOSED and "tooluse" in info:
                info["tooluse"].tool_result = event.value
            elif kind is EventKind.SUBTASKS_OPENED:
                info["has_subtasks"] = True
            elif kind is EventKind.ANSWER_CLOSED:
                answer = event.value
            elif kind is EventKind.MALFORMED and event.path:
                info["error"] = f"stream {list(path)}: {event.message}"
        if open_field is not None and open_field[0]:
            info = tasks.setdefault(open_field[0], {})
            info[open_field[1]] = _decode_prefix(stream.text[open_field[2]:])
        if stream.error and (path or not fmt.forks):
            owner = path if path in tasks or not tasks else _innermost_open(tasks)
            tasks.setdefault(owner, {})["error"] = stream.error
        if path and path in tasks:
            tasks[path]["num_tokens"] = len(stream.token_ids)
    tasks.pop((), None)
    if not tasks:
        return None
    pruned = pruned_owners(record)
    children: dict[TaskPath, list[int]] = {}
    for path in sorted(tasks):
        for i in range(1, len(path)):  # a child seen before its parent (never in order)
            tasks.setdefault(path[:i], {})
        children.setdefault(path[:-1], []).append(path[-1])
    return TaskTree(_tasks((), tasks, children, pruned), answer)


def _tasks(parent: TaskPath, tasks: dict, children: dict, pruned: set[TaskPath]) -> list[Task]:
    out = []
    for i in sorted(set(children.get(parent, ()))):
        path = (*parent, i)
        info = tasks[path]
        kids = _tasks(path, tasks, children, pruned) if path in children else None
        if kids is None and info.get("has_subtasks"):
            kids = []
        if info.get("error"):
            status = TaskStatus.ERROR
        elif info.get("closed"):
            status = TaskStatus.DONE
        elif info.get("opened"):
            status = TaskStatus.RUNNING
        else:
            status = TaskStatus.PENDING
        out.append(Task(
            thought=info.get("thought", ""),
            conclusion=info.get("conclusion", ""),
            title=info.get("title"),
            tooluse=info.get("tooluse"),
            subtasks=kids,
            node_id="/".join(map(str, path)),
            status=status,
            num_tokens=info.get("num_tokens", 0),
            pruned=is_pruned(path, pruned),
            error=info.get("error"),
        ))
    return out


def _innermost_open(tasks: dict[TaskPath, dict]) -> TaskPath:
    open_paths = [p for p, info in tasks.items() if p and info.get("opened")
                  and not info.get("closed")]
    return max(open_paths, key=len, default=max(tasks, key=len))


def _decode_prefix(raw: str) -> str:
    """The decoded start of a JSON string whose closing quote has not been written."""
    for cut in range(min(len(raw), 6) + 1):  # drop a half-written escape like '\\u00'
        try:
            return json.loads('"' + raw[: len(raw) - cut] + '"')
        except ValueError:
            continue
    return raw
