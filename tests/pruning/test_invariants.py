"""Invariants of pruning over random trees grown in random valid orders, with forks and joins.

Each example draws a tree shape, then grows it one event at a time in a random order that
the format allows (a list completes after all its items; a task concludes after its list),
with random forks, joins and drops of views and the odd failed task in between.

The oracle is :class:`Model`, the test's own bookkeeping of which view holds which list,
kept apart from the tracker. After every event the rule runs (``prune``) and the test checks:

- only completed lists with no running task inside are evicted, and only by their sole holder;
- no list among a view's newest k completed lists is evicted, directly or with a container;
- after pruning, every completed list a view holds beyond its newest k is shared (deferred),
  and the plan's ``deferred`` is exactly those;
- evictions are monotone: a list a view lost never comes back to it;
- the tracker's holders and evictions equal the model's;
- ``buffer:inf`` and ``none`` never evict and stay identical;
- in one view, the evictions are exactly TIMRUN's stack (push on completion, pop the oldest
  while more than k).

Both points of ``buffer:k`` run through the same checks: the model's stack takes a completed
list at once (``close``) or only once the list's owner task has finished
(``buffer:k@conclusion``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from tim.pruning import BufferRule, NoPruning, PruneStatus, PruneTracker

POINTS = ("close", "conclusion")

MAX_VIEWS = 4
MAX_VIEW_EVENTS = 12

# Event kinds, repeated to weight the draw.
TREE_KINDS = ["task"] * 4 + ["list"] * 4 + ["close"] * 4 + ["finish"] * 4 + ["fail"]
VIEW_KINDS = ["fork"] * 2 + ["join", "drop"]

# A task's shape: None (no subtasks) or the shapes of its subtasks (possibly none).
task_shapes = st.recursive(st.none(), lambda kids: st.lists(kids, max_size=3), max_leaves=10)
tree_shapes = st.lists(task_shapes, min_size=1, max_size=4)


class Model:
    """What the run looks like, computed independently of the tracker.

    ``point`` is when a completed list goes on a view's stack: ``"close"`` at once,
    ``"conclusion"`` once its owner task is no longer running.
    """

    def __init__(self, shape: list, point: str = "close") -> None:
        self.point = point
        self.pending: dict[int | None, list] = {None: list(shape)}  # items not yet started
        self.task_shape: dict[int, list | None] = {}
        self.task_parent: dict[int, int | None] = {}
        self.task_running: dict[int, bool] = {}
        self.task_list: dict[int, int | None] = {}
        self.list_parent: dict[int, int | None] = {}
        self.list_owner: dict[int, int] = {}
        self.list_items: dict[int, list[int]] = {}
        self.order: dict[int, int | None] = {}  # completion order
        self.num_completed = 0
        self.fork_parent: dict[int, int | None] = {0: None}
        self.held: dict[int, set[int]] = {0: set()}  # under the rule being tested
        self.held_all: dict[int, set[int]] = {0: set()}  # with no pruning
        self.lost: dict[int, set[int]] = {0: set()}
        self.next_view = 1
        self.num_view_events = 0

    def depth(self, list_id: int | None) -> int:
        return 0 if list_id is None else 1 + self.depth(self.list_parent[list_id])

    def subtree(self, list_id: int) -> set[int]:
        out = {list_id}
        for item in self.list_items[list_id]:
            if self.task_list[item] is not None:
                out |= self.subtree(self.task_list[item])
        return out

    def running_inside(self, list_id: int) -> bool:
        return any(
            self.task_running[t] for lst in self.subtree(list_id) for t in self.list_items[lst]
        )

    def holders(self, list_id: int) -> set[int]:
        return {v for v, held in self.held.items() if list_id in held}

    def counts(self, list_id: int) -> bool:
        """Whether the list is on the stack of the views holding it."""
        if self.order[list_id] is None:
            return False
        return self.point == "close" or not self.task_running[self.list_owner[list_id]]

    def stack(self, view: int) -> list[int]:
        done = [lst for lst in self.held[view] if self.counts(lst)]
        return sorted(done, key=lambda lst: self.order[lst])

    def complete(self, list_id: int) -> None:
        self.order[list_id] = self.num_completed
        self.num_completed += 1

    def candidates(self, kind: str) -> list[tuple]:
        tasks, lists, views = self.task_running, self.order, sorted(self.held)
        open_lists = [lst for lst in lists if lists[lst] is None]
        if kind == "task":
            return [(lst,) for lst in [None, *open_lists] if self.pending[lst]]
        if kind == "list":
            return [
                (t, v)
                for t in tasks
                if tasks[t] and self.task_shape[t] is not None and self.task_list[t] is None
                for v in views
                if self.task_parent[t] is None or self.task_parent[t] in self.held[v]
            ]
        if kind == "close":
            return [
                (lst,)
                for lst in open_lists
                if not self.pending[lst] and not self.running_inside(lst)
            ]
        if kind == "finish":
            return [
                (t,)
                for t in tasks
                if tasks[t]
                and (self.task_shape[t] is None or lists.get(self.task_list[t]) is not None)
            ]
        if kind == "fail":
            return [
                (t,)
                for t in tasks
                if tasks[t]
                and (self.task_list[t] is None or not self.running_inside(self.task_list[t]))
            ]
        if self.num_view_events >= MAX_VIEW_EVENTS:
            return []
        if kind == "fork" and len(views) < MAX_VIEWS:
            return [(v,) for v in views]
        if kind in ("join", "drop"):
            return [(v,) for v in views if v != 0]
        return []


def apply(model: Model, trackers: list[PruneTracker], kind: str, args: tuple) -> None:
    """Send one event to every tracker and to the model."""
    if kind in VIEW_KINDS:
        model.num_view_events += 1
    if kind == "task":
        (parent,) = args
        ids = {tr.open_task(parent) for tr in trackers}
        assert len(ids) == 1
        task = ids.pop()
        model.task_shape[task] = model.pending[parent].pop(0)
        model.task_parent[task], model.task_running[task], model.task_list[task] = (
            parent,
            True,
            None,
        )
        if parent is not None:
            model.list_items[parent].append(task)
    elif kind == "list":
        owner, view = args
        ids = {tr.open_list(owner, view) for tr in trackers}
        assert len(ids) == 1
        lst = ids.pop()
        model.task_list[owner] = lst
        model.list_owner[lst] = owner
        model.list_parent[lst] = model.task_parent[owner]
        model.list_items[lst], model.order[lst] = [], None
        model.pending[lst] = list(model.task_shape[owner])
        model.held[view].add(lst)
        model.held_all[view].add(lst)
    elif kind == "close":
        for tr in trackers:
            tr.close_list(args[0])
        model.complete(args[0])
    elif kind in ("finish", "fail"):
        (task,) = args
        status = PruneStatus.DONE if kind == "finish" else PruneStatus.FAILED
        for tr in trackers:
            tr.finish_task(task, status)
        model.task_running[task] = False
        own = model.task_list[task]
        if own is not None and model.order[own] is None:
            model.complete(own)
            model.pending[own] = []  # a failed task's unstarted items never start
    elif kind == "fork":
        (parent,) = args
        child = model.next_view
        model.next_view += 1
        for tr in trackers:
            tr.fork(parent, child)
        model.fork_parent[child] = parent
        model.held[child] = set(model.held[parent])
        model.held_all[child] = set(model.held_all[parent])
        model.lost[child] = set()
    elif kind == "join":
        (child,) = args
        parent = model.fork_parent[child]
        parent = parent if parent in model.held else 0
        for tr in trackers:
            tr.join(child, parent)
        model.held[parent] |= model.held[child]
        model.held_all[parent] |= model.held_all[child]
        for table in (model.held, model.held_all, model.lost, model.fork_parent):
            del table[child]
    elif kind == "drop":
        (view,) = args
        for tr in trackers:
            tr.drop_view(view)
        for table in (model.held, model.held_all, model.lost, model.fork_parent):
            del table[view]


def buffer_selection(k: int):
    """The oracle for ``buffer:k``: all but the newest k completed lists the view holds."""
    return lambda model, view: model.stack(view)[: max(0, len(model.stack(view)) - k)]


@dataclass(frozen=True)
class WholeTrees:
    """A custom rule: evict completed lists once the outermost list containing them has
    completed too (so outer and nested lists are selected together), except lists whose
    id is ``skip`` modulo 3."""

    skip: int

    def select(self, state, view):
        def outermost(info):
            return state.lists[state.ancestors(info.id)[-1]] if info.parent is not None else info

        return [
            info.id
            for info in state.completed_lists(view)
            if outermost(info).completed and info.id % 3 != self.skip
        ]


def whole_trees_selection(skip: int):
    def oracle(model: Model, view: int) -> list[int]:
        def outermost(lst: int) -> int:
            parent = model.list_parent[lst]
            return lst if parent is None else outermost(parent)

        return [
            lst
            for lst in model.stack(view)
            if model.order[outermost(lst)] is not None and lst % 3 != skip
        ]

    return oracle


def prune_and_check(model: Model, trackers: list[PruneTracker], oracle, k: int | None) -> list:
    """Prune every tracker, check the invariants, update the model; return lists evicted.

    ``oracle(model, view)`` is what the rule should select; ``k`` is the buffer size, if any.
    """
    tracker, *unpruned = trackers
    selected = {view: set(oracle(model, view)) for view in model.held}
    pre_held = {v: set(h) for v, h in model.held.items()}
    plans = tracker.prune()
    reported = []
    assert [p.view for p in plans] == sorted({p.view for p in plans})
    assert {p.view for p in plans} == {view for view, sel in selected.items() if sel}
    for plan in plans:
        view, sel = plan.view, selected[plan.view]
        private = {lst for lst in sel if model.holders(lst) == {view}}
        covered = {lst for lst in sel if any(o != lst and lst in model.subtree(o) for o in private)}
        assert set(plan.now) == private - covered
        assert set(plan.deferred) == sel - private - covered
        stack = model.stack(view)
        newest = set(stack[len(stack) - k :]) if k else set()
        for lst in plan.now:
            assert model.order[lst] is not None, "evicted a list that is not completed"
            assert not model.running_inside(lst), "evicted a list with a running task"
            assert {v for v, h in pre_held.items() if lst in h} == {view}, "evicted shared"
            gone = model.subtree(lst) & model.held[view]
            assert not gone & newest, "evicted one of the newest k lists"
            assert all(model.order[g] is not None for g in gone)
            model.held[view] -= gone
            model.lost[view] |= gone
            reported.append(lst)
        for lst in plan.deferred:
            assert len({v for v, h in pre_held.items() if lst in h}) > 1
    deferred = {p.view: set(p.deferred) for p in plans}
    for view in model.held:
        if k is not None:
            stack = model.stack(view)
            older = stack[: max(0, len(stack) - k)]
            assert set(older) == deferred.get(view, set())
            assert all(len(model.holders(lst)) > 1 for lst in older)
        assert not model.held[view] & model.lost[view], "an evicted list came back"
    state = tracker.snapshot()
    assert state.views == set(model.held)
    for lst, info in state.lists.items():
        assert info.holders == model.holders(lst)
        assert info.evicted_in == {v for v, lost in model.lost.items() if lst in lost}
        assert not info.evicted_in or model.order[lst] is not None
    tracker.check_integrity()
    # `none` and `buffer:inf` never evict, and agree with each other and the model.
    for other in unpruned:
        assert other.prune() == ()
        assert other.snapshot() == unpruned[0].snapshot()
    for lst, info in unpruned[0].snapshot().lists.items():
        assert info.holders == {v for v, held in model.held_all.items() if lst in held}
        assert info.evicted_in == frozenset()
    return reported


def run_random(data, rule, oracle, k: int | None, *, with_views: bool,
               point: str = "close") -> tuple[Model, list]:
    """Grow a random tree, pruning after every event, until every task has finished.

    Returns the model and, per event, the lists that started to count (went on the stack;
    under ``point="close"`` the lists it completed), oldest completion first, and the lists
    the rule then evicted.
    """
    model = Model(data.draw(tree_shapes, label="shape"), point)
    trackers = [PruneTracker(rule), PruneTracker(NoPruning())]
    trackers.append(PruneTracker(BufferRule(math.inf)))
    for tr in trackers:
        tr.add_view(0)
    kinds = TREE_KINDS + (VIEW_KINDS if with_views else [])
    history = []
    while True:
        available = [kind for kind in kinds if model.candidates(kind)]
        if not set(available) & set(TREE_KINDS):
            break
        kind = data.draw(st.sampled_from(available), label="kind")
        args = data.draw(st.sampled_from(model.candidates(kind)), label=kind)
        counted = {lst for lst in model.order if model.counts(lst)}
        apply(model, trackers, kind, args)
        new = [lst for lst in model.order if model.counts(lst) and lst not in counted]
        new.sort(key=lambda lst: model.order[lst])
        history.append((new, prune_and_check(model, trackers, oracle, k)))
    # Join every worker back (children before parents): all deferrals must then resolve.
    for view in sorted(model.held, reverse=True):
        if view != 0:
            apply(model, trackers, "join", (view,))
            prune_and_check(model, trackers, oracle, k)
    assert not any(model.task_running.values())
    assert oracle(model, 0) == []
    if k is not None:
        assert len(model.stack(0)) <= k
    return model, history


@settings(max_examples=150, deadline=None)
@given(st.data(), st.integers(0, 3), st.sampled_from(POINTS))
def test_invariants_with_forks_and_joins(data, k: int, point: str) -> None:
    run_random(data, BufferRule(k, point=point), buffer_selection(k), k, with_views=True,
               point=point)


@settings(max_examples=60, deadline=None)
@given(st.data(), st.integers(0, 3))
def test_custom_rule_with_nesting_forks_and_joins(data, skip: int) -> None:
    """A rule that selects outer and nested lists together: nested ones go with their container."""
    run_random(data, WholeTrees(skip), whole_trees_selection(skip), None, with_views=True)


@settings(max_examples=100, deadline=None)
@given(st.data(), st.integers(0, 3))
def test_one_view_matches_timrun_stack(data, k: int) -> None:
    """TIMRUN: push each completed list; while the stack exceeds k, pop and prune the oldest."""
    stack: deque[int] = deque()
    _, history = run_random(data, BufferRule(k), buffer_selection(k), k, with_views=False)
    for completed, evicted in history:
        stack.extend(completed)
        popped = []
        while len(stack) > k:
            popped.append(stack.popleft())
        assert evicted == popped


@settings(max_examples=100, deadline=None)
@given(st.data(), st.integers(0, 3))
def test_one_view_conclusion_point_pushes_when_the_owner_finishes(data, k: int) -> None:
    """``buffer:k@conclusion`` in one view: a completed list is pushed when its owner task
    finishes, at its place in completion order (a sibling's list may have completed earlier
    and its owner concluded later); while the stack exceeds k, pop and prune the oldest."""
    stack: list[tuple[int, int]] = []  # (completion order, list id)
    model, history = run_random(data, BufferRule(k, point="conclusion"), buffer_selection(k),
                                k, with_views=False, point="conclusion")
    for counted, evicted in history:
        stack = sorted(stack + [(model.order[lst], lst) for lst in counted])
        popped = []
        while len(stack) > k:
            popped.append(stack.pop(0)[1])
        assert evicted == popped
