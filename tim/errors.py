"""Errors raised by tim. User mistakes raise ``ValueError`` (bad config) or a ``TimError``."""

from __future__ import annotations

__all__ = [
    "TimError",
    "FormatError",
    "UnsupportedModelError",
    "KVBudgetError",
    "TraceError",
]


class TimError(Exception):
    """Base class for every error tim raises on purpose."""


class FormatError(TimError):
    """Text or JSON that does not follow a task-tree format. The message names the JSON path or offset."""


class UnsupportedModelError(TimError):
    """A model, RoPE type or attention feature tim cannot run correctly. The message names what is missing."""


class KVBudgetError(TimError):
    """The KV page pool cannot hold what was asked. The pool is left consistent."""


class TraceError(TimError):
    """A saved run file that is truncated, edited by hand or of an unknown version."""
