"""Type hints -> JSON schema, each paired with a function that turns checked JSON into the value.

One walk over an annotation gives both halves, so the schema the grammar enforces and the
conversion the call receives cannot drift apart. The mapping (also in ``docs/tools.md``):

=====================================  =================================================
hint                                   schema
=====================================  =================================================
``str`` / ``int`` / ``float``          ``{"type": "string" / "integer" / "number"}``
``bool`` / ``None``                    ``{"type": "boolean" / "null"}``
``list[X]`` / ``Sequence[X]``          ``{"type": "array", "items": X}``
``dict[str, X]`` / ``Mapping[str, X]`` ``{"type": "object", "additionalProperties": X}``
``X | Y``, ``Optional[X]``             ``{"anyOf": [X, Y]}`` (``None`` gives ``null``)
``Literal["a", "b"]``                  ``{"type": "string", "enum": ["a", "b"]}``
``Enum`` subclass                      ``{"type": ..., "enum": [member values]}``
``Annotated[X, "text"]``               X with ``"description": "text"``
``Any``                                ``{}`` (any JSON)
pydantic ``BaseModel`` subclass        ``model_json_schema()`` (its ``$defs`` hoisted)
=====================================  =================================================

pydantic is never imported here: a hint can only be a pydantic model if the caller's code
already imported pydantic, so ``sys.modules`` is asked instead.
"""

from __future__ import annotations

import collections.abc
import enum
import json
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

from tim.tools.validate import schema_errors

__all__ = ["FieldSchema", "UnsupportedHint", "field_schema", "is_pydantic_model"]

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean",
                            type(None): "null"}
_LISTS = (list, collections.abc.Sequence, collections.abc.MutableSequence)
_DICTS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


class UnsupportedHint(ValueError):
    """An annotation with no JSON-schema mapping; the caller names the tool and parameter."""


class FieldSchema(NamedTuple):
    """One annotation's JSON schema and the conversion from checked JSON to the value.

    Attributes
    ----------
    schema : dict
        The JSON schema; ``$ref`` pointers in it resolve against the tool's ``$defs``.
    convert : Callable[[Any], Any]
        Applied to a JSON value that already satisfies ``schema``; gives the Python argument
        (an ``Enum`` member, a pydantic model, ``float`` for ``float`` ...). pydantic's
        ``ValidationError`` (a ``ValueError``) may escape it for pydantic fields.
    """

    schema: dict
    convert: Callable[[Any], Any]


def is_pydantic_model(hint: Any) -> bool:
    """Whether ``hint`` is a pydantic ``BaseModel`` subclass (without importing pydantic).

    Examples
    --------
    >>> is_pydantic_model(int)
    False
    """
    pydantic = sys.modules.get("pydantic")
    return (pydantic is not None and isinstance(hint, type)
            and issubclass(hint, pydantic.BaseModel))


def _identity(value: Any) -> Any:
    return value


def field_schema(hint: Any, defs: dict[str, dict]) -> FieldSchema:
    """Map one type hint to its :class:`FieldSchema`.

    Parameters
    ----------
    hint : Any
        A resolved annotation (``typing.get_type_hints`` output, not a string).
    defs : dict[str, dict]
        The tool's shared ``$defs``; pydantic models add their nested definitions to it.

    Raises
    ------
    UnsupportedHint
        For a hint outside the table in the module docstring (``set``, ``bytes``, a plain
        class, ``dict[int, str]`` ...), or two different pydantic models with one name.

    Examples
    --------
    >>> from typing import Literal, Optional
    >>> field_schema(Optional[list[int]], {}).schema
    {'anyOf': [{'type': 'array', 'items': {'type': 'integer'}}, {'type': 'null'}]}
    >>> field_schema(Literal["asc", "desc"], {}).schema
    {'type': 'string', 'enum': ['asc', 'desc']}
    >>> field_schema(float, {}).convert(3)
    3.0
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return FieldSchema({}, _identity)
    if isinstance(hint, type) and hint in _SCALARS:
        convert = {int: int, float: float}.get(hint, _identity)
        return FieldSchema({"type": _SCALARS[hint]}, convert)
    if hint is None:
        return FieldSchema({"type": "null"}, _identity)
    if origin is typing.Annotated:
        inner = field_schema(args[0], defs)
        notes = [a for a in args[1:] if isinstance(a, str)]
        schema = {**inner.schema, "description": " ".join(notes)} if notes else inner.schema
        return FieldSchema(schema, inner.convert)
    if origin is typing.Union or origin is types.UnionType:
        return _union([field_schema(a, defs) for a in args], defs)
    if origin is typing.Literal:
        return _enum(list(args), hint, _identity)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum([m.value for m in hint], hint, hint)
    if hint in _LISTS or origin in _LISTS:
        return _list(args, defs)
    if hint in _DICTS or origin in _DICTS:
        return _dict(args, defs)
    if is_pydantic_model(hint):
        return FieldSchema(_hoisted_model_schema(hint, defs), hint.model_validate)
    raise UnsupportedHint(f"{hint!r} has no JSON-schema mapping (supported: str, int, float, "
                          "bool, None, list[...], dict[str, ...], unions, Optional, Literal, "
                          "Enum, Annotated, Any, pydantic models)")


def _enum(values: list, hint: Any, convert: Callable[[Any], Any]) -> FieldSchema:
    if not all(type(v) in _SCALARS for v in values):
        raise UnsupportedHint(f"{hint!r} has values that are not JSON scalars: {values!r}")
    kinds = {_SCALARS[type(v)] for v in values}
    schema = {"type": kinds.pop(), "enum": values} if len(kinds) == 1 else {"enum": values}
    return FieldSchema(schema, convert)


def _union(members: list[FieldSchema], defs: dict[str, dict]) -> FieldSchema:
    alternatives: list[dict] = []
    for member in members:  # flatten nested anyOf so Optional[X | Y] stays one level
        only_any_of = set(member.schema) == {"anyOf"}
        alternatives += member.schema["anyOf"] if only_any_of else [member.schema]
    root = {"$defs": defs}

    def convert(value: Any) -> Any:
        for member in members:  # the first alternative the value satisfies decides
            if not schema_errors(value, member.schema, root=root):
                return member.convert(value)
        raise ValueError(f"{value!r} matches none of {alternatives!r}")

    return FieldSchema({"anyOf": alternatives}, convert)


def _list(args: tuple, defs: dict[str, dict]) -> FieldSchema:
    if not args:
        return FieldSchema({"type": "array"}, _identity)
    item = field_schema(args[0], defs)
    return FieldSchema({"type": "array", "items": item.schema},
                       lambda value: [item.convert(v) for v in value])


def _dict(args: tuple, defs: dict[str, dict]) -> FieldSchema:
    if not args:
        return FieldSchema({"type": "object"}, _identity)
    if args[0] is not str:
        raise UnsupportedHint(f"dict keys must be str for JSON, got {args[0]!r}")
    value = field_schema(args[1], defs)
    return FieldSchema({"type": "object", "additionalProperties": value.schema},
                       lambda obj: {k: value.convert(v) for k, v in obj.items()})


def _hoisted_model_schema(model: Any, defs: dict[str, dict]) -> dict:
    """The model's schema inline, its nested definitions moved into the tool's ``$defs``."""
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        if defs.setdefault(name, definition) != definition:
            raise UnsupportedHint(
                f"two different pydantic models are named {name!r}: "
                f"{json.dumps(defs[name])} and {json.dumps(definition)}")
    return schema
