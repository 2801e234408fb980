"""Position policies applied to a view's tail after an eviction (or an explicit shift).

::

    before   tokens  a  b  c  d  e  f  g        evict [2, 5) = c d e   (length 3)
             pos     0  1  2  3  4  5  6

    SHIFT    tokens  a  b  f  g                 f, g: pos -= 3, and their stored keys
             pos     0  1  2  3                 rotated by -3 in every layer (rope_shift)
    REENCODE tokens  a  b  f  g                 same positions; keys left stale and
             pos     0  1  2  3                 Reencode(start=2, slots of f g, pos [2, 3])
    KEEP     tokens  a  b  f  g                 nothing moves
             pos     0  1  5  6

Only exclusively held spans are ever moved: shared spans lead every view, and the range
before the tail was exclusive, so the whole tail is exclusive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from tim import kernels
from tim.cache.config import PositionPolicy
from tim.cache.pool import PagePool
from tim.cache.span import Span
from tim.cache.view import View

__all__ = ["Reencode", "rotate_keys"]


class Reencode(NamedTuple):
    """Tokens the engine must recompute after a ``REENCODE`` eviction (the view's tail).

    Attributes
    ----------
    start : int
        View token index of the first token to recompute; the rest of the view follows.
    slots : torch.Tensor
        ``(N,)`` int64: where to write the recomputed K/V.
    positions : torch.Tensor
        ``(N,)`` int64: the tokens' new position ids (already stored in the view).
    token_ids : torch.Tensor or None
        ``(N,)`` int64 token ids, when every append gave them.
    """

    start: int
    slots: torch.Tensor
    positions: torch.Tensor
    token_ids: torch.Tensor | None


def rotate_keys(pool: PagePool, slots: torch.Tensor, delta: int, inv_freq: torch.Tensor, *,
                interleaved: bool = False) -> None:
    """Re-rotate the stored keys at ``slots`` ``(N,)`` int64 by ``delta`` positions, in place,
    in every layer (``tim.kernels.rope_shift``; values untouched)."""
    if delta == 0 or slots.numel() == 0:
        return
    num_layers, num_pages, page_size, num_kv_heads, head_dim = pool.k_cache.shape
    index = slots.to(pool.k_cache.device)
    for layer in range(num_layers):
        keys = pool.k_cache[layer].view(num_pages * page_size, num_kv_heads, head_dim)
        keys[index] = kernels.rope_shift(keys[index], delta, inv_freq,
                                         interleaved=interleaved).to(keys.dtype)


def check_policy(
    view: View, start: int, delta: int, policy: PositionPolicy, inv_freq: torch.Tensor | None
) -> None:
    """Raise ``ValueError`` (before anything changes) if moving view tokens ``start:`` by
    ``delta`` under ``policy`` is impossible."""
    if policy is PositionPolicy.KEEP:
        return
    if policy is PositionPolicy.SHIFT and inv_freq is None:
        raise ValueError("position policy 'shift' needs the store's rope_inv_freq")
    tail = view.position_ids()[start:]
    if tail.numel() and int(tail.min()) + delta < 0:
        raise ValueError(
            f"moving view {view.view_id} tokens {start}: by {delta} would make position "
            f"{int(tail.min()) + delta} negative"
        )


def apply_policy(
    pool: PagePool,
    spans: Sequence[Span],
    *,
    start: int,
    delta: int,
    policy: PositionPolicy,
    inv_freq: torch.Tensor | None,
    first_offset: int = 0,
    interleaved: bool = False,
) -> tuple[int, Reencode | None]:
    """Move the tail ``spans`` (from token ``first_offset`` of the first) by ``delta``.

    ``start`` is the view index of the tail's first token. Returns the number of tokens
    moved and, under ``REENCODE``, what to recompute.
    """
    if policy is PositionPolicy.KEEP or not spans or delta == 0:
        return 0, None
    assert not any(span.is_shared for span in spans), "a shared span in a view's tail"
    slots = torch.cat([spans[0].slot_ids()[first_offset:]] + [s.slot_ids() for s in spans[1:]])
    for i, span in enumerate(spans):
        span.shift(first_offset if i == 0 else 0, delta)
    if policy is PositionPolicy.SHIFT:
        assert inv_freq is not None
        rotate_keys(pool, slots, delta, inv_freq, interleaved=interleaved)
        return int(slots.numel()), None
    positions = torch.cat(
        [spans[0].position_ids()[first_offset:]] + [s.position_ids() for s in spans[1:]]
    )
    token_ids = None
    if all(span.token_ids is not None for span in spans):
        ids = list(spans[0].token_ids[first_offset:])
        for span in spans[1:]:
            ids.extend(span.token_ids)
        token_ids = torch.tensor(ids, dtype=torch.int64)
    return int(slots.numel()), Reencode(start, slots, positions, token_ids)
