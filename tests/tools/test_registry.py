"""tim/tools/registry.py: lookup, duplicate names, and every error path of call()."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.tools import ToolOutcome, ToolRegistry, tool


def add(a: int, b: int = 0) -> int:
    """Add two integers."""
    return a + b


def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


def give(kind: str) -> object:
    """Return something awkward."""
    cyclic: list = []
    cyclic.append(cyclic)
    return {"set": {1, 2}, "nan": float("nan"), "inf": [math.inf], "cycle": cyclic,
            "object": object(), "bytes": b"x", "tuple_key": {(1, 2): 3}}[kind]


def echo(value: Any = None) -> Any:
    return value


def is_error(outcome: ToolOutcome, message: str) -> bool:
    return (outcome.error == message and json.loads(outcome.result_json) == {"error": message}
            and outcome.elapsed_s >= 0)


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return ToolRegistry([add, divide, give, echo])


def test_specs_keep_order_and_lookup(registry):
    assert [s.name for s in registry.specs] == ["add", "divide", "give", "echo"]
    assert len(registry) == 4 and "add" in registry and "mul" not in registry and 3 not in registry
    assert ToolRegistry().specs == ()


def test_success(registry):
    outcome = registry.call("add", {"a": 2, "b": 40})
    assert outcome.result_json == "42" and outcome.error is None and outcome.elapsed_s >= 0
    assert registry.call("divide", {"a": 1, "b": 4}).result_json == "0.25"
    assert registry.call("echo", {"value": "héllo ✓"}).result_json == '"héllo ✓"'


def test_duplicate_names():
    with pytest.raises(ValueError, match=r"duplicates \['add'\]"):
        ToolRegistry([add, tool(name="add")(divide)])


def test_bad_tools_argument():
    with pytest.raises(ValueError, match="sequence of callables"):
        ToolRegistry(add)
    with pytest.raises(ValueError, match="a tool must be callable, got 'add'"):
        ToolRegistry(["add"])


def test_unknown_tool(registry):
    assert is_error(registry.call("mul", {}),
                    "unknown tool 'mul'; the tools are: add, divide, give, echo")
    assert is_error(ToolRegistry().call(None, {}), "unknown tool None; the tools are: (none)")


@pytest.mark.parametrize("params, detail", [
    ({"a": "1"}, 'parameters.a: expected integer, got "1"'),
    ({"b": 1}, 'parameters: missing required property "a"'),
    ({"a": 1, "c": 2}, 'parameters: unexpected property "c"'),
    ({"a": True}, "parameters.a: expected integer, got True"),
    ({"a": 1.5}, "parameters.a: expected integer, got 1.5"),
    ([1, 2], "parameters must be a JSON object, got [1, 2]"),
    (None, "parameters must be a JSON object, got None"),
])
def test_invalid_arguments(registry, params, detail):
    assert is_error(registry.call("add", params), f"invalid arguments for tool 'add': {detail}")


def test_an_integral_float_is_passed_as_int(registry):
    assert registry.call("add", {"a": 2.0}).result_json == "2"


def test_tool_raising(registry):
    assert is_error(registry.call("divide", {"a": 1, "b": 0}),
                    "tool 'divide' raised ZeroDivisionError: float division by zero")


def test_exception_without_message():
    def fails() -> None:
        raise RuntimeError

    assert is_error(ToolRegistry([fails]).call("fails", {}), "tool 'fails' raised RuntimeError")


@pytest.mark.parametrize("kind, type_name, detail", [
    ("set", "set", "Object of type set is not JSON serializable"),
    ("nan", "float", "Out of range float values are not JSON compliant"),
    ("inf", "list", "Out of range float values are not JSON compliant"),
    ("cycle", "list", "Circular reference detected"),
    ("object", "object", "Object of type object is not JSON serializable"),
    ("bytes", "bytes", "Object of type bytes is not JSON serializable"),
    ("tuple_key", "dict", "keys must be str, int, float, bool or None, not tuple"),
])
def test_non_serialisable_results(registry, kind, type_name, detail):
    outcome = registry.call("give", {"kind": kind})
    prefix = f"tool 'give' returned a result that is not JSON-serialisable ({type_name}): "
    assert outcome.error.startswith(prefix + detail)
    assert json.loads(outcome.result_json) == {"error": outcome.error}


def test_keyboard_interrupt_is_not_swallowed():
    def stop() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ToolRegistry([stop]).call("stop", {})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(), JSON, max_size=5))
def test_any_json_dict_round_trips_through_result_json(registry, value):
    outcome = registry.call("echo", {"value": value})
    assert outcome.error is None
    assert json.loads(outcome.result_json) == value
