"""Errors raised by tim. User mistakes raise ``ValueError`` (bad config) or a ``TimError``."""

from __future__ import annotations

__all__ = [
    "TimError",
    "FormatError",
    "UnsupportedModelError",
    "KVBudgetError",
    "PositionWindowError",
    "TraceError",
    "recorded_error_is",
]


class TimError(Exception):
    """Base class for every error tim raises on purpose."""


class FormatError(TimError):
    """Text or JSON that does not follow a task-tree format. The message names the JSON path or offset."""


class UnsupportedModelError(TimError):
    """A model, RoPE type or attention feature tim cannot run correctly. The message names what is missing."""


class KVBudgetError(TimError):
    """The KV page pool cannot hold what was asked. The pool is left consistent."""


class PositionWindowError(TimError):
    """A position id would reach the context window ``max_position`` (RoPE past its trained
    range). The engine checks before the forward that would use the position: a prompt longer
    than the window raises it; a stream that would be fed at a position ``>= max_position``
    ends its run with ``record.error = "PositionWindowError: ..."``."""


class TraceError(TimError):
    """A saved run file that is truncated, edited by hand or of an unknown version."""


def recorded_error_is(error: str | None, kind: type[Exception]) -> bool:
    """True when ``error``, a run record's error string, reports ``kind``: the engine writes
    an error that ends a run as ``"<Name>: <message>"``.

    Examples
    --------
    >>> recorded_error_is("PositionWindowError: stream [] ...", PositionWindowError)
    True
    >>> recorded_error_is("cancelled", PositionWindowError)
    False
    """
    return error is not None and error.startswith(f"{kind.__name__}: ")
