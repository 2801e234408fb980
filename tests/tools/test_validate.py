"""tim/tools/validate.py against small schemas, including pydantic's keywords it knows."""

import pytest

from tim.tools.validate import schema_errors

OBJ = {"type": "object", "properties": {"n": {"type": "integer"}, "tags": {
    "type": "array", "items": {"type": "string"}}}, "required": ["n"],
    "additionalProperties": False}


@pytest.mark.parametrize("value, schema", [
    ({"n": 1}, OBJ), ({"n": 2.0, "tags": ["a"]}, OBJ), (None, {"type": "null"}),
    (1, {"type": "number"}), (1.5, {"type": ["integer", "number"]}), ("x", {}),
    (True, {"type": "boolean"}), ("b", {"enum": ["a", "b"]}), (3, {"const": 3}),
    ({"k": 1}, {"type": "object", "additionalProperties": {"type": "integer"}}),
    (None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
    ([1, "a"], {"prefixItems": [{"type": "integer"}, {"type": "string"}],
                "minItems": 2, "maxItems": 2}),
    ({"a": {"x": 1}}, {"properties": {"a": {"$ref": "#/$defs/A"}},
                       "$defs": {"A": {"properties": {"x": {"minimum": 0}}}}}),
    (5, {"exclusiveMinimum": 4, "maximum": 5}), ("abc", {"minLength": 3, "maxLength": 3}),
])
def test_valid(value, schema):
    assert schema_errors(value, schema) == []


@pytest.mark.parametrize("value, schema, message", [
    ({"n": "1"}, OBJ, '$.n: expected integer, got "1"'),
    ({"n": True}, OBJ, "$.n: expected integer, got True"),
    ({"n": 1.5}, OBJ, "$.n: expected integer, got 1.5"),
    ({}, OBJ, '$: missing required property "n"'),
    ({"n": 1, "x": 0}, OBJ, '$: unexpected property "x"'),
    ({"n": 1, "tags": ["a", 2]}, OBJ, "$.tags[1]: expected string, got 2"),
    (True, {"enum": [1, 2]}, "$: expected one of [1, 2], got True"),
    (1, {"type": "boolean"}, "$: expected boolean, got 1"),
    ("x", {"anyOf": [{"type": "integer"}, {"type": "null"}]}, '$: "x" matches 0 of the 2'),
    (1, {"oneOf": [{"type": "integer"}, {"type": "number"}]}, "$: 1 matches 2 of the 2"),
    ({"a": {"x": -1}}, {"properties": {"a": {"$ref": "#/$defs/A"}},
                        "$defs": {"A": {"properties": {"x": {"minimum": 0}}}}},
     "$.a.x: -1 is out of range"),
    ([1], {"minItems": 2}, "$: 1 items is out of range"),
    (4, {"exclusiveMinimum": 4}, "$: 4 is out of range"),
    ("ab", {"minLength": 3}, "$: length 2 is out of range"),
    (1, False, "$: no value is allowed here"),
])
def test_invalid(value, schema, message):
    errors = schema_errors(value, schema)
    assert errors and errors[0].startswith(message)


def test_path_prefix_and_error_cap():
    schema = {"type": "array", "items": {"type": "string"}}
    errors = schema_errors(list(range(20)), schema, path="parameters.xs")
    assert len(errors) == 5 and errors[0] == "parameters.xs[0]: expected string, got 0"


def test_unknown_keywords_are_ignored():
    assert schema_errors("anything", {"type": "string", "format": "email",
                                      "pattern": "^x$"}) == []
