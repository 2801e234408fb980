"""tim/tools/spec.py: the @tool decorator, pydantic parameters, names and descriptions."""

from __future__ import annotations

import json

import pydantic
import pytest

from tim.tools import ToolRegistry, tool, tool_spec
from tim.tools.spec import bind_tool
from tim.tree import ToolSpec


class Query(pydantic.BaseModel):
    """A search query."""

    text: str = pydantic.Field(description="Words to find.")
    limit: int = pydantic.Field(default=3, ge=1, le=10)


class Point(pydantic.BaseModel):
    x: float
    y: float


class Path(pydantic.BaseModel):
    points: list[Point]
    closed: bool = False

    @pydantic.model_validator(mode="after")
    def _closed_paths_need_three_points(self) -> Path:
        if self.closed and len(self.points) < 3:
            raise ValueError("a closed path needs three points")
        return self


def search(query: Query) -> list[str]:
    """Search the notes."""
    return [query.text] * query.limit


def length(path: Path, scale: float = 1.0, label: str | None = None) -> dict:
    """Measure a path."""
    pts = path.points
    total = sum(((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5 for a, b in zip(pts, pts[1:], strict=False))
    return {"length": total * scale, "label": label, "closed": path.closed}


def test_single_model_parameter_uses_the_model_schema():
    spec = tool_spec(search)
    assert spec == ToolSpec("search", "Search the notes.", Query.model_json_schema())
    assert spec.parameters["properties"]["text"]["description"] == "Words to find."
    assert spec.parameters["required"] == ["text"]


def test_single_model_parameter_is_validated_and_built_by_pydantic():
    registry = ToolRegistry([search])
    assert json.loads(registry.call("search", {"text": "kv"}).result_json) == ["kv"] * 3
    bad = registry.call("search", {"text": "kv", "limit": 50})
    assert bad.error.startswith("invalid arguments for tool 'search': parameters.limit: ")
    assert "less than or equal to 10" in bad.error and "https://" not in bad.error
    assert registry.call("search", {}).error == (
        "invalid arguments for tool 'search': parameters.text: Field required")
    assert registry.call("search", [1]).error.startswith(
        "invalid arguments for tool 'search': parameters must be a JSON object")


def test_models_among_other_parameters_are_hoisted_and_validated():
    spec = tool_spec(length)
    params = spec.parameters
    assert params["required"] == ["path"] and params["additionalProperties"] is False
    assert params["$defs"] == {"Point": Point.model_json_schema()}
    assert params["properties"]["path"]["properties"]["points"]["items"] == {
        "$ref": "#/$defs/Point"}
    assert params["properties"]["scale"] == {"type": "number", "default": 1.0}
    registry = ToolRegistry([length])
    ok = registry.call("length", {"path": {"points": [{"x": 0, "y": 0}, {"x": 3, "y": 4}]},
                                  "scale": 2})
    assert json.loads(ok.result_json) == {"length": 10.0, "label": None, "closed": False}
    bad = registry.call("length", {"path": {"points": [{"x": 0}]}})
    assert bad.error == ("invalid arguments for tool 'length': "
                         'parameters.path.points[0]: missing required property "y"')
    closed = registry.call("length", {"path": {"points": [], "closed": True}})
    assert closed.error == ("invalid arguments for tool 'length': parameters.path: "
                            "Value error, a closed path needs three points")
    wrong_type = registry.call("length", {"path": {"points": []}, "scale": "big"})
    assert wrong_type.error == ("invalid arguments for tool 'length': "
                                'parameters.scale: expected number, got "big"')


@pytest.mark.parametrize("fn", [search, length])
def test_pydantic_schemas_compile_in_llguidance(fn):
    from llguidance import LLMatcher

    grammar = LLMatcher.grammar_from_json_schema(tool_spec(fn).parameters)
    assert LLMatcher.validate_grammar(grammar) == ""


def test_two_models_with_one_name_but_different_fields_are_refused():
    def make(field_type):
        class Inner(pydantic.BaseModel):
            v: field_type

        class Outer(pydantic.BaseModel):
            inner: Inner

        return Outer

    first, second = make(int), make(str)

    def both(a, b) -> None: ...

    both.__annotations__ = {"a": first, "b": second}  # real classes, not future strings

    with pytest.raises(ValueError, match="tool 'both': parameter 'b': two different pydantic"):
        tool_spec(both)


def test_a_model_result_is_dumped_as_json():
    def origin() -> Point:
        """The origin."""
        return Point(x=0, y=0)

    assert ToolRegistry([origin]).call("origin", {}).result_json == '{"x": 0.0, "y": 0.0}'


def test_tool_decorator_bare_and_with_overrides():
    @tool
    def plain(a: int) -> int:
        """Plain."""
        return a

    @tool(name="calc.eval", description="Evaluate.", timeout_s=2)
    def evaluate(expression: str) -> str:
        """Ignored docstring."""
        return expression

    assert plain(4) == 4 and evaluate("1") == "1"  # still ordinary callables
    assert (tool_spec(plain).name, tool_spec(plain).description) == ("plain", "Plain.")
    spec = tool_spec(evaluate)
    assert (spec.name, spec.description) == ("calc.eval", "Evaluate.")
    assert bind_tool(evaluate).timeout_s == 2
    assert bind_tool(plain).timeout_s is None
    registry = ToolRegistry([plain, evaluate])
    assert registry.timeout_for("calc.eval") == 2 and registry.timeout_for("plain") is None
    assert registry.call("calc.eval", {"expression": "2"}).result_json == '"2"'


@pytest.mark.parametrize("kwargs, message", [
    ({"timeout_s": 0}, "timeout_s must be a positive number of seconds, got 0"),
    ({"timeout_s": float("inf")}, "got inf"), ({"timeout_s": True}, "got True"),
    ({"name": 3}, "tool name must be a str, got 3"),
])
def test_tool_decorator_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tool(**kwargs)


def test_bad_names_and_non_callables():
    with pytest.raises(ValueError, match="got '1st'"):
        tool_spec(tool(name="1st")(lambda: None))
    with pytest.raises(ValueError, match="a tool must be callable, got 3"):
        tool_spec(3)
    with pytest.raises(ValueError, match="@tool needs a callable"):
        tool("not callable")


def test_no_docstring_gives_an_empty_description():
    def bare(a: int) -> int:
        return a

    assert tool_spec(bare).description == ""
