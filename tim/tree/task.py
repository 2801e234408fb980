"""The task tree: plain dataclasses, no torch.

A run's result is a :class:`TaskTree`: the top-level tasks (``reasoning``) plus the
``answer``. Each :class:`Task` has a ``thought``, an optional :class:`ToolUse`, an optional
list of subtasks and a ``conclusion``, plus run metadata (node id, status, token count,
pruned flag, error) that the plain TIM JSON leaves out.

A *path* locates a task: ``(i,)`` is ``reasoning[i]``, ``(i, j)`` is
``reasoning[i].subtasks[j]``, and ``()`` is the root (the tree itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["TaskStatus", "ToolUse", "Task", "TaskTree", "TaskPath"]

TaskPath = tuple[int, ...]


class TaskStatus(Enum):
    """Where a task is in its life. Trees parsed from text or JSON are ``DONE``."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"


def _check_type(name: str, value: Any, kind: type | tuple[type, ...], *, optional: bool = False):
    if value is None and optional:
        return
    if isinstance(value, bool) and kind is int:
        raise ValueError(f"{name} must be an int, got {value!r}")
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ValueError(f"{name} must be {want}{' or None' if optional else ''}, got {value!r}")


@dataclass
class ToolUse:
    """One tool call: the tool's name, its JSON parameters and the JSON result.

    Examples
    --------
    >>> ToolUse("add", {"a": 1, "b": 2}, tool_result=3)
    ToolUse(tool_name='add', parameters={'a': 1, 'b': 2}, tool_result=3)
    """

    tool_name: str
    parameters: dict
    tool_result: Any = None

    def __post_init__(self) -> None:
        _check_type("ToolUse.tool_name", self.tool_name, str)
        _check_type("ToolUse.parameters", self.parameters, dict)


@dataclass
class Task:
    """One node of the tree.

    Parameters
    ----------
    thought, conclusion : str
        What the model wrote before and after the task's tool use and subtasks.
    title : str or None
        A short name; required by the ``parallel`` format, optional in ``thread2``.
    tooluse : ToolUse or None
    subtasks : list of Task or None
        ``None`` means the task did not split; ``[]`` is an (unusual) empty split.
    node_id, status, num_tokens, pruned, error
        Run metadata, kept out of the plain TIM JSON (see :meth:`TaskTree.to_json`).

    Examples
    --------
    >>> leaf = Task("12*3 is simple.", "36")
    >>> Task("Split it.", "Done: 36", subtasks=[leaf]).subtasks[0].conclusion
    '36'
    """

    thought: str
    conclusion: str
    title: str | None = None
    tooluse: ToolUse | None = None
    subtasks: list[Task] | None = None
    node_id: str | None = None
    status: TaskStatus = TaskStatus.DONE
    num_tokens: int = 0
    pruned: bool = False
    error: str | None = None

    def __post_init__(self) -> None:
        _check_type("Task.thought", self.thought, str)
        _check_type("Task.conclusion", self.conclusion, str)
        _check_type("Task.title", self.title, str, optional=True)
        _check_type("Task.tooluse", self.tooluse, ToolUse, optional=True)
        _check_type("Task.subtasks", self.subtasks, list, optional=True)
        for sub in self.subtasks or ():
            _check_type("Task.subtasks[...]", sub, Task)
        _check_type("Task.node_id", self.node_id, str, optional=True)
        _check_type("Task.status", self.status, TaskStatus)
        _check_type("Task.num_tokens", self.num_tokens, int)
        if self.num_tokens < 0:
            raise ValueError(f"Task.num_tokens must be >= 0, got {self.num_tokens!r}")
        _check_type("Task.pruned", self.pruned, bool)
        _check_type("Task.error", self.error, str, optional=True)


