"""Shared sibling visibility (``siblings="shared"``): where each worker sees its siblings.

While a list's children run, child ``b``'s view is its parent's prefix, then every other
sibling's tokens written so far (plan order; siblings already joined sit in the parent's view
past ``b``'s prefix), then its own tokens last. Nothing is copied: ``b``'s own view in the KV
store stays prefix + own tokens, and the siblings' tokens are named as :class:`Visible`
ranges of other views. :func:`segment_group` lays them out for one step's kernel call
(:func:`tim.kernels.plan_segments`): each range becomes a shared segment read once per layer,
and each worker's queries are rotated so that distances match its layout::

    written      prefix 0..3 | a: 4..6 | c: 4..7 | own b: 4..5
    b's layout   prefix 0..3 | a: 4..6 | c: 7..10 | own b: 11..12
    own frame    b's queries and own keys stay where they were written (4..5); every other
                 segment moves by  delta = (layout - written) - (own layout - own written)
                 prefix -7, a -7, c -4   (here own layout - own written = 3 + 4 = 7)

A range keeps its internal gaps (``keep`` leaves holes after an eviction): its extent is
``last position - first position + 1``, and its first token lands where the previous segment
ended. The worker's own tokens start where it wrote its first one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tim.kernels import SharedSegment
from tim.kernels.params import cu_seqlens

__all__ = ["Visible", "SegmentGroup", "segment_group"]


@dataclass(frozen=True)
class Visible:
    """Tokens ``[start, end)`` of another ``view`` that a worker sees (``start < end``)."""

    view: Any
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= self.view.num_tokens:
            raise ValueError(f"visible range [{self.start}, {self.end}) outside a view of "
                             f"{self.view.num_tokens} tokens")


@dataclass(frozen=True)
class SegmentGroup:
    """Workers attended by segment attention (:func:`tim.kernels.plan_segments`): batch tokens
    ``[token_start, token_end)``, each worker's own tokens by slot (causal), and the shared
    segments (prefixes and sibling ranges) each worker sees, with its delta."""

    token_start: int
    token_end: int
    cu_seqlens_q: torch.Tensor  # (M + 1,) int32, relative to token_start
    own_slots: torch.Tensor  # (sum of own lengths,) int64
    cu_seqlens_own: torch.Tensor  # (M + 1,) int32
    segments: tuple[SharedSegment, ...]

    def to(self, device: torch.device | str) -> SegmentGroup:
        segments = tuple(SharedSegment(s.slots.to(device), s.deltas) for s in self.segments)
        return SegmentGroup(self.token_start, self.token_end, self.cu_seqlens_q.to(device),
                            self.own_slots.to(device), self.cu_seqlens_own.to(device), segments)


def segment_group(workers: Sequence[tuple[Any, int, int, Sequence[Visible]]],
                  token_start: int) -> SegmentGroup:
    """The segment group of ``workers``: ``(view, prefix, num_queries, visible)`` each, laid
    out from ``token_start`` in the given order.

    ``view`` holds the worker's prefix (its first ``prefix`` tokens, shared with its parent)
    and its own tokens, this step's included; its queries are its ``num_queries`` newest
    tokens, all its own. ``visible`` are the sibling ranges it sees, in layout order.
    """
    slots_of: dict[tuple, torch.Tensor] = {}
    deltas_of: dict[tuple, dict[int, int]] = {}
    own, q_lens, own_lens = [], [], []
    tables: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # each view read once a step

    def read(view: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if view.view_id not in tables:
            tables[view.view_id] = view.position_ids(), view.slot_mapping()
        return tables[view.view_id]

    for b, (view, prefix, num_queries, visible) in enumerate(workers):
        positions, slots = read(view)
        if not 0 < num_queries <= len(slots) - prefix:
            raise ValueError(f"worker {b}: {num_queries} queries but {len(slots) - prefix} own "
                             f"tokens after a prefix of {prefix}")
        ranges = [(r, read(r.view)[0][r.start:r.end]) for r in visible]
        extents = [int(p[-1] - p[0]) + 1 for _, p in ranges]
        moved = sum(extents)  # own layout - own written
        if prefix:
            key = _prefix_key(view, prefix)
            slots_of.setdefault(key, slots[:prefix])
            deltas_of.setdefault(key, {})[b] = -moved
        layout = int(positions[prefix])  # the first segment lands where b wrote its first token
        for (r, p), extent in zip(ranges, extents, strict=True):
            key = ("range", r.view.view_id, r.start, r.end)
            if key not in slots_of:
                slots_of[key] = read(r.view)[1][r.start:r.end]
            deltas_of.setdefault(key, {})[b] = layout - int(p[0]) - moved
            layout += extent
        own.append(slots[prefix:])
        q_lens.append(num_queries)
        own_lens.append(len(slots) - prefix)
    return SegmentGroup(
        token_start=token_start,
        token_end=token_start + sum(q_lens),
        cu_seqlens_q=cu_seqlens(q_lens),
        own_slots=torch.cat(own),
        cu_seqlens_own=cu_seqlens(own_lens),
        segments=tuple(SharedSegment(slots_of[k], deltas_of[k]) for k in slots_of),
    )


def _prefix_key(view: Any, prefix: int) -> tuple:
    """Siblings started together hold the same prefix spans: one segment, read once."""
    ids, length = [], 0
    for span in view.spans:
        if length == prefix:
            return ("prefix", *ids)
        if length + len(span) > prefix:
            break
        ids.append(id(span))
        length += len(span)
    return ("prefix", *ids) if length == prefix else ("view", view.view_id, prefix)

