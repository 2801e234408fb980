"""Tools in the runtime: Python callables the model calls by name with JSON arguments.

- :func:`tool_spec` reads a callable's :class:`~tim.tree.ToolSpec` (name, description, JSON
  schema of its parameters) from its type hints and docstring; pydantic models are accepted.
  :func:`tool` overrides the name, description or timeout.
- :class:`ToolRegistry` holds a run's tools; ``call(name, parameters)`` returns a
  :class:`ToolOutcome` whose ``result_json`` is the result, or ``{"error": "..."}`` for an
  unknown tool, invalid arguments, an exception, a non-JSON result.
- :class:`ToolExecutor` runs calls in daemon threads with a per-call timeout, as futures
  that always resolve to a :class:`ToolOutcome`.

See ``docs/tools.md``.

Examples
--------
>>> from tim.tools import ToolRegistry, tool_spec
>>> def add(a: int, b: int = 1) -> int:
...     '''Add two integers.'''
...     return a + b
>>> tool_spec(add).parameters
{'type': 'object', 'properties': {'a': {'type': 'integer'}, 'b': {'type': 'integer', 'default': 1}}, 'required': ['a'], 'additionalProperties': False}
>>> ToolRegistry([add]).call("add", {"a": 41})
ToolOutcome(result_json='42', error=None, elapsed_s=...)
"""

from tim.tools.executor import ToolExecutor
from tim.tools.registry import ToolCaller, ToolOutcome, ToolRegistry, error_outcome
from tim.tools.spec import tool, tool_spec

__all__ = [
    "ToolCaller",
    "ToolExecutor",
    "ToolOutcome",
    "ToolRegistry",
    "error_outcome",
    "tool",
    "tool_spec",
]
