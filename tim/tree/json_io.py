"""TIM Thread-2 JSON <-> :class:`~tim.tree.task.TaskTree`, with located errors.

Plain form::

    {"reasoning": [Task, ...], "answer": str | null}
    Task    = {"title"?: str, "thought": str, "tooluse": ToolUse | null,
               "subtasks": [Task, ...] | null, "conclusion": str, "_meta"?: Meta}
    ToolUse = {"tool_name": str, "parameters": {...}, "tool_result"?: any}
    Meta    = {"node_id": str | null, "status": "pending" | "running" | "done" | "error",
               "num_tokens": int, "pruned": bool, "error": str | null}

On reading, "tooluse", "subtasks", "tool_result" and "_meta" (and each key of Meta) may
be missing and default to null / the dataclass defaults. Any other key is an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tim.errors import FormatError
from tim.tree.task import Task, TaskStatus, TaskTree, ToolUse

__all__ = ["tree_to_json", "tree_from_json", "json_type_name"]

_TASK_KEYS = ("title", "thought", "tooluse", "subtasks", "conclusion", "_meta")
_META_DEFAULTS: dict[str, Any] = {
    "node_id": None, "status": "done", "num_tokens": 0, "pruned": False, "error": None,
}


def json_type_name(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages.

    Examples
    --------
    >>> [json_type_name(v) for v in ("s", 1, 1.5, True, None, {}, [])]
    ['string', 'integer', 'number', 'boolean', 'null', 'object', 'array']
    """
    for kind, name in ((bool, "boolean"), (str, "string"), (int, "integer"), (float, "number"),
                       (dict, "object"), (list, "array")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def tree_to_json(tree: TaskTree, *, meta: bool = False) -> dict:
    """See :meth:`TaskTree.to_json`."""
    return {"reasoning": [_task_to_json(t, meta) for t in tree.reasoning], "answer": tree.answer}


def _task_to_json(task: Task, meta: bool) -> dict:
    out: dict[str, Any] = {} if task.title is None else {"title": task.title}
    out["thought"] = task.thought
    out["tooluse"] = None if task.tooluse is None else {
        "tool_name": task.tooluse.tool_name,
        "parameters": task.tooluse.parameters,
        "tool_result": task.tooluse.tool_result,
    }
    out["subtasks"] = None if task.subtasks is None else [
        _task_to_json(t, meta) for t in task.subtasks
    ]
    out["conclusion"] = task.conclusion
    if meta:
        out["_meta"] = {"node_id": task.node_id, "status": task.status.value,
                        "num_tokens": task.num_tokens, "pruned": task.pruned,
                        "error": task.error}
    return out


def tree_from_json(data: str | dict) -> TaskTree:
    """See :meth:`TaskTree.from_json`."""
    if isinstance(data, (str, bytes, bytearray)):
        try:
            data = json.loads(data, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as e:
            raise FormatError(f"invalid JSON: {e}") from None
    root = _expect(data, "<root>", dict, "object")
    _check_keys(root, "<root>", ("reasoning", "answer"), required=("reasoning",))
    tasks = _expect(root["reasoning"], "reasoning", list, "array")
    reasoning = [_task_from_json(t, f"reasoning[{i}]") for i, t in enumerate(tasks)]
    answer = root.get("answer")
    if answer is not None:
        _expect(answer, "answer", str, "string")
    return TaskTree(reasoning, answer)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _expect(value: Any, where: str, kind: type, name: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FormatError(f"{where}: expected {name}, got {json_type_name(value)}")
    return value


def _check_keys(obj: dict, where: str, allowed: tuple, required: tuple) -> None:
    for key in obj:
        if key not in allowed:
            raise FormatError(f"{where}: unexpected key {key!r}")
    for key in required:
        if key not in obj:
            raise FormatError(f"{where}: missing key {key!r}")


def _optional(obj: dict, key: str, where: str, read: Callable[[Any, str], Any]) -> Any:
    value = obj.get(key)
    return None if value is None else read(value, f"{where}.{key}")


def _task_from_json(data: Any, where: str) -> Task:
    obj = _expect(data, where, dict, "object")
    _check_keys(obj, where, _TASK_KEYS, required=("thought", "conclusion"))
    title = _optional(obj, "title", where, lambda v, w: _expect(v, w, str, "string"))
    subtasks = _optional(obj, "subtasks", where, lambda v, w: [
        _task_from_json(t, f"{w}[{i}]") for i, t in enumerate(_expect(v, w, list, "array"))
    ])
    meta = _optional(obj, "_meta", where, _meta_from_json) or {}
    return Task(
        thought=_expect(obj["thought"], f"{where}.thought", str, "string"),
        conclusion=_expect(obj["conclusion"], f"{where}.conclusion", str, "string"),
        title=title,
        tooluse=_optional(obj, "tooluse", where, _tooluse_from_json),
        subtasks=subtasks,
        **meta,
    )


def _tooluse_from_json(data: Any, where: str) -> ToolUse:
    obj = _expect(data, where, dict, "object")
    _check_keys(obj, where, ("tool_name", "parameters", "tool_result"),
                required=("tool_name", "parameters"))
    return ToolUse(
        tool_name=_expect(obj["tool_name"], f"{where}.tool_name", str, "string"),
        parameters=_expect(obj["parameters"], f"{where}.parameters", dict, "object"),
        tool_result=obj.get("tool_result"),
    )


def _meta_from_json(data: Any, where: str) -> dict:
    obj = _expect(data, where, dict, "object")
    _check_keys(obj, where, tuple(_META_DEFAULTS), required=())
    meta = {**_META_DEFAULTS, **obj}
    for key, kind, name in (("node_id", str, "string"), ("error", str, "string")):
        if meta[key] is not None:
            _expect(meta[key], f"{where}.{key}", kind, name)
    _expect(meta["num_tokens"], f"{where}.num_tokens", int, "integer")
    if meta["num_tokens"] < 0:
        raise FormatError(f"{where}.num_tokens: expected >= 0, got {meta['num_tokens']}")
    _expect(meta["pruned"], f"{where}.pruned", bool, "boolean")
    status = _expect(meta["status"], f"{where}.status", str, "string")
    try:
        meta["status"] = TaskStatus(status)
    except ValueError:
        names = ", ".join(repr(s.value) for s in TaskStatus)
        raise FormatError(f"{where}.status: expected one of {names}, got {status!r}") from None
    return meta
