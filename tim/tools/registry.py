"""The tools of a run by name, and one call: JSON arguments in, a JSON result or error out."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from tim.tools.schema import is_pydantic_model
from tim.tools.spec import BoundTool, bind_tool
from tim.tree import ToolSpec

__all__ = ["ToolCaller", "ToolOutcome", "ToolRegistry", "error_outcome", "serialise_result"]


class ToolOutcome(NamedTuple):
    """What one tool call gave.

    Attributes
    ----------
    result_json : str
        The text forced into ``tool_result``: the result as JSON, or ``{"error": "..."}``.
    error : str or None
        The error message when the call failed (the same text as in ``result_json``).
    elapsed_s : float
        Wall time of the call, argument checks and serialisation included.
    """

    result_json: str
    error: str | None
    elapsed_s: float


class ToolCaller(Protocol):
    """What :class:`~tim.tools.ToolExecutor` drives; :class:`ToolRegistry` is one."""

    @property
    def specs(self) -> tuple[ToolSpec, ...]: ...

    def call(self, name: str, parameters: Any) -> ToolOutcome: ...

    def timeout_for(self, name: str) -> float | None: ...


def error_outcome(message: str, elapsed_s: float) -> ToolOutcome:
    """The outcome of a failed call: ``{"error": message}`` as JSON.

    Examples
    --------
    >>> error_outcome("tool 'f' timed out after 1 s", 1.0).result_json
    '{"error": "tool \\'f\\' timed out after 1 s"}'
    """
    return ToolOutcome(json.dumps({"error": message}, ensure_ascii=False), message, elapsed_s)


def serialise_result(result: Any) -> str:
    """A tool's return value as JSON; a pydantic model is dumped first.

    Raises ``TypeError``, ``ValueError`` (NaN, infinity, a cycle) or ``RecursionError``.

    Examples
    --------
    >>> serialise_result({"π": [1, 2.5, None]})
    '{"π": [1, 2.5, null]}'
    """
    if is_pydantic_model(type(result)):
        result = result.model_dump(mode="json")
    return json.dumps(result, ensure_ascii=False, allow_nan=False)


class ToolRegistry:
    """The tools of a run, looked up by name; :meth:`call` turns every failure into a result.

    Parameters
    ----------
    tools : Sequence[Callable]
        Callables as :func:`~tim.tools.tool_spec` accepts them.

    Raises
    ------
    ValueError
        Naming a tool that :func:`~tim.tools.tool_spec` rejects, or quoting duplicate names.

    Examples
    --------
    >>> def add(a: int, b: int) -> int:
    ...     '''Add two integers.'''
    ...     return a + b
    >>> registry = ToolRegistry([add])
    >>> [spec.name for spec in registry.specs]
    ['add']
    >>> registry.call("add", {"a": 2, "b": 3}).result_json
    '5'
    >>> registry.call("add", {"a": "2", "b": 3}).error
    'invalid arguments for tool \\'add\\': parameters.a: expected integer, got "2"'
    >>> registry.call("mul", {}).result_json
    '{"error": "unknown tool \\'mul\\'; the tools are: add"}'
    """

    def __init__(self, tools: Sequence[Callable] = ()) -> None:
        if callable(tools) or isinstance(tools, (str, bytes)):
            raise ValueError(f"tools must be a sequence of callables, got {tools!r}")
        bound = [bind_tool(t) for t in tools]
        duplicates = sorted(n for n, k in Counter(b.spec.name for b in bound).items() if k > 1)
        if duplicates:
            raise ValueError(f"tool names must be unique, got duplicates {duplicates!r}")
        self._tools: dict[str, BoundTool] = {b.spec.name: b for b in bound}

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        """The tools' specs, in the order given."""
        return tuple(b.spec for b in self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._tools

    def timeout_for(self, name: str) -> float | None:
        """The timeout set with ``@tool(timeout_s=...)``; ``None`` if unset or unknown."""
        return self._tools[name].timeout_s if name in self else None

    def call(self, name: str, parameters: Any) -> ToolOutcome:
        """Run one tool in this thread, with no timeout (use :class:`ToolExecutor` for that).

        Parameters
        ----------
        name : str
            The tool's name as the model wrote it.
        parameters : Any
            The parsed JSON arguments; a dict for a valid call.

        Returns
        -------
        ToolOutcome
            The result as JSON, or ``{"error": ...}`` for an unknown tool, invalid arguments,
            an exception from the tool, or a result that is not JSON (NaN and infinity
            included). It never raises for these; ``KeyboardInterrupt`` and ``SystemExit``
            from the tool pass through.
        """
        start = time.perf_counter()

        def fail(message: str) -> ToolOutcome:
            return error_outcome(message, time.perf_counter() - start)

        if name not in self:
            return fail(f"unknown tool {name!r}; the tools are: {', '.join(self._tools) or '(none)'}")
        bound = self._tools[name]
        try:
            kwargs = bound.prepare(parameters)
        except Exception as e:  # noqa: BLE001 - any failure to convert is the model's mistake
            return fail(f"invalid arguments for tool {name!r}: {e}")
        try:
            result = bound.fn(**kwargs)
        except Exception as e:  # noqa: BLE001 - the tool's failure becomes the tool's result
            detail = f": {e}" if str(e) else ""
            return fail(f"tool {name!r} raised {type(e).__name__}{detail}")
        try:
            text = serialise_result(result)
        except (TypeError, ValueError, RecursionError) as e:
            return fail(f"tool {name!r} returned a result that is not JSON-serialisable "
                        f"({type(result).__name__}): {e}")
        return ToolOutcome(text, None, time.perf_counter() - start)
