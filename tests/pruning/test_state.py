"""State snapshots: validation of records and the queries rules use."""

from __future__ import annotations

import pytest

from tim.pruning import ListInfo, PruneState, PruneStatus, TaskInfo

RUN, DONE = PruneStatus.RUNNING, PruneStatus.DONE


def nested_state() -> PruneState:
    """T0 [ T1 [ T2 (running) ] ]   T3 [ T4 ]  -- lists 0, 1 open; list 2 completed."""
    tasks = {
        0: TaskInfo(0, None, RUN),
        1: TaskInfo(1, 0, RUN),
        2: TaskInfo(2, 1, RUN),
        3: TaskInfo(3, None, RUN),
        4: TaskInfo(4, 2, DONE),
    }
    lists = {
        0: ListInfo(0, owner=0, parent=None, completion=None, holders=frozenset({0})),
        1: ListInfo(1, owner=1, parent=0, completion=None, holders=frozenset({0})),
        2: ListInfo(2, owner=3, parent=None, completion=0, holders=frozenset({0, 1})),
    }
    return PruneState(tasks=tasks, lists=lists, views=frozenset({0, 1}))


def test_queries_on_a_nested_tree() -> None:
    state = nested_state()
    assert state.ancestors(1) == (0,)
    assert state.ancestors(0) == ()
    assert state.contains_running(0) is True  # T2 runs inside list 1, inside list 0
    assert state.contains_running(1) is True
    assert state.contains_running(2) is False
    assert [i.id for i in state.live_lists(0)] == [0, 1, 2]
    assert [i.id for i in state.live_lists(1)] == [2]
    assert [i.id for i in state.completed_lists(0)] == [2]


def test_snapshot_mappings_are_read_only_copies() -> None:
    tasks = {0: TaskInfo(0, None, DONE)}
    state = PruneState(tasks=tasks, lists={}, views=frozenset())
    tasks[1] = TaskInfo(1, None, DONE)
    assert list(state.tasks) == [0]
    with pytest.raises(TypeError):
        state.tasks[2] = TaskInfo(2, None, DONE)  # type: ignore[index]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TaskInfo(-1, None, DONE), "task id must be an int >= 0, got -1"),
        (lambda: TaskInfo(0, None, "done"), "task status must be a PruneStatus, got 'done'"),
        (lambda: TaskInfo(True, None, DONE), "task id must be an int >= 0, got True"),
        (lambda: ListInfo(0, owner=0, parent=None, completion=-2), "got -2"),
        (
            lambda: ListInfo(0, 0, None, 0, holders=frozenset({1}), evicted_in=frozenset({1})),
            r"list 0 is both held and evicted in views \[1\]",
        ),
        (
            lambda: ListInfo(4, 0, None, None, evicted_in=frozenset({2})),
            r"list 4 is evicted in views \[2\] but not completed \(completion=None\)",
        ),
        (
            lambda: PruneState({1: TaskInfo(0, None, DONE)}, {}, frozenset()),
            "task key 1 differs from its id 0",
        ),
        (
            lambda: PruneState({0: TaskInfo(0, 5, DONE)}, {}, frozenset()),
            "task 0 names unknown parent list 5",
        ),
        (
            lambda: PruneState({}, {0: ListInfo(0, 3, None, None)}, frozenset()),
            "list 0 names unknown owner task 3",
        ),
        (
            lambda: PruneState(
                {0: TaskInfo(0, None, DONE), 1: TaskInfo(1, None, DONE)},
                {0: ListInfo(0, 0, None, None), 1: ListInfo(1, 1, 0, None)},
                frozenset(),
            ),
            "list 1 has parent 0, but its owner task 1 is in list None",
        ),
        (
            lambda: PruneState(
                {0: TaskInfo(0, None, DONE)},
                {0: ListInfo(0, 0, None, 0, holders=frozenset({4}))},
                frozenset({1}),
            ),
            r"list 0 names views \[4\] that are not live",
        ),
        (
            lambda: PruneState(
                {0: TaskInfo(0, 1, DONE), 1: TaskInfo(1, 0, DONE)},
                {0: ListInfo(0, 0, 1, None), 1: ListInfo(1, 1, 0, None)},
                frozenset(),
            ),
            "nested inside itself",
        ),
    ],
)
def test_bad_records_raise_value_error_quoting_the_value(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
