"""Eviction plans: sharing defers, nesting covers, bad selections are refused."""

from __future__ import annotations

import pytest

from tim import TimError
from tim.pruning import (
    BufferRule,
    EvictionPlan,
    ListInfo,
    NoPruning,
    PruneState,
    PruneStatus,
    TaskInfo,
    plan_evictions,
    split_selection,
)

RUN, DONE = PruneStatus.RUNNING, PruneStatus.DONE


def shared_state() -> PruneState:
    """Views 1 and 2 share list 0 (an older sibling's part); view 1 alone holds lists 1-3.

    T0 [ T1 ]          list 0, completion 0, held by {1, 2}
    T2 [ T3 [ T4 ] ]   list 1 (owner T2, completion 2) contains list 2 (owner T3, completion 1)
    T5 [ T6 ]          list 3, open: T6 runs
    """
    tasks = {
        0: TaskInfo(0, None, DONE),
        1: TaskInfo(1, 0, DONE),
        2: TaskInfo(2, None, DONE),
        3: TaskInfo(3, 1, DONE),
        4: TaskInfo(4, 2, DONE),
        5: TaskInfo(5, None, RUN),
        6: TaskInfo(6, 3, RUN),
    }
    lists = {
        0: ListInfo(0, owner=0, parent=None, completion=0, holders=frozenset({1, 2})),
        1: ListInfo(1, owner=2, parent=None, completion=2, holders=frozenset({1})),
        2: ListInfo(2, owner=3, parent=1, completion=1, holders=frozenset({1})),
        3: ListInfo(3, owner=5, parent=None, completion=None, holders=frozenset({1})),
    }
    return PruneState(tasks=tasks, lists=lists, views=frozenset({1, 2}))


def test_shared_lists_are_deferred_and_nested_lists_covered() -> None:
    state = shared_state()
    assert split_selection(state, 1, [1, 0, 2, 2]) == EvictionPlan(1, now=(1,), deferred=(0,))
    assert split_selection(state, 1, [2]) == EvictionPlan(1, now=(2,), deferred=())
    assert split_selection(state, 2, [0]) == EvictionPlan(2, now=(), deferred=(0,))
    assert split_selection(state, 1, []) == EvictionPlan(1, now=(), deferred=())


def test_now_is_ordered_by_completion_not_by_id() -> None:
    state = PruneState(
        tasks={i: TaskInfo(i, None, DONE) for i in range(3)},
        lists={
            i: ListInfo(i, owner=i, parent=None, completion=c, holders=frozenset({0}))
            for i, c in [(0, 2), (1, 0), (2, 1)]
        },
        views=frozenset({0}),
    )
    assert split_selection(state, 0, [0, 1, 2]).now == (1, 2, 0)
    assert plan_evictions(state, BufferRule(1)) == (EvictionPlan(0, now=(1, 2), deferred=()),)


@pytest.mark.parametrize(
    ("view", "selected", "message"),
    [
        (1, [3], "selected list 3 in view 1, but it is not completed"),
        (2, [1], "selected list 1 in view 2, but the view does not hold it"),
        (1, [9], "selected list 9 in view 1, but there is no such list"),
    ],
)
def test_bad_selection_raises_tim_error(view: int, selected: list[int], message: str) -> None:
    with pytest.raises(TimError, match=message):
        split_selection(shared_state(), view, selected)


def test_selection_with_running_task_inside_is_refused() -> None:
    # A completed list with a running task inside cannot come from the tracker; a
    # hand-built state must still never have it evicted.
    state = PruneState(
        tasks={0: TaskInfo(0, None, DONE), 1: TaskInfo(1, 0, RUN)},
        lists={0: ListInfo(0, owner=0, parent=None, completion=0, holders=frozenset({0}))},
        views=frozenset({0}),
    )
    with pytest.raises(TimError, match="a running task is inside it"):
        split_selection(state, 0, [0])


def test_view_must_be_live() -> None:
    with pytest.raises(ValueError, match="view 5 is not live"):
        split_selection(shared_state(), 5, [])


def test_plan_evictions_lists_only_views_with_something_to_do() -> None:
    state = shared_state()
    assert plan_evictions(state, NoPruning()) == ()
    assert plan_evictions(state, BufferRule(0)) == (
        EvictionPlan(1, now=(1,), deferred=(0,)),  # list 2 goes with list 1
        EvictionPlan(2, now=(), deferred=(0,)),
    )
    assert plan_evictions(state, BufferRule(1)) == (EvictionPlan(1, now=(2,), deferred=(0,)),)
    assert plan_evictions(state, BufferRule(2)) == (EvictionPlan(1, now=(), deferred=(0,)),)
