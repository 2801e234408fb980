"""From a Python callable to a :class:`~tim.tree.ToolSpec` and a checked way to call it."""

from __future__ import annotations

import functools
import inspect
import json
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from tim.tools.docstrings import parse_docstring
from tim.tools.schema import FieldSchema, UnsupportedHint, field_schema, is_pydantic_model
from tim.tools.validate import schema_errors
from tim.tree import ToolSpec

__all__ = ["BoundTool", "ToolOptions", "bind_tool", "explain_invalid", "tool", "tool_spec"]

_ATTRIBUTE = "__tim_tool__"
_BAD_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "is positional-only",
    inspect.Parameter.VAR_POSITIONAL: "is *args",
    inspect.Parameter.VAR_KEYWORD: "is **kwargs",
}


@dataclass(frozen=True)
class ToolOptions:
    """Overrides set by :func:`tool`; ``None`` keeps what the callable itself says.

    Raises
    ------
    ValueError
        Quoting a ``timeout_s`` that is not a positive finite number, or a non-str name or
        description.
    """

    name: str | None = None
    description: str | None = None
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        for key in ("name", "description"):
            if getattr(self, key) is not None and not isinstance(getattr(self, key), str):
                raise ValueError(f"tool {key} must be a str, got {getattr(self, key)!r}")
        t = self.timeout_s
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                              or not math.isfinite(t) or t <= 0):
            raise ValueError(f"tool timeout_s must be a positive number of seconds, got {t!r}")


def tool(fn: Callable | None = None, /, *, name: str | None = None,
         description: str | None = None, timeout_s: float | None = None) -> Any:
    """Mark a callable as a tool, overriding its name, description or timeout.

    Use it bare (``@tool``) or with keywords. The callable is returned unchanged, so it can
    still be called directly; :func:`tool_spec` and :class:`ToolRegistry` read the marks.

    Parameters
    ----------
    fn : Callable, optional
        The callable, when used bare.
    name : str, optional
        The tool's name instead of ``fn.__name__``.
    description : str, optional
        The description instead of the docstring's first paragraph.
    timeout_s : float, optional
        This tool's timeout in :class:`ToolExecutor`, instead of the executor's default.

    Raises
    ------
    ValueError
        Quoting a bad ``timeout_s``, or naming a callable that cannot carry the mark.

    Examples
    --------
    >>> @tool(name="calc", description="Evaluate + and * over integers.", timeout_s=2.0)
    ... def evaluate(expression: str) -> int:
    ...     return 0
    >>> tool_spec(evaluate).name, tool_spec(evaluate).description
    ('calc', 'Evaluate + and * over integers.')
    >>> evaluate("1+1")
    0
    """
    options = ToolOptions(name, description, timeout_s)

    def mark(target: Callable) -> Callable:
        if not callable(target):
            raise ValueError(f"@tool needs a callable, got {target!r}")
        try:
            setattr(target, _ATTRIBUTE, options)
        except (AttributeError, TypeError) as e:
            raise ValueError(f"@tool cannot mark {target!r}: {e}") from e
        return target

    return mark if fn is None else mark(fn)


class BoundTool(NamedTuple):
    """A tool ready to run: its spec, the callable and how to turn JSON into its arguments.

    Attributes
    ----------
    spec : ToolSpec
        Name, description and parameter schema.
    fn : Callable
        The callable, called with keyword arguments only.
    prepare : Callable[[Any], dict[str, Any]]
        Checks the parsed JSON ``parameters`` against ``spec.parameters`` and converts them
        to keyword arguments; raises ``ValueError`` (pydantic's ``ValidationError`` for
        pydantic models) whose message names the place, e.g. ``parameters.x: ...``.
    timeout_s : float or None
        The timeout set with :func:`tool`, if any.
    """

    spec: ToolSpec
    fn: Callable
    prepare: Callable[[Any], dict[str, Any]]
    timeout_s: float | None


