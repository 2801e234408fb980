"""Rules: spec parsing, validation, and what `none`, `buffer:k` and `buffer:k@conclusion` select."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tim.pruning import (
    BufferRule,
    ListInfo,
    NoPruning,
    PruneState,
    PruneStatus,
    Rule,
    TaskInfo,
    get_rule,
)

EXPECTED_MESSAGE = ("expected 'none', 'buffer:K' with K >= 0 or 'buffer:inf', "
                    "each optionally followed by '@conclusion'")


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        ("none", NoPruning()),
        ("buffer:0", BufferRule(0)),
        ("buffer:1", BufferRule(1)),
        ("buffer:2", BufferRule(2)),
        ("buffer:64", BufferRule(64)),
        ("buffer:inf", BufferRule(math.inf)),
        ("buffer:0@conclusion", BufferRule(0, point="conclusion")),
        ("buffer:3@conclusion", BufferRule(3, point="conclusion")),
        ("buffer:inf@conclusion", BufferRule(math.inf, point="conclusion")),
    ],
)
def test_get_rule_parses_good_specs(spec: str, rule: object) -> None:
    assert get_rule(spec) == rule
    assert get_rule(spec).spec == spec
    assert isinstance(get_rule(spec), Rule)


@pytest.mark.parametrize(
    "spec",
    [
        "bufer:1",
        "buffer:-1",
        "buffer:",
        "buffer",
        "buffer:1.5",
        "buffer:1e3",
        "Buffer:1",
        "NONE",
        " none",
        "buffer:inf ",
        "buffer: 1",
        "buffer:\u0661",  # ARABIC-INDIC DIGIT ONE: a digit, but not an ASCII one
        "buffer:1:2",
        "buffer:infinity",
        "buffer:1@",
        "buffer:1@close",  # the default point has no suffix: one spec per rule
        "buffer:1@Conclusion",
        "buffer:1@conclusion ",
        "buffer:1 @conclusion",
        "buffer:@conclusion",
        "buffer:1@conclusion@conclusion",
        "none@conclusion",
        "@conclusion",
        "",
        None,
        1,
        BufferRule(1),
    ],
)
def test_get_rule_rejects_bad_specs_quoting_them(spec: object) -> None:
    with pytest.raises(ValueError) as info:
        get_rule(spec)  # type: ignore[arg-type]
    assert str(info.value) == f"invalid pruning rule {spec!r}: {EXPECTED_MESSAGE}"


def _accepted(spec: str) -> bool:
    if spec == "none":
        return True
    number = spec.removeprefix("buffer:").removesuffix("@conclusion")
    if not spec.startswith("buffer:"):
        return False
    return number == "inf" or (number.isascii() and number.isdigit())


@given(st.one_of(
    st.text(max_size=12),
    st.from_regex(r"buffer:[0-9a-z:. -]{0,5}", fullmatch=True),
    st.from_regex(r"buffer:([0-9]{1,3}|inf|[0-9a-z:. -]{0,3})@(conclusion|[a-z@ ]{0,11})",
                  fullmatch=True),
))
def test_get_rule_accepts_exactly_the_grammar(spec: str) -> None:
    if _accepted(spec):
        rule = get_rule(spec)
        expected = NoPruning() if spec == "none" else None
        if spec.startswith("buffer:"):
            number = spec.removeprefix("buffer:").removesuffix("@conclusion")
            point = "conclusion" if spec.endswith("@conclusion") else "close"
            expected = BufferRule(math.inf if number == "inf" else int(number), point=point)
        assert rule == expected
    else:
        with pytest.raises(ValueError, match="invalid pruning rule"):
            get_rule(spec)


@pytest.mark.parametrize("k", [-1, 1.5, True, "1", float("nan"), -math.inf, None])
def test_buffer_rule_rejects_bad_sizes(k: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"got {k!r}")):
        BufferRule(k)  # type: ignore[arg-type]


@given(st.builds(BufferRule, k=st.one_of(st.integers(0, 10**6), st.just(math.inf)),
                 point=st.sampled_from(["close", "conclusion"])))
def test_buffer_specs_round_trip(rule: BufferRule) -> None:
    assert get_rule(rule.spec) == rule
    assert rule.spec.endswith("@conclusion") == (rule.point == "conclusion")


@pytest.mark.parametrize("point", ["", "Conclusion", "join", "@conclusion", None, 1, ("close",)])
def test_buffer_rule_rejects_bad_points_quoting_them(point: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"got {point!r}")):
        BufferRule(1, point=point)  # type: ignore[arg-type]


def test_rules_are_frozen() -> None:
    rule = BufferRule(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.k = 2  # type: ignore[misc]


@st.composite
def flat_states(draw):
    """Top-level lists in views {0, 1}; some open, some completed in a random order, each
    owned by its own task (list i by task i)."""
    num_lists = draw(st.integers(0, 8))
    done = draw(st.lists(st.booleans(), min_size=num_lists, max_size=num_lists))
    order = draw(st.permutations(range(num_lists)))
    holders = [
        draw(st.sampled_from([frozenset({0}), frozenset({1}), frozenset({0, 1})]))
        for _ in range(num_lists)
    ]
    # a completed list's owner may still be writing its conclusion (RUNNING), or be done
    finished = [
        draw(st.sampled_from(list(PruneStatus))) if done[i] else PruneStatus.RUNNING
        for i in range(num_lists)
    ]
    tasks = {i: TaskInfo(i, None, finished[i]) for i in range(num_lists)}
    lists = {
        i: ListInfo(
            id=i,
            owner=i,
            parent=None,
            completion=order[i] if done[i] else None,
            holders=holders[i],
        )
        for i in range(num_lists)
    }
    return PruneState(tasks=tasks, lists=lists, views=frozenset({0, 1}))


@given(flat_states(), st.integers(0, 10))
def test_buffer_selects_all_but_the_newest_k_completed_lists_of_the_view(state, k) -> None:
    for view in (0, 1):
        stack = [
            i
            for i in range(len(state.lists))
            if state.lists[i].completion is not None and view in state.lists[i].holders
        ]
        stack.sort(key=lambda i: state.lists[i].completion)
        expected = stack[: max(0, len(stack) - k)]
        assert list(BufferRule(k).select(state, view)) == expected


@given(flat_states(), st.integers(0, 10))
def test_buffer_at_conclusion_counts_only_lists_whose_owner_finished(state, k) -> None:
    for view in (0, 1):
        stack = [
            i
            for i in range(len(state.lists))
            if state.lists[i].completion is not None
            and view in state.lists[i].holders
            and state.tasks[i].status in (PruneStatus.DONE, PruneStatus.FAILED)
        ]
        stack.sort(key=lambda i: state.lists[i].completion)
        expected = stack[: max(0, len(stack) - k)]
        assert list(BufferRule(k, point="conclusion").select(state, view)) == expected


def test_conclusion_point_waits_for_the_owner_and_keeps_the_newest() -> None:
    """T0 [ .. ] c0 }   T1 [ .. ] c1 (writing): the list of T1 is complete, T1 still runs."""
    tasks = {0: TaskInfo(0, None, PruneStatus.DONE), 1: TaskInfo(1, None, PruneStatus.RUNNING)}
    lists = {i: ListInfo(i, owner=i, parent=None, completion=i, holders=frozenset({0}))
             for i in (0, 1)}
    writing = PruneState(tasks=tasks, lists=lists, views=frozenset({0}))
    assert BufferRule(0).select(writing, 0) == (0, 1)
    assert BufferRule(0, point="conclusion").select(writing, 0) == (0,)
    assert BufferRule(1, point="conclusion").select(writing, 0) == ()  # only list 0 counts
    assert BufferRule(1).select(writing, 0) == (0,)
    for status in (PruneStatus.DONE, PruneStatus.FAILED):
        done = PruneState(tasks={**tasks, 1: TaskInfo(1, None, status)}, lists=lists,
                          views=frozenset({0}))
        assert BufferRule(0, point="conclusion").select(done, 0) == (0, 1)
        assert BufferRule(1, point="conclusion").select(done, 0) == (0,)


@given(flat_states())
def test_none_and_buffer_inf_select_nothing(state) -> None:
    for view in (0, 1):
        assert list(NoPruning().select(state, view)) == []
        assert list(BufferRule(math.inf).select(state, view)) == []
        assert list(BufferRule(math.inf, point="conclusion").select(state, view)) == []
