"""One solution, two traces: tim's ``thread2`` document and a flat chain of thought.

A trace is a tuple of :class:`Segment`: text the model writes, or text the runtime forces
(a tool result). Both traces hold the same steps, in the same order: each task's title and
thought when it opens, the leaf tool's result, each inner task's conclusion when it closes.

The flat trace, for ``height 1``::

    p: split 1
    p0: leaf 3          <- " 3" is forced (the leaf tool's result)
    p1: leaf 7
    p+: add 3 7 0       <- " 0" is forced (the add tool's result)
    p: 0
    answer 0
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tim.tree import Task, TaskTree, ToolUse, get_format
from tim.tree.formats.common import dumps

from .task import ADD_TOOL, LEAF_TOOL

__all__ = ["Segment", "tree_trace", "flat_trace", "parse_flat", "trace_text",
           "flat_tool_call", "FLAT_ANSWER"]

FLAT_ANSWER = "answer "
_TOOL_RESULT = re.compile(r', "tool_result": -?\d+\}')
_FLAT_LEAF = re.compile(r"(?:^|\n)(p[01]*): leaf$")
_FLAT_ADD = re.compile(r"(?:^|\n)p[01]*\+: add (\d+) (\d+)$")
_OPEN = re.compile(r"^(p[01]*): (split \d+|leaf)(?: (\d+))?$")
_ADD = re.compile(r"^(p[01]*\+): add (\d+) (\d+) (\d+)$")
_CLOSE = re.compile(r"^(p[01]*): (\d+)$")


@dataclass(frozen=True)
class Segment:
    """A run of trace text: written by the model, or forced by the runtime (a tool result)."""

    text: str
    forced: bool = False


def trace_text(segments: tuple[Segment, ...]) -> str:
    return "".join(s.text for s in segments)


def tree_trace(tree: TaskTree) -> tuple[Segment, ...]:
    """The ``thread2`` document of ``tree``, tool results as forced segments.

    Examples
    --------
    >>> from .task import Problem, solve
    >>> segs = tree_trace(solve(Problem(height=1, seed=0)))
    >>> [s.text for s in segs if s.forced]
    [', "tool_result": 8}', ', "tool_result": 6}', ', "tool_result": 4}']
    """
    text = get_format("thread2").render(tree)
    segments, start = [], 0
    for match in _TOOL_RESULT.finditer(text):
        segments += [Segment(text[start:match.start()]), Segment(match.group(), forced=True)]
        start = match.end()
    segments.append(Segment(text[start:]))
    return tuple(_merge(segments))


def flat_trace(tree: TaskTree) -> tuple[Segment, ...]:
    """The same steps as plain lines: ``title: thought`` when a task opens (a leaf's line
    ends with its forced tool result), ``title: conclusion`` when an inner task closes."""
    segments: list[Segment] = []
    for task in tree.reasoning:
        segments += _flat_task(task)
    segments.append(Segment(f"{FLAT_ANSWER}{tree.answer}\n"))
    return tuple(_merge(segments))


def _flat_task(task: Task) -> list[Segment]:
    if task.tooluse is not None:
        args = "".join(f" {v}" for k, v in task.tooluse.parameters.items() if k != "path")
        return [Segment(f"{task.title}: {task.thought}{args}"),
                Segment(f" {dumps(task.tooluse.tool_result)}", forced=True), Segment("\n")]
    out = [Segment(f"{task.title}: {task.thought}\n")]
    for child in task.subtasks or []:
        out += _flat_task(child)
    return out + [Segment(f"{task.title}: {task.conclusion}\n")]


def _merge(segments: list[Segment]) -> list[Segment]:
    """Join neighbours of the same kind; drop empty segments."""
    out: list[Segment] = []
    for seg in segments:
        if not seg.text:
            continue
        if out and out[-1].forced == seg.forced:
            out[-1] = Segment(out[-1].text + seg.text, seg.forced)
        else:
            out.append(seg)
    return out


def flat_tool_call(text: str) -> tuple[str, dict] | None:
    """``(tool name, parameters)`` when a flat trace's text ends in a tool call
    (``p01: leaf`` or ``p0+: add 3 7``), else None.

    >>> flat_tool_call("p: split 1\\np0: leaf"), flat_tool_call("p0: leaf 3")
    (('leaf', {'path': 'p0'}), None)
    >>> flat_tool_call("p0: 3\\np+: add 3 7")
    ('add', {'a': 3, 'b': 7})
    """
    if (match := _FLAT_LEAF.search(text)) is not None:
        return LEAF_TOOL, {"path": match.group(1)}
    if (match := _FLAT_ADD.search(text)) is not None:
        return ADD_TOOL, {"a": int(match.group(1)), "b": int(match.group(2))}
    return None


def parse_flat(text: str) -> TaskTree:
    """Read a flat trace back into the task tree it spells; ``ValueError`` at a bad line.

    Examples
    --------
    >>> from .task import Problem, solve
    >>> tree = solve(Problem(height=2, seed=1))
    >>> parse_flat(trace_text(flat_trace(tree))).to_json() == tree.to_json()
    True
    """
    lines = text.splitlines()
    if not lines or not lines[-1].startswith(FLAT_ANSWER):
        raise ValueError(f"a flat trace ends with {FLAT_ANSWER!r}<digit>, got {lines[-1:]!r}")
    tasks, pos = [], 0
    while pos < len(lines) - 1:
        task, pos = _parse_flat_task(lines, pos)
        tasks.append(task)
    return TaskTree(reasoning=tasks, answer=lines[-1][len(FLAT_ANSWER):])


def _parse_flat_task(lines: list[str], pos: int) -> tuple[Task, int]:
    match = _OPEN.match(lines[pos])
    if match is None:
        raise ValueError(f"line {pos + 1}: expected 'path: thought', got {lines[pos]!r}")
    title, thought, result = match.groups()
    if thought == "leaf":
        if result is None:
            raise ValueError(f"line {pos + 1}: a leaf line needs its tool result")
        tooluse = ToolUse(tool_name=LEAF_TOOL, parameters={"path": title},
                          tool_result=int(result))
        return Task(title=title, thought=thought, tooluse=tooluse, conclusion=result), pos + 1
    children, pos = [], pos + 1
    while pos < len(lines) and _CLOSE.match(lines[pos]) is None:
        if (add := _ADD.match(lines[pos])) is not None:
            title_, a, b, total = add.groups()
            tooluse = ToolUse(tool_name=ADD_TOOL, parameters={"a": int(a), "b": int(b)},
                              tool_result=int(total))
            children.append(Task(title=title_, thought=ADD_TOOL, tooluse=tooluse,
                                 conclusion=total))
            pos += 1
            continue
        child, pos = _parse_flat_task(lines, pos)
        children.append(child)
    close = _CLOSE.match(lines[pos]) if pos < len(lines) else None
    if close is None or close.group(1) != title:
        raise ValueError(f"line {pos + 1}: expected the conclusion of {title!r}")
    return Task(title=title, thought=thought, subtasks=children,
                conclusion=close.group(2)), pos + 1
