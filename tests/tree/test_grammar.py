"""tim/tree/grammar.py: the shared Lark pieces and their validation."""

from __future__ import annotations

import pytest

from tim.tree import ToolSpec, get_format
from tim.tree.grammar import check_limits, key, list_rule, seq


def test_pieces():
    assert key("thought") == '"\\"thought\\""'
    assert seq('"{"', "x") == '"{" W? x'
    assert list_rule("t", 1) == '"[" W? t W? "]"'
    assert list_rule("t", 3) == '"[" W? t (W? "," W? t){0,2} W? "]"'


@pytest.mark.parametrize("kwargs, bad", [
    (dict(max_depth="2"), "max_depth must be an int >= 1, got '2'"),
    (dict(max_fanout=0), "max_fanout must be an int >= 1, got 0"),
    (dict(depth=-1), "depth must be an int in [0, 3], got -1"),
    (dict(depth=4), "depth must be an int in [0, 3], got 4"),
    (dict(tools=(ToolSpec("a", ""), ToolSpec("a", ""))), "tool names must be unique"),
])
def test_check_limits(kwargs, bad):
    args = dict(max_depth=3, max_fanout=2, tools=(), depth=0, max_allowed_depth=3) | kwargs
    with pytest.raises(ValueError) as info:
        check_limits(**args)
    assert bad in str(info.value)


@pytest.mark.parametrize("name", ["thread2", "parallel"])
def test_a_schema_llguidance_cannot_compile_names_the_tool(name):
    broken = ToolSpec("broken", "", {"type": "object", "properties": {"x": {"type": "nope"}}})
    with pytest.raises(ValueError, match="'broken'"):
        get_format(name).grammar(max_depth=2, max_fanout=2, tools=[broken],
                                 depth=1 if name == "parallel" else 0)


def test_grammar_text_has_no_import_time_cost_and_is_deterministic():
    fmt = get_format("thread2")
    a = fmt.grammar(max_depth=2, max_fanout=2, tools=[ToolSpec("f", "", {})])
    b = fmt.grammar(max_depth=2, max_fanout=2, tools=[ToolSpec("f", "", {})])
    assert a == b and 'params_0: %json {}' in a and "task_2" in a and "task_3" not in a
