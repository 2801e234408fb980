"""From a Python callable to a :class:`~tim.tree.ToolSpec` and a checked way to call it.

This module owns reading a callable: its name, signature, type hints and docstring, into a
:class:`BoundTool`. The ``@tool`` mark is :mod:`tim.tools.decorator`'s, the parameter schema
and argument checks are :mod:`tim.tools.parameters`'s; their public names are re-exported
here.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

from tim.tools.decorator import ToolOptions, tool, tool_options
from tim.tools.docstrings import parse_docstring
from tim.tools.parameters import explain_invalid, model_parameters, signature_parameters
from tim.tools.schema import is_pydantic_model
from tim.tree import ToolSpec

__all__ = ["BoundTool", "ToolOptions", "bind_tool", "explain_invalid", "tool", "tool_spec"]

_BAD_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "is positional-only",
    inspect.Parameter.VAR_POSITIONAL: "is *args",
    inspect.Parameter.VAR_KEYWORD: "is **kwargs",
}


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
    options = tool_options(fn)
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
        schema, prepare = model_parameters(params[0].name, hints[params[0].name])
    else:
        schema, prepare = signature_parameters(name, params, hints, doc.params)
    return BoundTool(ToolSpec(name, description, schema), fn, prepare, options.timeout_s)


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