@dataclass
class TaskTree:
    """The whole result: the top-level tasks and the final answer.

    Examples
    --------
    >>> tree = TaskTree([Task("a", "b", subtasks=[Task("c", "d")]), Task("e", "f")], "42")
    >>> [(path, task.thought) for path, task in tree.walk()]
    [((0,), 'a'), ((0, 0), 'c'), ((1,), 'e')]
    >>> tree.num_tasks, tree.depth
    (3, 2)
    >>> tree.task_at((0, 0)).conclusion
    'd'
    """

    reasoning: list[Task] = field(default_factory=list)
    answer: str | None = None

    def __post_init__(self) -> None:
        _check_type("TaskTree.reasoning", self.reasoning, list)
        for task in self.reasoning:
            _check_type("TaskTree.reasoning[...]", task, Task)
        _check_type("TaskTree.answer", self.answer, str, optional=True)

    def walk(self) -> Iterator[tuple[TaskPath, Task]]:
        """Yield ``(path, task)`` for every task, depth first, parents before children."""
        stack: list[tuple[TaskPath, Task]] = [((i,), t) for i, t in enumerate(self.reasoning)]
        stack.reverse()
        while stack:
            path, task = stack.pop()
            yield path, task
            subs = task.subtasks or []
            stack.extend(((*path, i), t) for i, t in reversed(list(enumerate(subs))))

    @property
    def num_tasks(self) -> int:
        """How many tasks the tree holds, at every depth."""
        return sum(1 for _ in self.walk())

    @property
    def depth(self) -> int:
        """The longest path length: 0 for no tasks, 1 for top-level tasks only."""
        return max((len(path) for path, _ in self.walk()), default=0)

    def task_at(self, path: TaskPath) -> Task:
        """The task at ``path``; raises ``KeyError`` quoting a path that names no task."""
        tasks: list[Task] | None = self.reasoning
        task = None
        for i in path:
            if not tasks or not 0 <= i < len(tasks):
                raise KeyError(f"no task at path {path!r}")
            task = tasks[i]
            tasks = task.subtasks
        if task is None:
            raise KeyError(f"no task at path {path!r}")
        return task

    def to_json(self, *, meta: bool = False) -> dict:
        """TIM Thread-2 JSON as a dict; ``meta=True`` adds each task's run metadata.

        The plain form is ``{"reasoning": [...], "answer": ...}`` with tasks
        ``{"title"?, "thought", "tooluse", "subtasks", "conclusion"}`` ("title" only when
        set). With ``meta=True`` every task also carries ``"_meta": {"node_id", "status",
        "num_tokens", "pruned", "error"}``. :meth:`from_json` reads both forms.

        Examples
        --------
        >>> TaskTree([Task("t", "c")], "a").to_json()
        {'reasoning': [{'thought': 't', 'tooluse': None, 'subtasks': None, 'conclusion': 'c'}], 'answer': 'a'}
        """
        from tim.tree.json_io import tree_to_json

        return tree_to_json(self, meta=meta)

    @classmethod
    def from_json(cls, data: str | dict) -> TaskTree:
        """Read TIM Thread-2 JSON (a string or a dict); the inverse of :meth:`to_json`.

        Raises
        ------
        tim.errors.FormatError
            On invalid JSON or a wrong shape; the message names the JSON path, e.g.
            ``reasoning[2].subtasks[0].conclusion: expected string, got integer``.

        Examples
        --------
        >>> tree = TaskTree.from_json('{"reasoning": [{"thought": "t", "conclusion": "c"}], '
        ...                           '"answer": "a"}')
        >>> tree.reasoning[0].conclusion, tree.answer
        ('c', 'a')
        """
        from tim.tree.json_io import tree_from_json

        return tree_from_json(data)

    def to_networkx(self):
        """A ``networkx.DiGraph`` of the tree; see :func:`tim.tree.graph.tree_to_networkx`."""
        from tim.tree.graph import tree_to_networkx

        return tree_to_networkx(self)

    @classmethod
    def from_networkx(cls, graph) -> TaskTree:
        """The inverse of :meth:`to_networkx`; see :func:`tim.tree.graph.tree_from_networkx`."""
        from tim.tree.graph import tree_from_networkx

        return tree_from_networkx(graph)
