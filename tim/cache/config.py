"""Configuration of the KV store: pool geometry, budget and position policy."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch

__all__ = ["CacheConfig", "PositionPolicy", "num_pages_for_tokens"]


class PositionPolicy(enum.Enum):
    """What happens to the position ids of retained tokens after an eviction.

    ``SHIFT``
        Tokens after the evicted range move left by its length; their stored keys are
        re-rotated in place by a RoPE shift (values unchanged, no recompute).
    ``REENCODE``
        Same new positions as ``SHIFT``, but the keys are left stale and the store reports
        which tokens the engine must recompute.
    ``KEEP``
        Positions keep growing; nothing is moved.
    """

    SHIFT = "shift"
    REENCODE = "reencode"
    KEEP = "keep"

    @classmethod
    def parse(cls, value: PositionPolicy | str) -> PositionPolicy:
        """Return the policy named by ``value`` ("shift", "reencode" or "keep").

        Examples
        --------
        >>> PositionPolicy.parse("shift")
        <PositionPolicy.SHIFT: 'shift'>
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        names = ", ".join(repr(p.value) for p in cls)
        raise ValueError(f"position policy must be one of {names}, got {value!r}")


def num_pages_for_tokens(num_tokens: int, page_size: int) -> int:
    """Pages needed to hold ``num_tokens`` tokens starting on a fresh page.

    Examples
    --------
    >>> num_pages_for_tokens(10, 4)
    3
    """
    return -(-num_tokens // page_size)


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class CacheConfig:
    """Geometry and budget of the paged KV store.

    Parameters
    ----------
    num_layers, num_kv_heads, head_dim : int
        Model shape; every layer gets K and V pages of shape ``(P, S, Hkv, D)``.
    num_pages : int
        ``P``: pages in the pool. This is the hard page budget.
    page_size : int
        ``S``: token slots per page. 1 or small on CPU; a multiple of 256 for flash-attn 2.
    max_live_tokens : int or None
        Optional token budget: appends that would make the live (distinct, retained) tokens
        exceed it raise ``KVBudgetError``. ``None`` means only the page budget applies.
    position_policy : PositionPolicy or str
        Default policy applied after evictions ("shift", "reencode" or "keep").
    dtype : torch.dtype
        Floating dtype of the K/V pages.
    device : str or torch.device
        Where the pages live.

    Examples
    --------
    >>> cfg = CacheConfig(num_layers=2, num_kv_heads=1, head_dim=8, num_pages=16, page_size=4)
    >>> cfg.num_slots
    64
    >>> CacheConfig(num_layers=2, num_kv_heads=1, head_dim=8, num_pages=0)
    Traceback (most recent call last):
    ...
    ValueError: num_pages must be a positive int, got 0
    """

    num_layers: int
    num_kv_heads: int
    head_dim: int
    num_pages: int
    page_size: int = 16
    max_live_tokens: int | None = None
    position_policy: PositionPolicy | str = PositionPolicy.SHIFT
    dtype: torch.dtype = torch.float32
    device: str | torch.device = "cpu"

    def __post_init__(self) -> None:
        for name in ("num_layers", "num_kv_heads", "head_dim", "num_pages", "page_size"):
            _check_positive_int(name, getattr(self, name))
        if self.max_live_tokens is not None:
            _check_positive_int("max_live_tokens", self.max_live_tokens)
        # Normalising the policy string is part of construction, not a later mutation.
        object.__setattr__(self, "position_policy", PositionPolicy.parse(self.position_policy))
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating torch.dtype, got {self.dtype!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must name a torch device, got {self.device!r}") from exc

    @property
    def num_slots(self) -> int:
        """Token slots in the pool: ``num_pages * page_size``."""
        return self.num_pages * self.page_size
