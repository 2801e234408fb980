"""The forced shape of a stress run, as per-stream segments. Pure Python: no torch.

A stress run decodes a tree whose *structure* is fixed in advance and whose *content* is
sampled. :class:`StressShape` says what that structure is; :func:`stream_segments` cuts
each stream's text into the segments of :mod:`tim.stress.segments` (``L`` Literal,
``C`` Content, ``F`` Forced; re-exported here). For ``thread2`` there is one stream; for
``parallel`` one per task plus the root's::

    thread2 ()     L{"reasoning": [{"title": "t1", "thought": "  C  L", "tooluse": null, ...
    parallel ()    L{"reasoning": [{"title": "t1"}, {"title": "t2"}]  F, "answer": "  C  L"}
    parallel (0,)  F{"title": "t1", "thought": "  C  L", "tooluse": null, "subtasks": null, ...

:func:`check_segments` proves the segments spell exactly what the format renders for the
same tree (:func:`skeleton_tree`, with a placeholder in each sampled field).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tim.stress.segments import (
    Content,
    Forced,
    Literal,
    Segment,
    merge_literals,
    placeholder,
    spell,
)
from tim.tree import Task, TaskPath, TaskTree, ToolUse, get_format
from tim.tree.formats.common import dumps

__all__ = [
    "Content",
    "Forced",
    "Literal",
    "NEEDLE_QUESTION",
    "Segment",
    "StressShape",
    "TOOL_NAME",
    "check_segments",
    "needle_fact",
    "skeleton_tree",
    "make_lookup",
    "stream_segments",
]

TOOL_NAME = "lookup"
TOOL_CALLS = ("none", "leaves", "all")
NEEDLE_QUESTION = "Question: what is the secret number stated in the first task?"
_FILLER = "the quick brown fox jumps over the lazy dog and "


def make_lookup(num_chars: int) -> Callable[[int], str]:
    """The stress run's tool: like a search, it returns a note of ``num_chars`` characters,
    which the runtime writes into the caller's stream as forced tokens in one step.

    Examples
    --------
    >>> make_lookup(24)(7)
    'note 7: the quick brown '
    """

    def lookup(n: int) -> str:
        """Look up note n."""
        head = f"note {n}: "
        body = _FILLER * (num_chars // len(_FILLER) + 1)
        return (head + body)[:max(num_chars, len(head))]

    return lookup


def needle_fact(needle: str) -> str:
    """The conclusion planted in the first top-level task."""
    return f"Remember this: the secret number is {needle}."


@dataclass(frozen=True)
class StressShape:
    """The structure a stress run forces.

    Parameters
    ----------
    num_tasks : int
        Top-level tasks (the ``reasoning`` list; never pruned, so they accumulate).
    depth : int
        Levels of tasks: 1 means top-level tasks only, 2 gives each one subtasks, ...
    fanout : int
        Subtasks of every task above the last level.
    thought_tokens, conclusion_tokens, answer_tokens : int
        Sampled tokens in each thought, each conclusion and the final answer.
    tool_calls : {"none", "leaves", "all"}
        Which tasks call the tool (the schema has one ``tooluse`` slot per task). Leaves
        are where work happens, and their results are pruned with their list.
    tool_result_chars : int
        Length of each tool result's text (see :func:`make_lookup`).
    needle : str, optional
        A fact to plant in the first top-level task's conclusion; the last top-level task
        then asks for it (its thought is :data:`NEEDLE_QUESTION`). Needs ``num_tasks >= 2``.

    Examples
    --------
    >>> StressShape().num_task_nodes  # 2 top-level tasks, each over 4 levels of 3-way splits
    242
    >>> StressShape(depth=0)
    Traceback (most recent call last):
    ...
    ValueError: depth must be an int >= 1, got 0
    """

    num_tasks: int = 2
    depth: int = 5
    fanout: int = 3
    thought_tokens: int = 4
    conclusion_tokens: int = 4
    answer_tokens: int = 8
    tool_calls: str = "leaves"
    tool_result_chars: int = 32
    needle: str | None = None

    def __post_init__(self) -> None:
        for name in ("num_tasks", "depth", "fanout", "thought_tokens", "conclusion_tokens",
                     "answer_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.tool_calls not in TOOL_CALLS:
            raise ValueError(f"tool_calls must be one of {TOOL_CALLS}, got {self.tool_calls!r}")
        value = self.tool_result_chars
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"tool_result_chars must be an int >= 0, got {value!r}")
        if self.needle is not None:
            if not (isinstance(self.needle, str) and self.needle.isascii()
                    and self.needle.isprintable() and self.needle.strip()
                    and '"' not in self.needle and "\\" not in self.needle):
                raise ValueError(f"needle must be printable ASCII without quotes or "
                                 f"backslashes, got {self.needle!r}")
            if self.num_tasks < 2:
                raise ValueError(f"a needle needs num_tasks >= 2 (plant, then ask), "
                                 f"got {self.num_tasks!r}")

    @property
    def num_task_nodes(self) -> int:
        """Tasks in the whole tree."""
        return self.num_tasks * sum(self.fanout**level for level in range(self.depth))


def _title(path: TaskPath) -> str:
    return f"t{path[-1] + 1}"  # short: titles are retained structure, paid for at every level


def _tooluse(shape: StressShape, index: int, *, leaf: bool) -> ToolUse | None:
    if shape.tool_calls == "all" or (shape.tool_calls == "leaves" and leaf):
        return ToolUse(TOOL_NAME, {"n": index}, make_lookup(shape.tool_result_chars)(index))
    return None


def skeleton_tree(shape: StressShape) -> TaskTree:
    """The tree a run of ``shape`` writes, with ``§key§`` in every sampled field."""
    counter = iter(range(shape.num_task_nodes))

    def task(path: TaskPath) -> Task:
        dotted = ".".join(str(i + 1) for i in path)
        thought = placeholder(f"thought {dotted}")
        conclusion = placeholder(f"conclusion {dotted}")
        if shape.needle is not None and path == (0,):
            conclusion = needle_fact(shape.needle)
        if shape.needle is not None and path == (shape.num_tasks - 1,):
            thought = NEEDLE_QUESTION
        index = next(counter)
        subtasks = None
        if len(path) < shape.depth:
            subtasks = [task((*path, i)) for i in range(shape.fanout)]
        tooluse = _tooluse(shape, index, leaf=subtasks is None)
        return Task(thought, conclusion, title=_title(path), tooluse=tooluse, subtasks=subtasks)

    return TaskTree([task((i,)) for i in range(shape.num_tasks)], placeholder("answer"))


def stream_segments(shape: StressShape, format_name: str) -> dict[TaskPath, list[Segment]]:
    """Each stream's segments (one stream ``()`` for ``thread2``), keyed by stream path.

    Examples
    --------
    >>> segs = stream_segments(StressShape(num_tasks=1, depth=1, tool_calls="none"), "thread2")[()]
    >>> [type(s).__name__ for s in segs]
    ['Literal', 'Content', 'Literal', 'Content', 'Literal', 'Content', 'Literal']
    """
    fmt = get_format(format_name)
    tree = skeleton_tree(shape)
    forks = fmt.forks
    out: dict[TaskPath, list[Segment]] = {}

    def field(segs: list[Segment], text: str) -> None:
        # a sampled field is a placeholder in the skeleton; anything else is literal text
        if text.startswith("§") and text.endswith("§"):
            key = text[1:-1]
            kind = key.split(" ")[0]
            n = {"thought": shape.thought_tokens, "conclusion": shape.conclusion_tokens,
                 "answer": shape.answer_tokens}[kind]
            segs.append(Content(key, n))
        else:
            segs.append(Literal(text))

    def task_body(segs: list[Segment], path: TaskPath, task: Task) -> None:
        """From the thought's body to the closing ``}``."""
        field(segs, task.thought)
        if task.tooluse is None:
            segs.append(Literal('", "tooluse": null'))
        else:
            tool = task.tooluse
            segs.append(Literal(f'", "tooluse": {{"tool_name": {dumps(tool.tool_name)}, '
                                f'"parameters": {dumps(tool.parameters)}'))
            segs.append(Forced(fmt.tool_result_text(dumps(tool.tool_result))))
        segs.append(Literal(', "subtasks": '))
        if task.subtasks is None:
            segs.append(Literal('null, "conclusion": "'))
        elif forks:
            segs.append(Literal(_plan(task.subtasks)))
            segs.append(Forced(fmt.join_text(len(path))))
            for i, sub in enumerate(task.subtasks):
                child_stream((*path, i), sub)
        else:
            segs.append(Literal("["))
            for i, sub in enumerate(task.subtasks):
                if i:
                    segs.append(Literal(", "))
                inline_task(segs, (*path, i), sub)
            segs.append(Literal('], "conclusion": "'))
        field(segs, task.conclusion)
        segs.append(Literal('"}'))

    def inline_task(segs: list[Segment], path: TaskPath, task: Task) -> None:
        segs.append(Literal(f'{{"title": {dumps(task.title)}, "thought": "'))
        task_body(segs, path, task)

    def child_stream(path: TaskPath, task: Task) -> None:
        segs: list[Segment] = [Forced(fmt.child_header(task.title))]
        out[path] = segs  # parent first: the dict keeps start order
        task_body(segs, path, task)

    root: list[Segment] = []
    out[()] = root
    if forks:
        root += [Literal('{"reasoning": ' + _plan(tree.reasoning)), Forced(fmt.join_text(0))]
        for i, task in enumerate(tree.reasoning):
            child_stream((i,), task)
    else:
        root.append(Literal('{"reasoning": ['))
        for i, task in enumerate(tree.reasoning):
            if i:
                root.append(Literal(", "))
            inline_task(root, (i,), task)
        root.append(Literal('], "answer": "'))
    field(root, tree.answer)
    root.append(Literal('"}'))
    return {path: merge_literals(segs) for path, segs in out.items()}


def _plan(tasks: list[Task]) -> str:
    return "[" + ", ".join(f'{{"title": {dumps(t.title)}}}' for t in tasks) + "]"


def check_segments(shape: StressShape, format_name: str,
                   segments: dict[TaskPath, list[Segment]]) -> None:
    """Raise AssertionError unless ``segments`` spell what the format renders for the
    shape's skeleton tree (internal invariant: the chooser writes only format text)."""
    rendered = get_format(format_name).render(skeleton_tree(shape))
    texts = {path: spell(segs) for path, segs in segments.items()}
    expected = rendered if isinstance(rendered, dict) else {(): rendered}
    assert texts == expected, "stress segments differ from the format's rendering"
