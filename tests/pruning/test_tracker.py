"""PruneTracker on hand-built trees: TIM's buffer example, sharing, nesting, event errors."""

from __future__ import annotations

import doctest

import pytest

import tim.pruning.plan
import tim.pruning.rules
import tim.pruning.state
import tim.pruning.tracker
from tim.pruning import (
    BufferRule,
    EvictionPlan,
    PruneStatus,
    PruneTracker,
    get_rule,
)


def live_completed(tracker: PruneTracker, view: int) -> set[int]:
    return {info.id for info in tracker.snapshot().completed_lists(view)}


def run_tim_example(spec: str) -> tuple[PruneTracker, dict[str, int], list, list]:
    """The example of docs/pruning.md, in one view; after each list completes, and again
    after its owner concludes, prune and record (lists reported evicted, completed lists
    still held). Returns the tracker, the list ids by name, and the two records.

        T1 [ T1.1, T1.2 [ T1.2.1, T1.2.2 ] ]   T2 [ T2.1, T2.2 ]   T3 [ T3.1 ]
    """
    tracker = PruneTracker(get_rule(spec))
    tracker.add_view(0)
    names: dict[str, int] = {}
    steps: list[tuple[set[str], set[str]]] = []
    concluded: list[tuple[set[str], set[str]]] = []
    by_id = {}

    def prune_into(record: list) -> None:
        plans = tracker.prune()
        evicted = {by_id[i] for plan in plans for i in plan.now}
        record.append((evicted, {by_id[i] for i in live_completed(tracker, 0)}))
        tracker.check_integrity()

    def complete(name: str) -> None:
        tracker.close_list(names[name])
        prune_into(steps)

    def conclude(task: int) -> None:
        tracker.finish_task(task)
        prune_into(concluded)

    def leaf(parent_list: int) -> None:
        tracker.finish_task(tracker.open_task(parent_list))

    def open_list(name: str, owner: int) -> None:
        names[name] = tracker.open_list(owner, view=0)
        by_id[names[name]] = name

    t1 = tracker.open_task(None)
    open_list("L1", t1)
    leaf(names["L1"])
    t12 = tracker.open_task(names["L1"])
    open_list("L12", t12)
    leaf(names["L12"])
    leaf(names["L12"])
    complete("L12")
    conclude(t12)
    complete("L1")
    conclude(t1)
    for name, num_items in (("L2", 2), ("L3", 1)):
        task = tracker.open_task(None)
        open_list(name, task)
        for _ in range(num_items):
            leaf(names[name])
        complete(name)
        conclude(task)
    return tracker, names, steps, concluded


# After L12, L1, L2, L3 complete in turn: (reported evicted, completed lists still held).
TIM_EXAMPLE = {
    "buffer:0": [({"L12"}, set()), ({"L1"}, set()), ({"L2"}, set()), ({"L3"}, set())],
    "buffer:1": [(set(), {"L12"}), ({"L12"}, {"L1"}), ({"L1"}, {"L2"}), ({"L2"}, {"L3"})],
    "buffer:2": [
        (set(), {"L12"}),
        (set(), {"L12", "L1"}),
        ({"L12"}, {"L1", "L2"}),
        ({"L1"}, {"L2", "L3"}),
    ],
    "buffer:3": [
        (set(), {"L12"}),
        (set(), {"L12", "L1"}),
        (set(), {"L12", "L1", "L2"}),
        ({"L12"}, {"L1", "L2", "L3"}),
    ],
    "none": [
        (set(), {"L12"}),
        (set(), {"L12", "L1"}),
        (set(), {"L12", "L1", "L2"}),
        (set(), {"L12", "L1", "L2", "L3"}),
    ],
}
TIM_EXAMPLE["buffer:inf"] = TIM_EXAMPLE["none"]


@pytest.mark.parametrize("spec", sorted(TIM_EXAMPLE))
def test_tim_buffer_example(spec: str) -> None:
    _, _, steps, concluded = run_tim_example(spec)
    assert steps == TIM_EXAMPLE[spec]
    # a prune after the owner's conclusion (the engine runs one) changes nothing at "close"
    assert concluded == [(set(), held) for _, held in TIM_EXAMPLE[spec]]


