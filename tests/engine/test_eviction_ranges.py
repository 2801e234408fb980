"""The record's eviction ranges are what the documented ``buffer:k`` rule gives on the tree.

The expectation is worked out from the rendered text alone (character offsets of each
``"subtasks": [ ... ]`` list; the tiny model's byte tokenizer makes a character one token)
and from the tree's shape, never from the engine's views or spans.

Rule (docs/pruning.md, TIMRUN's stack): when a task completes, its subtask list (the tokens
strictly inside ``[`` and ``]``) becomes prunable; a view keeps the newest k prunable lists
and evicts older ones. The top-level ``reasoning`` list is never pruned.
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
