"""Group views by common leading spans, for cascade (shared-prefix) attention.

::

    view 0: [ A | B | C ]          group 0: prefix [A | B]   suffixes [C], [D], [E | F]
    view 1: [ A | B | D ]    ->             members (0, 1, 3)
    view 2: [ G | H ]               group 1: prefix []        suffix  [G | H]  (alone)
    view 3: [ A | B | E | F ]

The prefix is attended once for all members (non-causal), each suffix causally, and the
two results are merged by their log-sum-exp.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from tim.cache.view import View

__all__ = ["CascadeGroup", "group_by_prefix"]


class CascadeGroup(NamedTuple):
    """Views that share leading spans, with the slots the cascade kernel needs.

    Attributes
    ----------
    members : tuple[int, ...]
        Indices into the ``views`` argument of ``group_by_prefix``, in input order.
    num_prefix_spans : int
        Leading spans every member holds.
    prefix_slots : torch.Tensor
        ``(prefix_len,)`` int64: slots of the shared prefix (empty for a lone view).
    suffix_slots : tuple[torch.Tensor, ...]
        One ``(view_len - prefix_len,)`` int64 tensor per member.
    """

    members: tuple[int, ...]
    num_prefix_spans: int
    prefix_slots: torch.Tensor
    suffix_slots: tuple[torch.Tensor, ...]

    @property
    def prefix_len(self) -> int:
        return int(self.prefix_slots.numel())


def group_by_prefix(views: Sequence[View], *, min_prefix_len: int = 1) -> list[CascadeGroup]:
    """Group ``views`` by their first span; each group's prefix is the longest run of
    leading spans all members hold.

    Parameters
    ----------
    views : sequence of View
        The views of one batch, in batch order.
    min_prefix_len : int
        A group whose common prefix is shorter than this many tokens is split into lone
        views (prefix empty), since a cascade would not pay off.

    Returns
    -------
    list[CascadeGroup]
        In order of each group's first member; every view appears in exactly one group.

    Examples
    --------
    >>> from tim.cache import CacheConfig, KVStore
    >>> store = KVStore(CacheConfig(num_layers=1, num_kv_heads=1, head_dim=4, num_pages=8,
    ...                             page_size=2, position_policy="keep"))
    >>> parent = store.new_view()
    >>> _ = store.append(parent, range(3))
    >>> child = store.fork(parent)
    >>> _ = store.append(child, [3])
    >>> [(g.members, g.prefix_len) for g in group_by_prefix([parent, child])]
    [((0, 1), 3)]
    """
    if min_prefix_len < 0:
        raise ValueError(f"min_prefix_len must be >= 0, got {min_prefix_len!r}")
    buckets: dict[int, list[int]] = {}
    lone: list[int] = []
    for index, view in enumerate(views):
        if view.spans:
            buckets.setdefault(id(view.spans[0]), []).append(index)
        else:
            lone.append(index)
    groups: list[CascadeGroup] = []
    for members in buckets.values():
        if len(members) == 1:
            lone.extend(members)
            continue
        first = views[members[0]]
        num_spans = min(first.common_prefix_spans(views[m]) for m in members[1:])
        prefix = first.spans[:num_spans]
        if sum(len(span) for span in prefix) < max(min_prefix_len, 1):
            lone.extend(members)
            continue
        prefix_slots = _slots(prefix)
        suffixes = tuple(_slots(views[m].spans[num_spans:]) for m in members)
        groups.append(CascadeGroup(tuple(members), num_spans, prefix_slots, suffixes))
    empty = torch.empty(0, dtype=torch.int64)
    for index in lone:
        groups.append(CascadeGroup((index,), 0, empty, (views[index].slot_mapping(),)))
    groups.sort(key=lambda group: group.members[0])
    return groups


def _slots(spans) -> torch.Tensor:
    if not spans:
        return torch.empty(0, dtype=torch.int64)
    return torch.cat([span.slot_ids() for span in spans])
