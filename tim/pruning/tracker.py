"""PruneTracker: the small stateful shell that follows tree and view events for pruning.

The engine drives it with events; :meth:`PruneTracker.prune` runs the pure core
(:func:`tim.pruning.plan_evictions` on a :class:`tim.pruning.PruneState` snapshot) and
records the evictions. The tracker holds no tokens: the engine maps each list id to the
spans it covers and evicts those. Its records, and the read-only questions asked of them
(eviction preconditions, invariants, the snapshot), are :mod:`tim.pruning.records`'s.

Events, in the order a run produces them::

    add_view(0)                      root view: the prompt (never a list, never evicted)
    t = open_task(parent_list=None)  a task starts (its title / thought follow)
    l = open_list(t, view=0)         its "subtasks": [ opens in view 0
    c = open_task(parent_list=l)     ... items of l, possibly on forked views:
    fork(0, 1)                       view 1 now holds everything view 0 holds
    finish_task(c)                   an item's conclusion is closed
    join(1, 0)                       view 0 takes view 1's retained lists; view 1 ends
    close_list(l)                    every item is done and l is closed: l is COMPLETED
    prune()                          the rule runs; evictions are recorded and returned
    finish_task(t)                   t's conclusion (after the list) is closed
"""

from __future__ import annotations

from tim.errors import TimError
from tim.pruning.plan import EvictionPlan, plan_evictions
from tim.pruning.records import (
    ListRecord,
    TaskRecord,
    eviction_blocker,
    freeze,
    integrity_problem,
)
from tim.pruning.rules import Rule
from tim.pruning.state import ListId, PruneState, PruneStatus, TaskId, ViewId

__all__ = ["PruneTracker"]