def tool_spec(fn: Callable) -> ToolSpec:
    """The :class:`~tim.tree.ToolSpec` of a callable: its name, docstring summary and schema.

    The parameter schema comes from the type hints (table in ``docs/tools.md``); each
    property's ``description`` from the numpydoc ``Parameters`` or Google ``Args:`` section;
    parameters with defaults are not required and carry the default. A single parameter
    annotated with a pydantic model makes that model's fields the tool's parameters.

    Parameters
    ----------
    fn : Callable
        A function, method, ``functools.partial`` or callable object, maybe marked with
        :func:`tool`.

    Returns
    -------
    ToolSpec

    Raises
    ------
    ValueError
        Naming the tool and the parameter: a parameter with no type hint, ``*args``,
        ``**kwargs``, a positional-only parameter, or a hint with no JSON mapping; also an
        ``async`` callable or a name :class:`~tim.tree.ToolSpec` rejects.

    Examples
    --------
    >>> def search(query: str, limit: int = 5) -> list:
    ...     '''Search the notes.
    ...
    ...     Parameters
    ...     ----------
    ...     query : str
    ...         Words to look for.
    ...     '''
    ...     return []
    >>> spec = tool_spec(search)
    >>> spec.description
    'Search the notes.'
    >>> spec.parameters["properties"]
    {'query': {'type': 'string', 'description': 'Words to look for.'}, 'limit': {'type': 'integer', 'default': 5}}
    >>> spec.parameters["required"]
    ['query']
    >>> tool_spec(lambda x: x)
    Traceback (most recent call last):
    ...
    ValueError: tool '<lambda>': parameter 'x' has no type hint
    """
    return bind_tool(fn).spec


def bind_tool(fn: Callable) -> BoundTool:
    """Analyse ``fn`` once: its :class:`BoundTool`. Raises as :func:`tool_spec` does."""
    if not callable(fn):
        raise ValueError(f"a tool must be callable, got {fn!r}")
    options = getattr(fn, _ATTRIBUTE, None)
    options = options if isinstance(options, ToolOptions) else ToolOptions()
    name = options.name or _default_name(fn)
    target = _hint_target(fn)
    if inspect.iscoroutinefunction(target):
        raise ValueError(f"tool {name!r}: async callables are not supported; wrap it in a "
                         "function that runs it (asyncio.run)")
    try:
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(target, include_extras=True)
    except (TypeError, ValueError, NameError) as e:
        raise ValueError(f"tool {name!r}: cannot read its signature or type hints: {e}") from e
    params = list(signature.parameters.values())
    for p in params:
        if p.kind in _BAD_KINDS:
            raise ValueError(f"tool {name!r}: parameter {p.name!r} {_BAD_KINDS[p.kind]}; "
                             "tools take named arguments only")
        if p.name not in hints:
            raise ValueError(f"tool {name!r}: parameter {p.name!r} has no type hint")
    docstring = inspect.getdoc(target)
    if not docstring and not inspect.isroutine(fn) and not isinstance(fn, functools.partial):
        docstring = inspect.getdoc(fn)  # a callable object: its class's docstring
    doc = parse_docstring(docstring)
    description = doc.summary if options.description is None else options.description
    if len(params) == 1 and is_pydantic_model(hints[params[0].name]):
        schema, prepare = _model_parameters(params[0].name, hints[params[0].name])
    else:
        schema, prepare = _signature_parameters(name, params, hints, doc.params)
    return BoundTool(ToolSpec(name, description, schema), fn, prepare, options.timeout_s)


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


def _default_name(fn: Callable) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", None) or type(fn).__name__


def _hint_target(fn: Callable) -> Callable:
    """The function whose annotations and docstring describe ``fn``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isroutine(fn):
        return fn
    return type(fn).__call__  # a callable object


def _json_default(value: Any) -> tuple[bool, Any]:
    value = value.value if isinstance(value, Enum) else value
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False, None
    return True, value


def _signature_parameters(name: str, params: list[inspect.Parameter], hints: dict,
                          docs: dict[str, str]) -> tuple[dict, Callable]:
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


def _model_parameters(param: str, model: Any) -> tuple[dict, Callable]:
    """A single pydantic-model parameter: the model's fields are the tool's parameters."""

    def prepare(arguments: Any) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise ValueError(f"parameters must be a JSON object, got {arguments!r}")
        try:
            return {param: model.model_validate(arguments)}
        except ValueError as e:
            raise ValueError(explain_invalid(e, "parameters")) from e

    return model.model_json_schema(), prepare
