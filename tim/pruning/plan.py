"""Turn a rule's choices into an eviction plan: what to evict now, what must wait.

A rule chooses per view. Two things then decide what actually happens:

- **Sharing.** A list held by several live views (a prefix shared after a fork) is never
  evicted: it is *deferred* until only one view holds it (the others joined or finished).
- **Nesting.** Evicting a list removes its whole inner range, so a list nested inside a
  list evicted now is gone with it and is not reported again.

::

    view 1 selects [A, B, B1]      A held by views {1, 2}   B held by {1}   B1 inside B
    plan for view 1:  now = (B,)   deferred = (A,)          B1 goes with B
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from tim.errors import TimError
from tim.pruning.rules import Rule
from tim.pruning.state import ListId, PruneState, ViewId

__all__ = ["EvictionPlan", "split_selection", "plan_evictions"]


class EvictionPlan(NamedTuple):
    """What one view should do about the lists its rule selected.

    Attributes
    ----------
    view : ViewId
    now : tuple of ListId
        Evict these now: the view is their only holder. Oldest completion first; lists
        nested inside another list of ``now`` are left out (they go with it).
    deferred : tuple of ListId
        Selected, but still shared with other live views; selected again (and then
        evicted) once the view is their only holder. Oldest completion first.
    """

    view: ViewId
    now: tuple[ListId, ...]
    deferred: tuple[ListId, ...]


def _check_selectable(state: PruneState, view: ViewId, list_id: object, rule: object) -> None:
    where = f"rule {rule!r} selected list {list_id!r} in view {view}"
    if list_id not in state.lists:
        raise TimError(f"{where}, but there is no such list")
    info = state.lists[list_id]
    if view not in info.holders:
        raise TimError(f"{where}, but the view does not hold it")
    if not info.completed:
        raise TimError(f"{where}, but it is not completed")
    if state.contains_running(list_id):
        raise TimError(f"{where}, but a running task is inside it")


def split_selection(
    state: PruneState, view: ViewId, selected: Iterable[ListId], *, rule: object = None
) -> EvictionPlan:
    """Split one view's selected lists into those to evict now and those deferred.

    Parameters
    ----------
    state : PruneState
    view : ViewId
        A live view.
    selected : iterable of ListId
        What a rule selected for ``view``; duplicates are ignored.
    rule : object, optional
        Named in error messages.

    Returns
    -------
    EvictionPlan

    Raises
    ------
    ValueError
        If ``view`` is not live.
    TimError
        If a selected list does not exist, is not held by ``view``, is not completed or
        contains a running task.

    Examples
    --------
    >>> from tim.pruning import ListInfo, TaskInfo, PruneStatus
    >>> done = PruneStatus.DONE
    >>> state = PruneState(
    ...     tasks={0: TaskInfo(0, None, done), 1: TaskInfo(1, None, done)},
    ...     lists={0: ListInfo(0, owner=0, parent=None, completion=0, holders={1, 2}),
    ...            1: ListInfo(1, owner=1, parent=None, completion=1, holders={1})},
    ...     views=frozenset({1, 2}),
    ... )
    >>> split_selection(state, 1, [0, 1])
    EvictionPlan(view=1, now=(1,), deferred=(0,))
    """
    if view not in state.views:
        raise ValueError(f"view {view!r} is not live")
    chosen = set()
    for list_id in selected:
        _check_selectable(state, view, list_id, rule)
        chosen.add(list_id)
    now = {i for i in chosen if state.lists[i].holders == {view}}
    deferred = chosen - now
    covered = {i for i in chosen if any(a in now for a in state.ancestors(i))}

    def ordered(ids: set[ListId]) -> tuple[ListId, ...]:
        return tuple(sorted(ids - covered, key=lambda i: state.lists[i].completion))

    return EvictionPlan(view=view, now=ordered(now), deferred=ordered(deferred))


def plan_evictions(state: PruneState, rule: Rule) -> tuple[EvictionPlan, ...]:
    """Apply ``rule`` to every live view and split each choice with :func:`split_selection`.

    Views hold disjoint sets of unshared lists, so the plans never conflict: carry out
    every ``now`` of every plan.

    Parameters
    ----------
    state : PruneState
    rule : Rule

    Returns
    -------
    tuple of EvictionPlan
        One per live view with something selected, in view order.

    Raises
    ------
    TimError
        If the rule selects a list it may not evict (see :func:`split_selection`).

    Examples
    --------
    >>> from tim.pruning import ListInfo, TaskInfo, PruneStatus, get_rule
    >>> done = PruneStatus.DONE
    >>> state = PruneState(
    ...     tasks={i: TaskInfo(i, None, done) for i in range(3)},
    ...     lists={i: ListInfo(i, owner=i, parent=None, completion=i, holders={0})
    ...            for i in range(3)},
    ...     views=frozenset({0}),
    ... )
    >>> plan_evictions(state, get_rule("buffer:1"))
    (EvictionPlan(view=0, now=(0, 1), deferred=()),)
    """
    plans = []
    for view in sorted(state.views):
        plan = split_selection(state, view, rule.select(state, view), rule=rule)
        if plan.now or plan.deferred:
            plans.append(plan)
    return tuple(plans)
