"""The record's eviction ranges are what the documented ``buffer:k`` rule gives on the tree.

The expectation is worked out from the rendered text alone (character offsets of each
``"subtasks": [ ... ]`` list; the tiny model's byte tokenizer makes a character one token)
and from the tree's shape, never from the engine's views or spans.

Rule (docs/pruning.md, TIMRUN's stack): when a task completes, its subtask list (the tokens
strictly inside ``[`` and ``]``) becomes prunable; a view keeps the newest k prunable lists
and evicts older ones. The top-level ``reasoning`` list is never pruned.

When the list becomes prunable is the rule's point, and so is the moment each eviction takes
effect (the record's ``fed``: how many of the stream's tokens were fed before it):

- ``buffer:k``: the list counts once the token carrying its ``]`` is fed (``fed`` = the
  index of ``]`` + 1); in ``parallel`` once the forced ``, "conclusion": "`` after the join
  is fed;
- ``buffer:k@conclusion``: the list counts when the owner's closing ``}`` (right after its
  conclusion) is sampled, before that token is fed (``fed`` = the index of that ``}``);
- in ``parallel``, a list a view took over at a join (or one it shared until then) leaves
  at the join: the parent's ``fed`` is then its plan's ``]`` + 1.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings

from tests.engine.test_oracles import TREE, load, run_tree, tree_strategy
from tim.tree import get_format


@pytest.fixture(scope="module")
def qwen3():
    return load("qwen3")


def subtask_lists(text: str) -> list[tuple[int, int]]:
    """(index of '[', index of its ']') of every subtask list, in the order they close.
    (The test trees' strings hold no brackets or quotes, so counting brackets is enough.)"""
    lists = []
    for match in re.finditer(r'"subtasks": \[', text):
        open_at, depth = match.end() - 1, 0
        for i in range(open_at, len(text)):
            depth += {"[": 1, "]": -1}.get(text[i], 0)
            if depth == 0:
                lists.append((open_at, i))
                break
    return sorted(lists, key=lambda span: span[1])


def expected_thread2(text: str, k: int) -> set[int]:
    """Indices the buffer:k stack evicts by the end of a thread2 document."""
    evicted: set[int] = set()
    stack: list[tuple[int, int]] = []
    for lst in subtask_lists(text):  # a list completes with its task, in closing order
        stack.append(lst)  # lists nested in it keep their own slots while held
        while len(stack) > k:
            first, last = stack.pop(0)
            evicted.update(range(first + 1, last))
            stack = [s for s in stack if not first < s[0] < last]  # gone with it
    return evicted


def recorded(record) -> dict[tuple, set[int]]:
    out: dict[tuple, set[int]] = {}
    for ev in record.evictions:
        for path, a, b in ev.ranges:
            indices = set(range(a, b))
            assert not indices & out.get(path, set()), "a token was evicted twice"
            out.setdefault(path, set()).update(indices)
    return out


def owner_close(text: str, list_close: int) -> int:
    """Index of the ``}`` that closes the task owning the list whose ``]`` is at
    ``list_close``: the first ``}`` after it (``, "conclusion": "..."}``; the test trees'
    strings hold no braces)."""
    return text.index("}", list_close)


def expected_thread2_moments(text: str, k: int, point: str) -> list[tuple[int, frozenset]]:
    """(fed, token indices) of every eviction the buffer:k stack makes in a thread2 document,
    each list pushed when it counts: its ']' fed (close) or its owner's '}' (conclusion)."""
    lists = subtask_lists(text)  # completion order
    counts_at = {lst: lst[1] + 1 if point == "close" else owner_close(text, lst[1])
                 for lst in lists}
    evicted: set[int] = set()
    stack: list[tuple[int, int]] = []
    out = []
    for lst in sorted(lists, key=counts_at.get):
        stack = sorted([*stack, lst], key=lists.index)
        while len(stack) > k:
            first, last = stack.pop(0)
            gone = set(range(first + 1, last)) - evicted
            out.append((counts_at[lst], frozenset(gone)))
            evicted |= gone
            stack = [s for s in stack if not first < s[0] < last]
    return sorted(out, key=lambda e: e[0])


def recorded_moments(record) -> list[tuple[tuple, int, frozenset]]:
    """(stream, fed, frozenset of (writer, index)) of every eviction that took effect."""
    out = []
    for ev in record.evictions:
        if not ev.deferred:
            out.append((ev.stream, ev.fed, frozenset((w, i) for w, a, b in ev.ranges
                                                     for i in range(a, b))))
    return out


@pytest.mark.parametrize("point", ["close", "conclusion"])
@pytest.mark.parametrize("k", [0, 1, 2])
def test_thread2_evictions_take_effect_at_the_rules_point(qwen3, k, point):
    spec = f"buffer:{k}" + ("@conclusion" if point == "conclusion" else "")
    record = run_tree(qwen3, TREE, fmt="thread2", pruning=spec)
    text = record.streams[()].text
    assert len(text) == len(record.streams[()].token_ids)  # one byte, one token
    expected = expected_thread2_moments(text, k, point)
    assert expected  # every k here evicts something from TREE
    got = [(fed, frozenset(i for _, i in tokens)) for stream, fed, tokens in
           recorded_moments(record) if stream == ()]
    assert got == expected
    assert len(got) == len(record.evictions)
    for fed, _ in got:  # the token at the moment: ']'s follower or the owner's '}'
        assert text[fed - 1 if point == "close" else fed] == ("]" if point == "close" else "}")


def parallel_plan_end(text: str) -> int:
    """Tokens of a parallel stream up to and with its plan's ']' (the fork feed's end)."""
    match = re.search(r'"(?:subtasks|reasoning)": \[', text)
    return text.index("]", match.end()) + 1


def expected_parallel_moments(texts: dict, k: int, point: str) -> set[tuple]:
    """(stream, fed, frozenset of (writer, index)) of every eviction of a parallel run with
    one worker, simulated from the texts alone: tasks run depth first in plan order; a
    child's view starts holding its parent's lists (shared: never evicted while shared);
    at the join the parent takes what the child kept; the stack is per view."""
    has_list = {p for p, t in texts.items() if p and '"subtasks": [' in t}
    below = {p: {(w, i) for w in texts if len(w) > len(p) and w[:len(p)] == p
                 for i in range(len(texts[w]))} for p in has_list}
    held: dict[tuple, set] = {(): set()}  # live views (by stream) -> owners of lists held
    completion: dict[tuple, int] = {}
    concluded: set[tuple] = set()
    evicted: set = set()
    out: set = set()

    def counts(owner):
        return owner in completion and (point == "close" or owner in concluded)

    def prune(acting, fed):
        for view in list(held):
            stack = sorted((o for o in held[view] if counts(o)), key=completion.get)
            selected = stack[: max(0, len(stack) - k)]
            private = [o for o in selected if [v for v in held if o in held[v]] == [view]]
            for owner in private:
                if any(o != owner and owner[:len(o)] == o for o in private):
                    continue  # goes with the list containing it
                gone = below[owner] - evicted
                at = fed if view == acting else parallel_plan_end(texts[view])
                out.add((view, at, frozenset(gone)))
                evicted.update(gone)
                held[view] -= {o for o in held[view] if o[:len(owner)] == owner}

    def run(path):  # path's view was forked from its parent's
        text = texts[path]
        if path in has_list:
            held[path].add(path)  # the plan's '[' opens the list in this view
            for i in range(sum(1 for p in texts if p[:-1] == path and len(p) == len(path) + 1)):
                child = (*path, i)
                held[child] = set(held[path])
                run(child)
                held[path] |= held.pop(child)  # the join
                prune(path, parallel_plan_end(text))
            completion[path] = len(completion)
            opened = text.index('"conclusion": "') + len('"conclusion": "')
            prune(path, opened)  # the forced join text is fed: the list completes
        concluded.add(path)
        prune(path, len(text) - 1)  # the owner's '}' (the stream's last token) is sampled

    for i in range(sum(1 for p in texts if len(p) == 1)):
        held[(i,)] = set(held[()])
        run((i,))
        held[()] |= held.pop((i,))
        prune((), parallel_plan_end(texts[()]))
    return out


@pytest.mark.parametrize(("k", "max_workers"), [(0, 1), (0, 8), (1, 1), (2, 1)])
@pytest.mark.parametrize("point", ["close", "conclusion"])
def test_parallel_evictions_take_effect_at_the_rules_point(qwen3, k, point, max_workers):
    """With k = 0 every list leaves from its owner's own view, whatever the schedule; with
    k > 0 the simulation follows one worker's order."""
    spec = f"buffer:{k}" + ("@conclusion" if point == "conclusion" else "")
    record = run_tree(qwen3, TREE, fmt="parallel", pruning=spec, max_workers=max_workers)
    texts = {p: s.text for p, s in record.streams.items()}
    assert all(len(t) == len(record.streams[p].token_ids) for p, t in texts.items())
    expected = expected_parallel_moments(texts, k, point)
    assert expected
    assert set(recorded_moments(record)) == expected
    assert len(record.evictions) == len(expected)
    if point == "conclusion":  # every list left at a '}' of its owner, or at a join later
        for stream, fed, _ in expected:
            assert texts[stream][fed] == "}" or fed == parallel_plan_end(texts[stream])


@pytest.mark.parametrize("k", [0, 1, 2])
def test_thread2_ranges_follow_the_rule(qwen3, k):
    record = run_tree(qwen3, TREE, fmt="thread2", pruning=f"buffer:{k}")
    text = record.streams[()].text
    assert len(text) == len(record.streams[()].token_ids)  # one byte, one token
    assert recorded(record).get((), set()) == expected_thread2(text, k)


@pytest.mark.slow
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=tree_strategy())
def test_thread2_ranges_follow_the_rule_on_random_trees(qwen3, tree):
    for k in (0, 1):
        record = run_tree(qwen3, tree, fmt="thread2", pruning=f"buffer:{k}")
        text = get_format("thread2").render(tree)
        assert record.streams[()].text == text
        assert recorded(record).get((), set()) == expected_thread2(text, k)


@pytest.mark.parametrize("max_workers", [1, 8])
def test_parallel_buffer0_evicts_every_subtask_stream_whole(qwen3, max_workers):
    """In the parallel format a task's list is its children's streams; with k = 0 every
    completed list goes, so exactly the streams below the top-level tasks are evicted,
    each one whole, and nothing of the root's or a top-level task's own stream."""
    record = run_tree(qwen3, TREE, fmt="parallel", pruning="buffer:0", max_workers=max_workers)
    expected = {path: set(range(len(s.token_ids)))
                for path, s in record.streams.items() if len(path) >= 2}
    assert recorded(record) == expected
