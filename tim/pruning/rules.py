"""Pruning rules: which completed subtask lists one view should evict.

A rule is any object with ``select(state, view) -> iterable of ListId`` (the :class:`Rule`
protocol). It only chooses; :func:`tim.pruning.plan_evictions` checks the choice against the
invariants and holds back lists that other views still share.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tim.pruning.state import ListId, PruneState, ViewId

__all__ = ["Rule", "NoPruning", "BufferRule", "get_rule"]


@runtime_checkable
class Rule(Protocol):
    """The plug point for pruning: choose the lists one view should evict.

    ``select`` must be a pure function of its arguments. It may only name lists that the
    view holds, that are completed and that contain no running task; anything else makes
    :func:`tim.pruning.plan_evictions` raise :class:`tim.TimError`.

    Examples
    --------
    A rule that evicts a completed list as soon as its owner task has concluded:

    >>> from tim.pruning import PruneStatus
    >>> class AfterConclusion:
    ...     def select(self, state, view):
    ...         return [info.id for info in state.completed_lists(view)
    ...                 if state.tasks[info.owner].status is PruneStatus.DONE]
    >>> isinstance(AfterConclusion(), Rule)
    True
    """

    def select(self, state: PruneState, view: ViewId) -> Iterable[ListId]:
        """Return the ids of the lists ``view`` should evict (order does not matter)."""
        ...


@dataclass(frozen=True)
class NoPruning:
    """The ``none`` rule: evict nothing.

    Examples
    --------
    >>> NoPruning().spec
    'none'
    """

    @property
    def spec(self) -> str:
        """The string :func:`get_rule` parses back to this rule."""
        return "none"

    def select(self, state: PruneState, view: ViewId) -> tuple[ListId, ...]:
        return ()


@dataclass(frozen=True)
class BufferRule:
    """The ``buffer:k`` rule of TIMRUN: a view keeps its newest ``k`` completed lists.

    Every completed list the view holds goes on the view's stack in completion order
    (inner lists complete before the list containing them). All but the newest ``k`` are
    selected. Lists that are gone with an evicted container are no longer held, so they
    leave the stack and take no slot.

    Parameters
    ----------
    k : int or float
        How many completed lists to keep: an int >= 0, or ``math.inf`` to keep all
        (then the rule behaves exactly like :class:`NoPruning`).

    Raises
    ------
    ValueError
        If ``k`` is not an int >= 0 or ``math.inf``.

    Examples
    --------
    >>> BufferRule(1).spec
    'buffer:1'
    >>> BufferRule(-1)
    Traceback (most recent call last):
    ...
    ValueError: buffer size k must be an int >= 0 or math.inf, got -1
    """

    k: int | float

    def __post_init__(self) -> None:
        valid_int = isinstance(self.k, int) and not isinstance(self.k, bool) and self.k >= 0
        if not (valid_int or (isinstance(self.k, float) and self.k == math.inf)):
            raise ValueError(f"buffer size k must be an int >= 0 or math.inf, got {self.k!r}")

    @property
    def spec(self) -> str:
        """The string :func:`get_rule` parses back to this rule."""
        return "buffer:inf" if self.k == math.inf else f"buffer:{self.k}"

    def select(self, state: PruneState, view: ViewId) -> tuple[ListId, ...]:
        stack = state.completed_lists(view)
        if self.k >= len(stack):
            return ()
        return tuple(info.id for info in stack[: len(stack) - int(self.k)])


_BUFFER_SPEC = re.compile(r"buffer:(?:(?P<k>[0-9]+)|inf)")


def get_rule(spec: str) -> NoPruning | BufferRule:
    """Parse a rule spec string.

    Parameters
    ----------
    spec : str
        ``"none"``, ``"buffer:K"`` with an integer K >= 0, or ``"buffer:inf"``.

    Returns
    -------
    NoPruning or BufferRule

    Raises
    ------
    ValueError
        If ``spec`` is anything else; the message quotes it.

    Examples
    --------
    >>> get_rule("buffer:2")
    BufferRule(k=2)
    >>> get_rule("buffer:inf").spec
    'buffer:inf'
    >>> get_rule("bufer:1")
    Traceback (most recent call last):
    ...
    ValueError: invalid pruning rule 'bufer:1': expected 'none' or 'buffer:K' with K >= 0 or 'buffer:inf'
    """
    if isinstance(spec, str):
        if spec == "none":
            return NoPruning()
        match = _BUFFER_SPEC.fullmatch(spec)
        if match:
            k = match.group("k")
            return BufferRule(math.inf if k is None else int(k))
    raise ValueError(
        f"invalid pruning rule {spec!r}: expected 'none' or 'buffer:K' with K >= 0 or 'buffer:inf'"
    )
