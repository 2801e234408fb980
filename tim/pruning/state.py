"""Immutable snapshots of what pruning looks at: tasks, subtask lists, and the views holding them.

A *subtask list* is the token range strictly inside one task's ``"subtasks": [ ... ]``
(in the ``parallel`` format: the plan plus the children's retained parts joined after it).
It belongs to its owner task. A *view* is one worker's attention view; it *holds* a list
while the list's tokens are in that view and have not been evicted from it.

Nesting, for the example ``T1 [ T1.1 [ ... ] ]``::

    task T1 ──owns──> list L1 ──contains──> task T1.1 ──owns──> list L11
                      (parent None)                              (parent L1)

Everything here is plain data; :class:`tim.pruning.PruneTracker` builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

__all__ = ["TaskId", "ListId", "ViewId", "PruneStatus", "TaskInfo", "ListInfo", "PruneState"]

TaskId = int
ListId = int
ViewId = int


class PruneStatus(Enum):
    """Where a task is in its life, as pruning tracks it.

    Pruning only learns of a task once it starts, so there is no ``PENDING``; a task that
    failed is ``FAILED``. The user-facing tree has its own :class:`tim.tree.TaskStatus`.
    """

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def _check_id(kind: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{kind} must be an int >= 0, got {value!r}")


@dataclass(frozen=True)
class TaskInfo:
    """One task.

    Parameters
    ----------
    id : TaskId
    parent_list : ListId or None
        The subtask list this task is an item of; ``None`` for a top-level task.
    status : PruneStatus
    """

    id: TaskId
    parent_list: ListId | None
    status: PruneStatus

    def __post_init__(self) -> None:
        _check_id("task id", self.id)
        if self.parent_list is not None:
            _check_id("parent list id", self.parent_list)
        if not isinstance(self.status, PruneStatus):
            raise ValueError(f"task status must be a PruneStatus, got {self.status!r}")


@dataclass(frozen=True)
class ListInfo:
    """One subtask list.

    Parameters
    ----------
    id : ListId
    owner : TaskId
        The task whose ``"subtasks"`` this is.
    parent : ListId or None
        The list that contains this one (the owner's ``parent_list``); ``None`` at top level.
    completion : int or None
        Completion order (0 for the first list to complete, then 1, ...); ``None`` while open.
    holders : frozenset of ViewId
        Live views whose attention still holds the list's tokens.
    evicted_in : frozenset of ViewId
        Live views that evicted it, directly or together with a list containing it.

    Examples
    --------
    >>> info = ListInfo(id=3, owner=7, parent=None, completion=0, holders=frozenset({0}))
    >>> info.completed
    True
    >>> ListInfo(id=3, owner=7, parent=None, completion=None, evicted_in=frozenset({0}))
    Traceback (most recent call last):
    ...
    ValueError: list 3 is evicted in views [0] but not completed (completion=None)
    """

    id: ListId
    owner: TaskId
    parent: ListId | None
    completion: int | None
    holders: frozenset[ViewId] = frozenset()
    evicted_in: frozenset[ViewId] = frozenset()

    def __post_init__(self) -> None:
        _check_id("list id", self.id)
        _check_id("owner task id", self.owner)
        if self.parent is not None:
            _check_id("parent list id", self.parent)
        if self.completion is not None:
            _check_id("completion order", self.completion)
        object.__setattr__(self, "holders", frozenset(self.holders))
        object.__setattr__(self, "evicted_in", frozenset(self.evicted_in))
        both = self.holders & self.evicted_in
        if both:
            raise ValueError(f"list {self.id} is both held and evicted in views {sorted(both)}")
        if self.evicted_in and self.completion is None:
            raise ValueError(
                f"list {self.id} is evicted in views {sorted(self.evicted_in)} "
                f"but not completed (completion={self.completion!r})"
            )

    @property
    def completed(self) -> bool:
        """Whether the list has completed (all its items done, list closed)."""
        return self.completion is not None


@dataclass(frozen=True)
class PruneState:
    """A frozen snapshot of the task tree as pruning sees it.

    Parameters
    ----------
    tasks : mapping of TaskId to TaskInfo
    lists : mapping of ListId to ListInfo
    views : frozenset of ViewId
        The live views.

    Raises
    ------
    ValueError
        If a key differs from its record's id, or a record names a task, list or view
        that is not in the snapshot.

    Examples
    --------
    >>> state = PruneState(
    ...     tasks={0: TaskInfo(0, None, PruneStatus.RUNNING), 1: TaskInfo(1, 0, PruneStatus.DONE)},
    ...     lists={0: ListInfo(0, owner=0, parent=None, completion=0, holders=frozenset({5}))},
    ...     views=frozenset({5}),
    ... )
    >>> [info.id for info in state.completed_lists(5)]
    [0]
    >>> state.contains_running(0)
    False
    """

    tasks: Mapping[TaskId, TaskInfo]
    lists: Mapping[ListId, ListInfo]
    views: frozenset[ViewId]

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", MappingProxyType(dict(self.tasks)))
        object.__setattr__(self, "lists", MappingProxyType(dict(self.lists)))
        object.__setattr__(self, "views", frozenset(self.views))
        for key, task in self.tasks.items():
            if key != task.id:
                raise ValueError(f"task key {key!r} differs from its id {task.id!r}")
            if task.parent_list is not None and task.parent_list not in self.lists:
                raise ValueError(f"task {key} names unknown parent list {task.parent_list!r}")
        for key, info in self.lists.items():
            if key != info.id:
                raise ValueError(f"list key {key!r} differs from its id {info.id!r}")
            if info.owner not in self.tasks:
                raise ValueError(f"list {key} names unknown owner task {info.owner!r}")
            if info.parent != self.tasks[info.owner].parent_list:
                raise ValueError(
                    f"list {key} has parent {info.parent!r}, but its owner task "
                    f"{info.owner} is in list {self.tasks[info.owner].parent_list!r}"
                )
            unknown = (info.holders | info.evicted_in) - self.views
            if unknown:
                raise ValueError(f"list {key} names views {sorted(unknown)} that are not live")
        for key in self.lists:
            parent, num_steps = self.lists[key].parent, 0
            while parent is not None:
                num_steps += 1
                if num_steps > len(self.lists):
                    raise ValueError(f"list {key} is nested inside itself")
                parent = self.lists[parent].parent

    def live_lists(self, view: ViewId) -> tuple[ListInfo, ...]:
        """Lists the view holds (open or completed), in id order."""
        return tuple(info for _, info in sorted(self.lists.items()) if view in info.holders)

    def completed_lists(self, view: ViewId) -> tuple[ListInfo, ...]:
        """Completed lists the view holds, oldest completion first: TIMRUN's stack for this view."""
        done = [info for info in self.lists.values() if info.completed and view in info.holders]
        return tuple(sorted(done, key=lambda info: info.completion))

    def ancestors(self, list_id: ListId) -> tuple[ListId, ...]:
        """The lists containing ``list_id``, innermost first (``list_id`` itself excluded)."""
        out: list[ListId] = []
        parent = self.lists[list_id].parent
        while parent is not None:
            out.append(parent)
            parent = self.lists[parent].parent
        return tuple(out)

    def contains_running(self, list_id: ListId) -> bool:
        """Whether a running task lies anywhere inside the list, at any depth."""
        for task in self.tasks.values():
            if task.status is not PruneStatus.RUNNING or task.parent_list is None:
                continue
            if task.parent_list == list_id or list_id in self.ancestors(task.parent_list):
                return True
        return False
