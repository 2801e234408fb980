"""tim/tools/schema.py and tool_spec's parameter schemas: signatures -> hand-written schemas."""
# ruff: noqa: UP007, UP045 - Optional[...] and Union[...] are spelled out on purpose: they are under test

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Optional, Union

import pytest

from tim.tools import tool_spec
from tim.tools.schema import field_schema


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


def obj(properties: dict, required: list[str] | None = None) -> dict:
    schema: dict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def f_scalars(s: str, i: int, x: float, b: bool) -> None: ...
def f_defaults(s: str = "hi", i: int = 3, x: float = 0.5, b: bool = False) -> None: ...
def f_containers(xs: list[int], m: dict[str, float], nested: list[dict[str, list[str]]],
                 anything: list, mapping: dict) -> None: ...
def f_abc(xs: Sequence[str], m: Mapping[str, bool]) -> None: ...
def f_optional(a: Optional[int], b: str | None = None, c: Union[int, str] = 1) -> None: ...
def f_literal(order: Literal["asc", "desc"] = "asc", n: Literal[1, 2, 3] = 1,
              mixed: Literal["a", 1] = "a") -> None: ...
def f_enum(color: Color, level: Level = Level.LOW) -> None: ...
def f_annotated(q: Annotated[str, "The question."], raw: Any = None) -> None: ...
def f_nested_union(v: Optional[Union[int, list[str]]]) -> None: ...
def f_kwonly(a: int, *, b: str) -> None: ...
NOT_JSON = object()


def f_unserialisable_default(a: Any = NOT_JSON) -> None: ...
def f_none_type(nothing: None) -> None: ...


CASES = [
    (f_scalars, obj({"s": {"type": "string"}, "i": {"type": "integer"},
                     "x": {"type": "number"}, "b": {"type": "boolean"}},
                    ["s", "i", "x", "b"])),
    (f_defaults, obj({"s": {"type": "string", "default": "hi"},
                      "i": {"type": "integer", "default": 3},
                      "x": {"type": "number", "default": 0.5},
                      "b": {"type": "boolean", "default": False}})),
    (f_containers, obj({
        "xs": {"type": "array", "items": {"type": "integer"}},
        "m": {"type": "object", "additionalProperties": {"type": "number"}},
        "nested": {"type": "array", "items": {"type": "object", "additionalProperties": {
            "type": "array", "items": {"type": "string"}}}},
        "anything": {"type": "array"},
        "mapping": {"type": "object"}}, ["xs", "m", "nested", "anything", "mapping"])),
    (f_abc, obj({"xs": {"type": "array", "items": {"type": "string"}},
                 "m": {"type": "object", "additionalProperties": {"type": "boolean"}}},
                ["xs", "m"])),
    (f_optional, obj({
        "a": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "b": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "c": {"anyOf": [{"type": "integer"}, {"type": "string"}], "default": 1}}, ["a"])),
    (f_literal, obj({
        "order": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
        "n": {"type": "integer", "enum": [1, 2, 3], "default": 1},
        "mixed": {"enum": ["a", 1], "default": "a"}})),
    (f_enum, obj({"color": {"type": "string", "enum": ["red", "green"]},
                  "level": {"type": "integer", "enum": [1, 2], "default": 1}}, ["color"])),
    (f_annotated, obj({"q": {"type": "string", "description": "The question."},
                       "raw": {"default": None}}, ["q"])),
    (f_nested_union, obj({"v": {"anyOf": [{"type": "integer"},
                                          {"type": "array", "items": {"type": "string"}},
                                          {"type": "null"}]}}, ["v"])),
    (f_kwonly, obj({"a": {"type": "integer"}, "b": {"type": "string"}}, ["a", "b"])),
    (f_none_type, obj({"nothing": {"type": "null"}}, ["nothing"])),
]


@pytest.mark.parametrize("fn, expected", CASES, ids=[c[0].__name__ for c in CASES])
def test_schema_from_signature(fn, expected):
    assert tool_spec(fn).parameters == expected