class PruneTracker:
    """Follows tasks, subtask lists and views, and applies a pruning rule to them.

    Ids of tasks and lists come from the tracker's own counters; view ids come from the
    caller (its worker ids) and must not be live twice. Events that break the tree's
    order (closing a list whose items still run, ...) raise ``ValueError``.

    Parameters
    ----------
    rule : Rule
        For example ``get_rule("buffer:1")``.

    Examples
    --------
    Two top-level tasks, each with one subtask, under ``buffer:1``:

    >>> from tim.pruning import get_rule
    >>> tracker = PruneTracker(get_rule("buffer:1"))
    >>> tracker.add_view(0)
    >>> for _ in range(2):
    ...     task = tracker.open_task(parent_list=None)
    ...     subtasks = tracker.open_list(task, view=0)
    ...     tracker.finish_task(tracker.open_task(parent_list=subtasks))
    ...     tracker.close_list(subtasks)
    ...     plans = tracker.prune()
    ...     tracker.finish_task(task)
    >>> plans                       # the second completion pushed the first list out
    (EvictionPlan(view=0, now=(0,), deferred=()),)
    >>> [info.id for info in tracker.snapshot().live_lists(0)]
    [1]
    """

    def __init__(self, rule: Rule) -> None:
        if not isinstance(rule, Rule):
            raise ValueError(f"rule must have a select(state, view) method, got {rule!r}")
        self._rule = rule
        self._tasks: dict[TaskId, TaskRecord] = {}
        self._lists: dict[ListId, ListRecord] = {}
        self._views: set[ViewId] = set()
        self._num_completed = 0

    @property
    def rule(self) -> Rule:
        """The rule :meth:`plan` and :meth:`prune` apply."""
        return self._rule

    # -- views -------------------------------------------------------------------------

    def add_view(self, view: ViewId) -> None:
        """Start a view that holds no list yet (the root worker, over the prompt)."""
        if isinstance(view, bool) or not isinstance(view, int) or view < 0:
            raise ValueError(f"view id must be an int >= 0, got {view!r}")
        if view in self._views:
            raise ValueError(f"view {view!r} is already live")
        self._views.add(view)

    def fork(self, parent_view: ViewId, child_view: ViewId) -> None:
        """Start ``child_view`` holding every list ``parent_view`` holds (a shared prefix)."""
        self._require_view(parent_view)
        self.add_view(child_view)
        for info in self._lists.values():
            if parent_view in info.holders:
                info.holders.add(child_view)

    def join(self, child_view: ViewId, parent_view: ViewId) -> None:
        """End ``child_view``; ``parent_view`` takes the lists it still held (its retained part)."""
        self._require_view(child_view)
        self._require_view(parent_view)
        if child_view == parent_view:
            raise ValueError(f"cannot join view {child_view!r} into itself")
        for info in self._lists.values():
            if child_view in info.holders:
                info.holders.add(parent_view)
        self.drop_view(child_view)

    def drop_view(self, view: ViewId) -> None:
        """End ``view`` (finished or cancelled); lists it shared may become evictable."""
        self._require_view(view)
        self._views.remove(view)
        for info in self._lists.values():
            info.holders.discard(view)
            info.evicted_in.discard(view)

    # -- tree ----------------------------------------------------------------------------

    def open_task(self, parent_list: ListId | None = None) -> TaskId:
        """Start a task, as an item of ``parent_list`` (``None``: a top-level task)."""
        if parent_list is not None:
            self._require_list(parent_list)
            info = self._lists[parent_list]
            if (
                info.completion is not None
                or self._tasks[info.owner].status is not PruneStatus.RUNNING
            ):
                raise ValueError(f"list {parent_list} is closed; it takes no new task")
        task = len(self._tasks)
        self._tasks[task] = TaskRecord(parent_list=parent_list)
        if parent_list is not None:
            self._lists[parent_list].items.append(task)
        return task

    def finish_task(self, task: TaskId, status: PruneStatus = PruneStatus.DONE) -> None:
        """End a running task: DONE once its conclusion is closed, or FAILED.

        No item of its list may still run. A DONE task's list, if it has one, must be
        completed. A FAILED task's list, if still open, completes with it: it takes no more
        items, so it may be pruned like any other.
        """
        record = self._require_task(task)
        if status is PruneStatus.RUNNING or not isinstance(status, PruneStatus):
            raise ValueError(f"a task finishes as DONE or FAILED, got {status!r}")
        if record.status is not PruneStatus.RUNNING:
            raise ValueError(f"task {task} already finished as {record.status.name}")
        own = record.own_list
        if own is not None:
            self._require_items_finished(own)
            if self._lists[own].completion is None:
                if status is PruneStatus.DONE:
                    raise ValueError(f"task {task} cannot be DONE: its list {own} is open")
                self._complete(own)
        record.status = status

    def open_list(self, owner: TaskId, view: ViewId) -> ListId:
        """Open ``owner``'s subtask list in ``view``; its parent list is the one ``owner`` is in."""
        record = self._require_task(owner)
        self._require_view(view)
        if record.status is not PruneStatus.RUNNING:
            raise ValueError(f"task {owner} is {record.status.name}; it cannot open a list")
        if record.own_list is not None:
            raise ValueError(f"task {owner} already has list {record.own_list}")
        parent = record.parent_list
        if parent is not None and view not in self._lists[parent].holders:
            raise ValueError(
                f"view {view} does not hold list {parent}, which contains task {owner}"
            )
        list_id = len(self._lists)
        self._lists[list_id] = ListRecord(owner=owner, parent=parent, holders={view})
        if parent is not None:
            self._lists[parent].nested.append(list_id)
        record.own_list = list_id
        return list_id

    def close_list(self, list_id: ListId) -> None:
        """Mark a list COMPLETED: every item is done and the list is closed.

        Call it when the last item's task has finished and the list's ``]`` is written
        (``thread2``), or at the join (``parallel``); always before the owner's conclusion.
        """
        info = self._require_list(list_id)
        if info.completion is not None:
            raise ValueError(f"list {list_id} is already completed")
        if self._tasks[info.owner].status is not PruneStatus.RUNNING:
            raise ValueError(f"list {list_id}'s owner task {info.owner} is no longer running")
        self._require_items_finished(list_id)
        self._complete(list_id)

    # -- pruning -------------------------------------------------------------------------

    def snapshot(self) -> PruneState:
        """An immutable copy of the current state."""
        return freeze(self._tasks, self._lists, self._views)

    def plan(self) -> tuple[EvictionPlan, ...]:
        """What the rule would evict now, without recording anything."""
        return plan_evictions(self.snapshot(), self._rule)

    def can_evict(self, view: ViewId, list_id: ListId) -> bool:
        """Whether ``view`` may evict ``list_id`` now (see :meth:`mark_evicted`)."""
        return self._why_not_evictable(view, list_id) is None

    def mark_evicted(self, view: ViewId, list_id: ListId) -> None:
        """Record that ``view`` evicted ``list_id``, and with it every list nested inside.

        Raises ``ValueError`` unless ``view`` holds the list alone, the list is completed
        and no running task is inside it.
        """
        reason = self._why_not_evictable(view, list_id)
        if reason is not None:
            raise ValueError(f"view {view!r} cannot evict list {list_id!r}: {reason}")
        pending = [list_id]
        while pending:
            info = self._lists[pending.pop()]
            if view in info.holders:
                info.holders.remove(view)
                info.evicted_in.add(view)
            pending.extend(info.nested)

    def prune(self) -> tuple[EvictionPlan, ...]:
        """Plan with the rule, record every ``now`` eviction, and return the plans."""
        plans = self.plan()
        for plan in plans:
            for list_id in plan.now:
                self.mark_evicted(plan.view, list_id)
        return plans

    def check_integrity(self) -> None:
        """Raise :class:`tim.TimError` if an internal invariant is broken."""
        problem = integrity_problem(self._tasks, self._lists, self._views)
        if problem is not None:
            raise TimError(problem)

    # -- helpers -------------------------------------------------------------------------

    def _require_view(self, view: ViewId) -> None:
        if view not in self._views:
            raise ValueError(f"view {view!r} is not live")

    def _require_task(self, task: TaskId) -> TaskRecord:
        if task not in self._tasks:
            raise ValueError(f"unknown task {task!r}")
        return self._tasks[task]

    def _require_list(self, list_id: ListId) -> ListRecord:
        if list_id not in self._lists:
            raise ValueError(f"unknown list {list_id!r}")
        return self._lists[list_id]

    def _require_items_finished(self, list_id: ListId) -> None:
        running = [
            t for t in self._lists[list_id].items if self._tasks[t].status is PruneStatus.RUNNING
        ]
        if running:
            raise ValueError(f"list {list_id} still has running tasks {running}")

    def _complete(self, list_id: ListId) -> None:
        self._lists[list_id].completion = self._num_completed
        self._num_completed += 1

    def _why_not_evictable(self, view: ViewId, list_id: ListId) -> str | None:
        return eviction_blocker(self._tasks, self._lists, self._views, view=view, list_id=list_id)
