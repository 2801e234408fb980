"""The tracker's mutable records of tasks and subtask lists, and the questions asked of them.

:class:`tim.pruning.PruneTracker` owns these records and changes them on each event. The
functions here only read them: whether a running task is inside a list, why a view may
not evict a list, which invariant is broken, and the frozen :class:`PruneState` copy.
Pure Python: no torch.

A list's views, for a list ``L`` forked into view 1 and evicted there::

    holders    = {0}    views whose attention still holds L's tokens
    evicted_in = {1}    live views that evicted L (directly or inside a list containing it)
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field

from tim.pruning.state import ListId, ListInfo, PruneState, PruneStatus, TaskId, TaskInfo, ViewId

__all__ = [
    "ListRecord",
    "TaskRecord",
    "contains_running",
    "eviction_blocker",
    "freeze",
    "integrity_problem",
]


@dataclass
class TaskRecord:
    """One task, as the tracker changes it."""

    parent_list: ListId | None
    status: PruneStatus = PruneStatus.RUNNING
    own_list: ListId | None = None


@dataclass
class ListRecord:
    """One subtask list, as the tracker changes it; ``nested`` lists are its items' lists."""

    owner: TaskId
    parent: ListId | None
    completion: int | None = None
    items: list[TaskId] = field(default_factory=list)
    nested: list[ListId] = field(default_factory=list)
    holders: set[ViewId] = field(default_factory=set)
    evicted_in: set[ViewId] = field(default_factory=set)


def contains_running(tasks: Mapping[TaskId, TaskRecord], lists: Mapping[ListId, ListRecord],
                     list_id: ListId) -> bool:
    """Whether a running task lies anywhere inside the list, at any depth.

    Examples
    --------
    >>> tasks = {0: TaskRecord(None, own_list=0), 1: TaskRecord(0)}
    >>> lists = {0: ListRecord(owner=0, parent=None, items=[1], holders={0})}
    >>> contains_running(tasks, lists, 0)
    True
    """
    for task in lists[list_id].items:
        record = tasks[task]
        if record.status is PruneStatus.RUNNING:
            return True
        if record.own_list is not None and contains_running(tasks, lists, record.own_list):
            return True
    return False


def eviction_blocker(tasks: Mapping[TaskId, TaskRecord], lists: Mapping[ListId, ListRecord],
                     views: Set[ViewId], *, view: ViewId, list_id: ListId) -> str | None:
    """Why ``view`` may not evict ``list_id`` now, or None when it may.

    Examples
    --------
    >>> tasks = {0: TaskRecord(None, own_list=0), 1: TaskRecord(0, PruneStatus.DONE)}
    >>> lists = {0: ListRecord(owner=0, parent=None, completion=0, items=[1], holders={0, 1})}
    >>> eviction_blocker(tasks, lists, {0, 1}, view=0, list_id=0)
    'it is shared with views [1]'
    >>> eviction_blocker(tasks, lists, {0, 1}, view=2, list_id=0)
    'the view is not live'
    """
    if view not in views:
        return "the view is not live"
    if list_id not in lists:
        return "there is no such list"
    info = lists[list_id]
    if view not in info.holders:
        return "the view does not hold it"
    if info.completion is None:
        return "it is not completed"
    if contains_running(tasks, lists, list_id):
        return "a running task is inside it"
    if info.holders != {view}:
        return f"it is shared with views {sorted(info.holders - {view})}"
    return None


def integrity_problem(tasks: Mapping[TaskId, TaskRecord], lists: Mapping[ListId, ListRecord],
                      views: Set[ViewId]) -> str | None:
    """The first broken invariant of the records, in words, or None when all hold.

    Examples
    --------
    >>> tasks = {0: TaskRecord(None, own_list=0)}
    >>> lists = {0: ListRecord(owner=0, parent=None, holders={0}, evicted_in={1})}
    >>> integrity_problem(tasks, lists, {0, 1})
    'list 0 is evicted but not completed'
    """
    for i, info in lists.items():
        if not (info.holders | info.evicted_in) <= views:
            return f"list {i} names views that are not live"
        if info.holders & info.evicted_in:
            return f"list {i} is both held and evicted in a view"
        if info.evicted_in and info.completion is None:
            return f"list {i} is evicted but not completed"
        if info.completion is not None and contains_running(tasks, lists, i):
            return f"list {i} is completed but a running task is inside it"
        if info.parent is not None and not info.holders <= lists[info.parent].holders:
            return f"list {i} is held by a view that does not hold its parent list"
    return None


def freeze(tasks: Mapping[TaskId, TaskRecord], lists: Mapping[ListId, ListRecord],
           views: Set[ViewId]) -> PruneState:
    """An immutable :class:`PruneState` copy of the records.

    Examples
    --------
    >>> state = freeze({0: TaskRecord(None)}, {}, {0})
    >>> state.tasks[0].status, state.views
    (<PruneStatus.RUNNING: 'running'>, frozenset({0}))
    """
    frozen_tasks = {i: TaskInfo(i, t.parent_list, t.status) for i, t in tasks.items()}
    frozen_lists = {
        i: ListInfo(
            id=i,
            owner=info.owner,
            parent=info.parent,
            completion=info.completion,
            holders=frozenset(info.holders),
            evicted_in=frozenset(info.evicted_in),
        )
        for i, info in lists.items()
    }
    return PruneState(tasks=frozen_tasks, lists=frozen_lists, views=frozenset(views))
