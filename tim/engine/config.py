"""Engine configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from tim.cache import PositionPolicy
from tim.pruning import Rule, get_rule
from tim.tree import get_format

__all__ = ["EngineConfig"]


@dataclass(frozen=True)
class EngineConfig:
    """How a tree is decoded.

    Parameters
    ----------
    format : str
        ``"thread2"`` (one inline stream, siblings in sequence) or ``"parallel"`` (siblings
        fork into concurrent workers).
    max_workers : int
        Most streams decoding at once; extra children wait their turn.
    pruning : str or Rule
        A rule spec for :func:`tim.pruning.get_rule` (``"none"``, ``"buffer:1"``, ...) or
        an object implementing the :class:`tim.pruning.Rule` protocol.
    positions : str
        ``"shift"``, ``"reencode"`` or ``"keep"`` (what happens to positions after an eviction).
    max_new_tokens : int
        Generated (sampled) tokens over all streams before the run stops.
    kv_budget_tokens : int
        KV slots in the page pool; exhausting it raises ``KVBudgetError``.
    page_size : int
        Slots per page (1 keeps the CPU store exact to the token).
    prefill_chunk : int
        Most forced or re-encoded tokens one stream feeds in one step.
    cascade : bool
        Attend a shared prefix once for all sibling queries (cascade attention) where it
        pays.
    cascade_min_saved : int, optional
        Cascade a group of ``M`` views sharing ``Lp`` prefix keys when ``(M - 1) * Lp`` is
        at least this. None (the default): measured on this machine for the model's head
        shape (:func:`tim.engine.cascade_cost.measure_cascade_cost`).
    structure : str
        ``"grammar"``: every stream decodes under its format's llguidance grammar.
        ``"free"``: no mask; the parser still tracks structure and malformed output ends
        that stream with a located error.
    max_depth, max_fanout : int
        Limits the grammar enforces on the tree.
    max_string_chars : int, optional
        Longest title / thought / conclusion / answer the grammar allows.
    siblings : str
        ``"isolated"``: each child sees its parent's prefix and itself. ``"shared"``
        (``parallel`` format, positions ``shift`` or ``keep``): each child also sees its
        running and joined siblings' tokens as they are written (Hogwild-style; see
        :mod:`tim.engine.sharing`).
    max_position : int, optional
        The context window ``W``: every position id fed stays below it. A stream that would
        be fed at a position ``>= W`` ends the run with ``record.error ==
        "PositionWindowError: ..."`` before that forward; a prompt longer than ``W`` raises
        :class:`~tim.errors.PositionWindowError`. None (the default): the model's
        ``max_position_embeddings`` where the engine runs the model, no limit on a remote
        executor.

    Examples
    --------
    >>> EngineConfig(format="parallel", max_workers=4).max_workers
    4
    >>> EngineConfig(positions="sideways")
    Traceback (most recent call last):
    ...
    ValueError: position policy must be one of 'shift', 'reencode', 'keep', got 'sideways'
    """

    format: str = "parallel"
    max_workers: int = 8
    pruning: str | Rule = "buffer:1"
    positions: str = "shift"
    max_new_tokens: int = 1024
    kv_budget_tokens: int = 32768
    page_size: int = 1
    prefill_chunk: int = 512
    cascade: bool = True
    cascade_min_saved: int | None = None
    structure: str = "grammar"
    max_depth: int = 4
    max_fanout: int = 6
    max_string_chars: int | None = None
    siblings: str = "isolated"
    max_position: int | None = None

    @property
    def rule(self) -> Rule:
        return get_rule(self.pruning) if isinstance(self.pruning, str) else self.pruning

    @property
    def pruning_name(self) -> str:
        return self.pruning if isinstance(self.pruning, str) else type(self.pruning).__name__

    def __post_init__(self) -> None:
        get_format(self.format)  # ValueError quoting an unknown name
        if isinstance(self.pruning, str):
            get_rule(self.pruning)  # ValueError quoting a bad spec
        elif not callable(getattr(self.pruning, "select", None)):
            raise ValueError(f"pruning must be a spec string or a Rule, got {self.pruning!r}")
        PositionPolicy.parse(self.positions)
        if self.structure not in ("grammar", "free"):
            raise ValueError(f"structure must be 'grammar' or 'free', got {self.structure!r}")
        if self.cascade_min_saved is not None and (
            isinstance(self.cascade_min_saved, bool) or not isinstance(self.cascade_min_saved, int)
            or self.cascade_min_saved < 1
        ):
            raise ValueError(
                f"cascade_min_saved must be an int >= 1 or None, got {self.cascade_min_saved!r}"
            )
        self._check_siblings()
        if self.max_position is not None and (
            isinstance(self.max_position, bool) or not isinstance(self.max_position, int)
            or self.max_position < 1
        ):
            raise ValueError(f"max_position must be an int >= 1 or None, got {self.max_position!r}")
        if self.max_string_chars is not None and self.max_string_chars < 1:
            raise ValueError(f"max_string_chars must be >= 1 or None, got {self.max_string_chars!r}")
        for name in ("max_depth", "max_fanout", "max_workers", "max_new_tokens", "kv_budget_tokens", "page_size",
                     "prefill_chunk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")

    def _check_siblings(self) -> None:
        if self.siblings not in ("isolated", "shared"):
            raise ValueError(f"siblings must be 'isolated' or 'shared', got {self.siblings!r}")
        if self.siblings == "isolated":
            return
        if not get_format(self.format).forks:
            raise ValueError(f"siblings='shared' needs concurrent siblings: use "
                             f"format='parallel', not {self.format!r}")
        if self.positions == "reencode":
            raise ValueError("siblings='shared' works with positions 'shift' or 'keep'; a "
                             "re-encode would recompute K/V against its siblings' newer tokens")