@pytest.mark.parametrize("spec", sorted(s for s in TIM_EXAMPLE if s.startswith("buffer:")))
def test_tim_buffer_example_at_the_conclusion(spec: str) -> None:
    """``@conclusion``: nothing leaves when a list completes (its owner has not concluded);
    when the owner concludes, the same lists leave as at the close under ``buffer:k``."""
    _, _, steps, concluded = run_tim_example(f"{spec}@conclusion")
    assert all(evicted == set() for evicted, _ in steps)
    before = [set()] + [held for _, held in TIM_EXAMPLE[spec][:-1]]
    for (_, held), earlier, name in zip(steps, before, ["L12", "L1", "L2", "L3"], strict=True):
        assert held == earlier | {name}  # the list just completed is held until the conclusion
    assert concluded == TIM_EXAMPLE[spec]


def test_tim_example_evicted_lists_are_recorded_per_view() -> None:
    tracker, names, _, _ = run_tim_example("buffer:1")
    state = tracker.snapshot()
    evicted = {name for name, i in names.items() if state.lists[i].evicted_in == {0}}
    assert evicted == {"L12", "L1", "L2"}
    assert state.lists[names["L3"]].holders == {0}


def test_shared_list_is_deferred_until_single_holder() -> None:
    """Parallel siblings under buffer:1: the list both siblings inherit waits for the join."""
    tracker = PruneTracker(BufferRule(1))
    tracker.add_view(0)
    t1 = tracker.open_task(None)
    l1 = tracker.open_list(t1, 0)
    tracker.finish_task(tracker.open_task(l1))
    tracker.close_list(l1)
    assert tracker.prune() == ()
    tracker.finish_task(t1)

    t2 = tracker.open_task(None)
    l2 = tracker.open_list(t2, 0)  # the plan: two items, one worker each
    a, b = tracker.open_task(l2), tracker.open_task(l2)
    tracker.fork(0, 1)
    tracker.fork(0, 2)
    la = tracker.open_list(a, 1)
    tracker.finish_task(tracker.open_task(la))
    tracker.close_list(la)
    # View 1 now holds l1 (shared by 0, 1, 2) and la (its own): l1 must wait.
    assert tracker.prune() == (EvictionPlan(view=1, now=(), deferred=(l1,)),)
    assert not tracker.can_evict(1, l1)
    with pytest.raises(ValueError, match=r"shared with views \[0, 2\]"):
        tracker.mark_evicted(1, l1)
    tracker.finish_task(a)

    lb = tracker.open_list(b, 2)
    tracker.finish_task(tracker.open_task(lb))
    tracker.close_list(lb)
    assert tracker.prune() == (
        EvictionPlan(view=1, now=(), deferred=(l1,)),
        EvictionPlan(view=2, now=(), deferred=(l1,)),
    )
    tracker.finish_task(b)

    tracker.join(1, 0)  # view 0 takes la; l1 is still shared with view 2
    assert tracker.prune() == (
        EvictionPlan(view=0, now=(), deferred=(l1,)),
        EvictionPlan(view=2, now=(), deferred=(l1,)),
    )
    tracker.join(2, 0)  # now view 0 alone holds l1, la, lb: keep the newest (lb)
    assert tracker.prune() == (EvictionPlan(view=0, now=(l1, la), deferred=()),)
    assert live_completed(tracker, 0) == {lb}
    tracker.close_list(l2)
    assert tracker.prune() == (EvictionPlan(view=0, now=(lb,), deferred=()),)
    assert live_completed(tracker, 0) == {l2}
    tracker.check_integrity()


def test_dropped_view_releases_shared_list() -> None:
    tracker = PruneTracker(BufferRule(0))
    tracker.add_view(0)
    task = tracker.open_task(None)
    lst = tracker.open_list(task, 0)
    tracker.fork(0, 7)
    tracker.finish_task(tracker.open_task(lst))
    tracker.close_list(lst)
    plans = tracker.prune()
    assert [p.deferred for p in plans] == [(lst,), (lst,)]
    assert tracker.snapshot().lists[lst].holders == {0, 7}
    tracker.drop_view(7)
    assert tracker.prune() == (EvictionPlan(view=0, now=(lst,), deferred=()),)
    assert tracker.snapshot().lists[lst].evicted_in == {0}


class TopLevelOnly:
    """A custom rule: evict completed lists of top-level tasks; never a nested one directly."""

    def select(self, state, view):
        return [
            info.id
            for info in state.completed_lists(view)
            if info.parent is None and state.tasks[info.owner].status is PruneStatus.DONE
        ]