def test_a_default_that_is_not_json_is_left_out_but_still_optional():
    schema = tool_spec(f_unserialisable_default).parameters
    assert "a" in schema["properties"] and "required" not in schema
    assert schema["properties"]["a"] == {}


def test_string_annotations_from_future_import_are_resolved():
    # this module uses `from __future__ import annotations`, so every hint above is a string
    assert f_scalars.__annotations__["i"] == "int"
    assert tool_spec(f_scalars).parameters["properties"]["i"] == {"type": "integer"}


def test_methods_partials_and_callable_objects():
    import functools

    class Box:
        def put(self, item: str, count: int = 1) -> None: ...

    class Counter:
        """Count words."""

        def __call__(self, text: str) -> int:
            return len(text.split())

    def scaled(x: float, factor: float) -> float:
        return x * factor

    assert list(tool_spec(Box().put).parameters["properties"]) == ["item", "count"]
    assert tool_spec(Box().put).name == "put"
    counter = tool_spec(Counter())
    assert (counter.name, counter.description) == ("Counter", "Count words.")
    assert counter.parameters == obj({"text": {"type": "string"}}, ["text"])
    double = tool_spec(functools.partial(scaled, factor=2.0))
    assert double.name == "scaled"
    assert double.parameters["required"] == ["x"]
    assert double.parameters["properties"]["factor"] == {"type": "number", "default": 2.0}


@pytest.mark.parametrize("hint, value, converted", [
    (float, 3, 3.0), (int, 4.0, 4), (Color, "green", Color.GREEN), (Level, 2, Level.HIGH),
    (list[Color], ["red"], [Color.RED]), (dict[str, Level], {"a": 1}, {"a": Level.LOW}),
    (Optional[Color], None, None), (Union[int, Color], "red", Color.RED),
    (Union[int, Color], 7, 7),
])
def test_conversion_gives_python_values(hint, value, converted):
    result = field_schema(hint, {}).convert(value)
    assert result == converted and type(result) is type(converted)


@pytest.mark.parametrize("fn, fragment", [
    (lambda *, x: x, "parameter 'x' has no type hint"),
])
def test_missing_hint(fn, fragment):
    with pytest.raises(ValueError, match=fragment):
        tool_spec(fn)


def g_args(*values: int) -> None: ...
def g_kwargs(**options: str) -> None: ...
def g_posonly(a: int, /, b: int) -> None: ...
def g_set(tags: set[str]) -> None: ...
def g_bytes(data: bytes) -> None: ...
def g_intkeys(table: dict[int, str]) -> None: ...
def g_class(thing: Color | complex) -> None: ...
def g_tuple(pair: tuple[int, int]) -> None: ...
def g_literal_enum(c: Literal[Color.RED]) -> None: ...
def g_nohint(a: int, b) -> None: ...


@pytest.mark.parametrize("fn, param, why", [
    (g_args, "values", r"is \*args"), (g_kwargs, "options", r"is \*\*kwargs"),
    (g_posonly, "a", "positional-only"), (g_set, "tags", "no JSON-schema mapping"),
    (g_bytes, "data", "no JSON-schema mapping"), (g_intkeys, "table", "keys must be str"),
    (g_class, "thing", "no JSON-schema mapping"), (g_tuple, "pair", "no JSON-schema mapping"),
    (g_literal_enum, "c", "not JSON scalars"), (g_nohint, "b", "no type hint"),
])
def test_unsupported_parameters_name_tool_and_parameter(fn, param, why):
    with pytest.raises(ValueError, match=rf"tool '{fn.__name__}': parameter '{param}'.*{why}"):
        tool_spec(fn)


def test_async_tools_are_refused():
    async def fetch(url: str) -> str:
        return url

    with pytest.raises(ValueError, match="tool 'fetch': async"):
        tool_spec(fetch)


@pytest.mark.parametrize("fn", [fn for fn, _ in CASES], ids=[c[0].__name__ for c in CASES])
def test_llguidance_accepts_every_generated_schema(fn):
    from llguidance import LLMatcher

    grammar = LLMatcher.grammar_from_json_schema(tool_spec(fn).parameters)
    assert LLMatcher.validate_grammar(grammar) == ""
