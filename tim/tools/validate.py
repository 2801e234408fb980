"""A small JSON-schema validator for the schemas :mod:`tim.tools` generates.

It knows ``type``, ``enum``, ``const``, ``anyOf``, ``oneOf``, ``allOf``, ``properties``,
``required``, ``additionalProperties``, ``items``, ``prefixItems``, ``min/maxItems``,
``min/maxLength``, ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum`` and
local ``$ref`` (``#/$defs/...``). Every other keyword is ignored, so on a foreign schema it
is looser than a full validator, never stricter. Pydantic parameters are validated again by
pydantic itself.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["schema_errors"]

_MAX_ERRORS = 5


def schema_errors(value: Any, schema: dict, *, path: str = "$", root: dict | None = None
                  ) -> list[str]:
    """Check a parsed JSON value against a JSON schema; list what is wrong.

    Parameters
    ----------
    value : Any
        A value as ``json.loads`` returns it.
    schema : dict
        The schema (the subset named in the module docstring).
    path : str
        How to name ``value`` in messages; nested places append ``.key`` or ``[i]``.
    root : dict, optional
        The document ``$ref`` pointers resolve against; ``schema`` itself if not given.

    Returns
    -------
    list[str]
        At most a few messages such as ``'$.n: expected integer, got "x"'``; empty if valid.

    Examples
    --------
    >>> schema = {"type": "object", "properties": {"n": {"type": "integer"}},
    ...           "required": ["n"], "additionalProperties": False}
    >>> schema_errors({"n": 3}, schema)
    []
    >>> schema_errors({"n": "x", "m": 1}, schema)
    ['$.n: expected integer, got "x"', '$: unexpected property "m"']
    """
    errors: list[str] = []
    _check(value, schema, path, schema if root is None else root, errors)
    return errors[:_MAX_ERRORS]


def _type_ok(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    return True  # an unknown type name constrains nothing here


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: ``True`` is not ``1``, but ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "..."


def _resolve(ref: str, root: dict) -> dict:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref pointers are supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _check(value: Any, schema: Any, path: str, root: dict, errors: list[str]) -> None:
    if schema is True or schema == {}:
        return
    if schema is False:
        errors.append(f"{path}: no value is allowed here")
        return
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], root), path, root, errors)
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_type_ok(value, t) for t in names):
            errors.append(f"{path}: expected {' or '.join(names)}, got {_show(value)}")
            return
    if "enum" in schema and not any(_json_equal(value, v) for v in schema["enum"]):
        errors.append(f"{path}: expected one of {schema['enum']!r}, got {_show(value)}")
    if "const" in schema and not _json_equal(value, schema["const"]):
        errors.append(f"{path}: expected {schema['const']!r}, got {_show(value)}")
    for sub in schema.get("allOf", ()):
        _check(value, sub, path, root, errors)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            matches = sum(not schema_errors(value, s, path=path, root=root) for s in schema[key])
            if matches == 0 or (key == "oneOf" and matches > 1):
                errors.append(f"{path}: {_show(value)} matches {matches} of the "
                              f"{len(schema[key])} alternatives {schema[key]!r}")
    if isinstance(value, dict):
        _check_object(value, schema, path, root, errors)
    elif isinstance(value, list):
        _check_array(value, schema, path, root, errors)
    elif isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength",
                                                                               math.inf):
            errors.append(f"{path}: length {len(value)} is out of range")
    elif _type_ok(value, "number"):
        _check_number(value, schema, path, errors)


def _check_object(value: dict, schema: dict, path: str, root: dict, errors: list[str]) -> None:
    properties = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            errors.append(f"{path}: missing required property \"{name}\"")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            _check(item, properties[name], f"{path}.{name}", root, errors)
        elif extra is False:
            errors.append(f"{path}: unexpected property \"{name}\"")
        else:
            _check(item, extra, f"{path}.{name}", root, errors)


def _check_array(value: list, schema: dict, path: str, root: dict, errors: list[str]) -> None:
    if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", math.inf):
        errors.append(f"{path}: {len(value)} items is out of range")
    prefix = schema.get("prefixItems", [])
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else schema.get("items", True)
        _check(item, sub, f"{path}[{i}]", root, errors)


def _check_number(value: float, schema: dict, path: str, errors: list[str]) -> None:
    low, high = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
    xlow = schema.get("exclusiveMinimum", -math.inf)
    xhigh = schema.get("exclusiveMaximum", math.inf)
    if not (low <= value <= high and xlow < value < xhigh):
        errors.append(f"{path}: {value!r} is out of range")