def test_custom_rule_evicts_nested_lists_with_their_container() -> None:
    tracker = PruneTracker(TopLevelOnly())
    tracker.add_view(0)
    t1 = tracker.open_task(None)
    l1 = tracker.open_list(t1, 0)
    t11 = tracker.open_task(l1)
    l11 = tracker.open_list(t11, 0)
    tracker.finish_task(tracker.open_task(l11))
    tracker.close_list(l11)
    tracker.finish_task(t11)
    tracker.close_list(l1)
    assert tracker.prune() == ()  # l1's owner has not concluded yet; l11 is nested
    tracker.finish_task(t1)
    assert tracker.prune() == (EvictionPlan(view=0, now=(l1,), deferred=()),)
    state = tracker.snapshot()
    assert state.lists[l11].evicted_in == {0}  # gone with l1, not reported itself
    assert state.live_lists(0) == ()
    assert tracker.prune() == ()


class OpenListRule:
    def select(self, state, view):
        return [info.id for info in state.live_lists(view)]


def test_rule_that_breaks_an_invariant_is_refused() -> None:
    tracker = PruneTracker(OpenListRule())
    tracker.add_view(0)
    task = tracker.open_task(None)
    tracker.open_list(task, 0)
    with pytest.raises(tim.TimError, match="not completed"):
        tracker.prune()


def test_failed_task_completes_its_open_list() -> None:
    tracker = PruneTracker(BufferRule(0))
    tracker.add_view(0)
    task = tracker.open_task(None)
    lst = tracker.open_list(task, 0)
    child = tracker.open_task(lst)
    with pytest.raises(ValueError, match="running tasks"):
        tracker.finish_task(task, PruneStatus.FAILED)
    tracker.finish_task(child, PruneStatus.FAILED)
    with pytest.raises(ValueError, match="its list 0 is open"):
        tracker.finish_task(task)
    tracker.finish_task(task, PruneStatus.FAILED)
    assert tracker.snapshot().lists[lst].completed
    assert tracker.prune() == (EvictionPlan(view=0, now=(lst,), deferred=()),)


def test_events_out_of_order_raise() -> None:
    tracker = PruneTracker(get_rule("none"))
    with pytest.raises(ValueError, match="view 0 is not live"):
        tracker.open_list(tracker.open_task(None), 0)
    tracker.add_view(0)
    with pytest.raises(ValueError, match="already live"):
        tracker.add_view(0)
    with pytest.raises(ValueError, match="view id must be an int >= 0, got -1"):
        tracker.add_view(-1)
    task = tracker.open_task(None)
    lst = tracker.open_list(task, 0)
    with pytest.raises(ValueError, match="already has list"):
        tracker.open_list(task, 0)
    child = tracker.open_task(lst)
    with pytest.raises(ValueError, match="still has running tasks"):
        tracker.close_list(lst)
    tracker.add_view(3)
    with pytest.raises(ValueError, match=f"view 3 does not hold list {lst}"):
        tracker.open_list(child, 3)
    with pytest.raises(ValueError, match=f"cannot evict list {lst}: it is not completed"):
        tracker.mark_evicted(0, lst)
    tracker.finish_task(child)
    with pytest.raises(ValueError, match="already finished"):
        tracker.finish_task(child)
    with pytest.raises(ValueError, match="finishes as DONE or FAILED"):
        tracker.finish_task(task, PruneStatus.RUNNING)
    tracker.close_list(lst)
    with pytest.raises(ValueError, match="already completed"):
        tracker.close_list(lst)
    with pytest.raises(ValueError, match="takes no new task"):
        tracker.open_task(lst)
    with pytest.raises(ValueError, match="does not hold it"):
        tracker.mark_evicted(3, lst)
    with pytest.raises(ValueError, match="into itself"):
        tracker.join(0, 0)
    with pytest.raises(ValueError, match="unknown task 99"):
        tracker.finish_task(99)
    with pytest.raises(ValueError, match="must have a select"):
        PruneTracker("buffer:1")


@pytest.mark.parametrize(
    "module", [tim.pruning.state, tim.pruning.rules, tim.pruning.plan, tim.pruning.tracker]
)
def test_docstring_examples_run(module) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
