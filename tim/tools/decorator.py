"""``@tool``: the marks a callable carries to override its name, description or timeout.

This module owns the mark: :class:`ToolOptions` (validated), the :func:`tool` decorator
that attaches it, and :func:`tool_options`, which reads it back. Turning a marked callable
into a spec is :mod:`tim.tools.spec`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ToolOptions", "tool", "tool_options"]

_ATTRIBUTE = "__tim_tool__"


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
    >>> from tim.tools import tool_spec
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


def tool_options(fn: Callable) -> ToolOptions:
    """The :class:`ToolOptions` :func:`tool` put on ``fn``; all ``None`` when unmarked.

    Examples
    --------
    >>> tool_options(tool(lambda: 0, timeout_s=1.5)).timeout_s
    1.5
    >>> tool_options(print)
    ToolOptions(name=None, description=None, timeout_s=None)
    """
    options = getattr(fn, _ATTRIBUTE, None)
    return options if isinstance(options, ToolOptions) else ToolOptions()
