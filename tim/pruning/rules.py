"""Pruning rules: which completed subtask lists one view should evict.

A rule is any object with ``select(state, view) -> iterable of ListId`` (the :class:`Rule`
protocol). It only chooses; :func:`tim.pruning.plan_evictions` checks the choice against the
invariants and holds back lists that other views still share. :class:`BufferRule` is TIMRUN's
``buffer:k``; its ``point`` says when a completed list counts: at its ``]`` (``buffer:k``) or
once its owner's conclusion is closed (``buffer:k@conclusion``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tim.pruning.state import ListId, PruneState, PruneStatus, ViewId

__all__ = ["Rule", "NoPruning", "BufferRule", "get_rule"]


@runtime_checkable
class Rule(Protocol):
    """The plug point for pruning: choose the lists one view should evict.

    ``select`` must be a pure function of its arguments. It may only name lists that the
    view holds, that are completed and that contain no running task; anything else makes
    :func:`tim.pruning.plan_evictions` raise :class:`tim.TimError`.

    Examples
    --------
    A rule that evicts only the completed lists that hold no nested list (the leaves of the
    tree), however many there are:

    >>> class LeafLists:
    ...     def select(self, state, view):
    ...         parents = {info.parent for info in state.lists.values()}
    ...         return [info.id for info in state.completed_lists(view)
    ...                 if info.id not in parents]
    >>> isinstance(LeafLists(), Rule)
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


_POINTS = ("close", "conclusion")


@dataclass(frozen=True)
class BufferRule:
    """The ``buffer:k`` rule of TIMRUN: a view keeps its newest ``k`` completed lists.

    Every completed list the view holds that *counts* goes on the view's stack, in
    completion order (inner lists complete before the list containing them). All but the
    newest ``k`` are selected. Lists that are gone with an evicted container are no longer
    held, so they leave the stack and take no slot.

    When a completed list starts to count is the ``point``::

        "subtasks": [ {...}, {...} ], "conclusion": "..." }
                                    ^                     ^
                         "close" counts here    "conclusion" counts here

    - ``"close"`` (``buffer:k``): at once, when the list completes (its ``]``, or the join
      in ``parallel``), so under ``buffer:0`` the owner writes its conclusion without it.
    - ``"conclusion"`` (``buffer:k@conclusion``): once the list's owner task has finished
      (DONE: its ``}`` after the conclusion; or FAILED), so the owner concludes with its
      children's results in view.

    Parameters
    ----------
    k : int or float
        How many counted lists to keep: an int >= 0, or ``math.inf`` to keep all (then the
        rule behaves exactly like :class:`NoPruning`).
    point : str
        ``"close"`` (default) or ``"conclusion"``: when a completed list counts.

    Raises
    ------
    ValueError
        If ``k`` is not an int >= 0 or ``math.inf``, or ``point`` is not one of the two.

    Examples
    --------
    >>> BufferRule(1).spec
    'buffer:1'
    >>> BufferRule(0, point="conclusion").spec
    'buffer:0@conclusion'
    >>> BufferRule(-1)
    Traceback (most recent call last):
    ...
    ValueError: buffer size k must be an int >= 0 or math.inf, got -1
    >>> BufferRule(1, point="join")
    Traceback (most recent call last):
    ...
    ValueError: buffer point must be 'close' or 'conclusion', got 'join'
    """

    k: int | float
    point: str = "close"

    def __post_init__(self) -> None:
        valid_int = isinstance(self.k, int) and not isinstance(self.k, bool) and self.k >= 0
        if not (valid_int or (isinstance(self.k, float) and self.k == math.inf)):
            raise ValueError(f"buffer size k must be an int >= 0 or math.inf, got {self.k!r}")
        if not isinstance(self.point, str) or self.point not in _POINTS:
            raise ValueError(f"buffer point must be 'close' or 'conclusion', got {self.point!r}")

    @property
    def spec(self) -> str:
        """The string :func:`get_rule` parses back to this rule."""
        size = "inf" if self.k == math.inf else str(self.k)
        return f"buffer:{size}" + ("" if self.point == "close" else f"@{self.point}")

    def select(self, state: PruneState, view: ViewId) -> tuple[ListId, ...]:
        stack = state.completed_lists(view)
        if self.point == "conclusion":
            stack = tuple(info for info in stack
                          if state.tasks[info.owner].status is not PruneStatus.RUNNING)
        if self.k >= len(stack):
            return ()
        return tuple(info.id for info in stack[: len(stack) - int(self.k)])


_BUFFER_SPEC = re.compile(r"buffer:(?:(?P<k>[0-9]+)|inf)(?:@(?P<point>conclusion))?")
_EXPECTED = ("expected 'none', 'buffer:K' with K >= 0 or 'buffer:inf', "
             "each optionally followed by '@conclusion'")


def get_rule(spec: str) -> NoPruning | BufferRule:
    """Parse a rule spec string.

    Parameters
    ----------
    spec : str
        ``"none"``, ``"buffer:K"`` with an integer K >= 0, or ``"buffer:inf"``; a buffer
        spec may end in ``"@conclusion"`` (:class:`BufferRule`'s ``point``).

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
    BufferRule(k=2, point='close')
    >>> get_rule("buffer:inf").spec
    'buffer:inf'
    >>> get_rule("buffer:0@conclusion")
    BufferRule(k=0, point='conclusion')
    >>> get_rule("bufer:1")
    Traceback (most recent call last):
    ...
    ValueError: invalid pruning rule 'bufer:1': expected 'none', 'buffer:K' with K >= 0 or 'buffer:inf', each optionally followed by '@conclusion'
    """
    if isinstance(spec, str):
        if spec == "none":
            return NoPruning()
        match = _BUFFER_SPEC.fullmatch(spec)
        if match:
            k = match.group("k")
            return BufferRule(math.inf if k is None else int(k),
                              point=match.group("point") or "close")
    raise ValueError(f"invalid pruning rule {spec!r}: {_EXPECTED}")
