"""A tool's parameters: their JSON schema, and ``prepare``, which checks and converts arguments.

This module owns the step from a callable's parameters (or one pydantic model) to the
``parameters`` schema of its :class:`~tim.tree.ToolSpec` and to the function that turns
the model's JSON arguments into keyword arguments, and how such errors are worded
(:func:`explain_invalid`). Reading the callable itself is :mod:`tim.tools.spec`'s job.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from enum import Enum
from typing import Any

from tim.tools.schema import FieldSchema, UnsupportedHint, field_schema
from tim.tools.validate import schema_errors

__all__ = ["explain_invalid", "model_parameters", "signature_parameters"]


def explain_invalid(error: ValueError, path: str) -> str:
    """One line naming where ``error`` happened; pydantic's errors without their links.

    Examples
    --------
    >>> explain_invalid(ValueError("bad"), "parameters.x")
    'parameters.x: bad'
    """
    if callable(getattr(error, "errors", None)):
        try:
            return "; ".join(
                f"{'.'.join([path, *map(str, e['loc'])])}: {e['msg']}"
                for e in error.errors(include_url=False))
        except (TypeError, KeyError):
            pass
    return f"{path}: {error}"


def _json_default(value: Any) -> tuple[bool, Any]:
    value = value.value if isinstance(value, Enum) else value
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False, None
    return True, value


def signature_parameters(name: str, params: list[inspect.Parameter], hints: dict,
                         docs: dict[str, str]) -> tuple[dict, Callable]:
    """``(schema, prepare)`` for a tool ``name`` whose parameters are ``params``.

    ``hints`` maps each parameter to its type hint and ``docs`` to its description.
    Raises ``ValueError`` naming the tool and the parameter for a hint with no JSON mapping.

    Examples
    --------
    >>> import inspect
    >>> def scale(x: float, factor: int = 2) -> float: ...
    >>> params = list(inspect.signature(scale).parameters.values())
    >>> schema, prepare = signature_parameters("scale", params, {"x": float, "factor": int},
    ...                                        {"x": "The value."})
    >>> schema["properties"]["x"], schema["required"]
    ({'type': 'number', 'description': 'The value.'}, ['x'])
    >>> prepare({"x": 1.5})
    {'x': 1.5}
    >>> prepare({"x": "one"})
    Traceback (most recent call last):
    ...
    ValueError: parameters.x: expected number, got "one"
    """
    defs: dict[str, dict] = {}
    fields: dict[str, FieldSchema] = {}
    properties: dict[str, dict] = {}
    required: list[str] = []
    for p in params:
        try:
            field = field_schema(hints[p.name], defs)
        except UnsupportedHint as e:
            raise ValueError(f"tool {name!r}: parameter {p.name!r}: {e}") from e
        fields[p.name] = field
        prop = dict(field.schema)
        if docs.get(p.name) and "description" not in prop:
            prop["description"] = docs[p.name]
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        else:
            ok, default = _json_default(p.default)
            if ok:
                prop["default"] = default
        properties[p.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    if defs:
        schema["$defs"] = defs

    def prepare(arguments: Any) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise ValueError(f"parameters must be a JSON object, got {arguments!r}")
        errors = schema_errors(arguments, schema, path="parameters")
        if errors:
            raise ValueError("; ".join(errors))
        kwargs = {}
        for key, value in arguments.items():
            try:
                kwargs[key] = fields[key].convert(value)
            except ValueError as e:  # pydantic's ValidationError is a ValueError
                raise ValueError(explain_invalid(e, f"parameters.{key}")) from e
        return kwargs

    return schema, prepare


def model_parameters(param: str, model: Any) -> tuple[dict, Callable]:
    """A single pydantic-model parameter: the model's fields are the tool's parameters."""

    def prepare(arguments: Any) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise ValueError(f"parameters must be a JSON object, got {arguments!r}")
        try:
            return {param: model.model_validate(arguments)}
        except ValueError as e:
            raise ValueError(explain_invalid(e, "parameters")) from e

    return model.model_json_schema(), prepare
