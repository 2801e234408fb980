"""tim.stress.shape: the forced structure spells exactly what the formats render."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.stress import shape as shape_module
from tim.stress.shape import (
    Content,
    Forced,
    Literal,
    StressShape,
    check_segments,
    make_lookup,
    skeleton_tree,
    spell,
    stream_segments,
)
from tim.tree import get_format

shapes = st.builds(
    StressShape,
    num_tasks=st.integers(2, 3),
    depth=st.integers(1, 3),
    fanout=st.integers(1, 3),
    thought_tokens=st.integers(1, 5),
    conclusion_tokens=st.integers(1, 5),
    answer_tokens=st.integers(1, 5),
    tool_calls=st.sampled_from(["none", "leaves", "all"]),
    tool_result_chars=st.integers(0, 40),
    needle=st.one_of(st.none(), st.just("4817")),
)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, fmt=st.sampled_from(["thread2", "parallel"]))
def test_segments_spell_the_rendered_tree(shape, fmt):
    segments = stream_segments(shape, fmt)
    check_segments(shape, fmt, segments)  # raises unless equal to the format's render
    tree = get_format(fmt).parse(
        {p: spell(s) for p, s in segments.items()} if fmt == "parallel" else spell(segments[()]))
    assert sum(1 for _ in tree.walk()) == shape.num_task_nodes


@settings(max_examples=30, deadline=None)
@given(shape=shapes)
def test_content_budgets_and_forced_parts(shape):
    for fmt in ("thread2", "parallel"):
        segments = stream_segments(shape, fmt)
        contents = [s for segs in segments.values() for s in segs if isinstance(s, Content)]
        planted = 2 if shape.needle else 0  # the needle's conclusion and question are literal
        assert len(contents) == 2 * shape.num_task_nodes + 1 - planted
        for seg in contents:
            kind = seg.key.split()[0]
            assert seg.num_tokens == getattr(shape, f"{kind}_tokens")
        forced = [s for segs in segments.values() for s in segs if isinstance(s, Forced)]
        num_tools = sum(1 for _, t in skeleton_tree(shape).walk() if t.tooluse is not None)
        if fmt == "thread2":  # the runtime forces only tool results
            assert len(forced) == num_tools
        else:  # plus one header per task and one join text per plan (root's included)
            num_plans = 1 + sum(1 for _, t in skeleton_tree(shape).walk() if t.subtasks)
            assert len(forced) == num_tools + shape.num_task_nodes + num_plans
            for path, segs in segments.items():
                assert isinstance(segs[0], Forced if path else Literal)


def test_literals_never_run_into_a_fork_or_tool_result():
    """A literal ends exactly at the plan's ']' or the parameters' '}', so the chooser never
    writes text the runtime forces."""
    shape = StressShape(num_tasks=2, depth=3, fanout=2, tool_calls="all")
    for segs in stream_segments(shape, "parallel").values():
        for seg, nxt in zip(segs, segs[1:], strict=False):
            if isinstance(nxt, Forced):
                assert isinstance(seg, Literal) and seg.text[-1] in "]}"


def test_tool_calls_only_at_leaves():
    tree = skeleton_tree(StressShape(num_tasks=2, depth=3, fanout=2, tool_calls="leaves"))
    for _, task in tree.walk():
        assert (task.tooluse is not None) == (task.subtasks is None)


def test_lookup_result_length():
    assert len(make_lookup(100)(3)) == 100
    assert make_lookup(0)(12) == "note 12: "  # never shorter than its head


@pytest.mark.parametrize("kwargs, message", [
    ({"depth": 0}, "depth must be an int >= 1, got 0"),
    ({"fanout": True}, "fanout must be an int >= 1, got True"),
    ({"tool_calls": 1}, "tool_calls must be one of"),
    ({"tool_result_chars": -1}, "tool_result_chars must be an int >= 0, got -1"),
    ({"needle": 'a"b'}, "needle must be printable ASCII"),
    ({"needle": "42", "num_tasks": 1}, "a needle needs num_tasks >= 2"),
])
def test_bad_shapes_quote_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        StressShape(**kwargs)


def test_doctests():
    result = doctest.testmod(shape_module)
    assert result.attempted >= 3 and result.failed == 0


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, tim.stress; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False False"
