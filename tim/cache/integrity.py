"""``KVStore.check_integrity``: every bookkeeping invariant, checked from scratch.

::

    page ref count  ==  number of live spans whose ``pages`` list it      (no leak, no
    span holders    ==  number of live views whose ``spans`` list it       early free)
    live tokens     ==  sum of live span lengths; live slots pairwise distinct
    in each view:   shared spans first, then exclusive ones; open span last and exclusive
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, NamedTuple

import torch

from tim.cache.pool import CacheIntegrityError, PoolIntegrity

if TYPE_CHECKING:
    from tim.cache.store import KVStore

__all__ = ["StoreIntegrity"]


class StoreIntegrity(NamedTuple):
    """What ``KVStore.check_integrity`` verified."""

    num_views: int
    num_spans: int
    num_live_tokens: int
    pool: PoolIntegrity


def check_store(store: KVStore) -> StoreIntegrity:
    problems: list[str] = []
    holders: Counter[int] = Counter()
    spans = {}
    for view in store._views.values():
        problems.extend(_view_problems(view))
        for span in view.spans:
            holders[span.span_id] += 1
            spans[span.span_id] = span
    if set(spans) != set(store._spans):
        problems.append(
            f"live spans {sorted(spans)} differ from the registry {sorted(store._spans)}"
        )
    refs: Counter[int] = Counter()
    size = store.config.page_size
    for span_id, span in spans.items():
        if span.num_holders != holders[span_id]:
            problems.append(
                f"span {span_id} counts {span.num_holders} holders, {holders[span_id]} views hold it"
            )
        if len(span) == 0 or not 0 <= span.first_offset < size:
            problems.append(f"span {span_id} is malformed: {span!r}")
        if len(span.pages) != -(-span.end_offset // size):
            problems.append(f"span {span_id} holds {len(span.pages)} pages for {span!r}")
        if span.token_ids is not None and len(span.token_ids) != len(span):
            problems.append(f"span {span_id} has {len(span.token_ids)} token ids")
        refs.update(span.pages)
    num_live = sum(len(span) for span in spans.values())
    if num_live != store.num_live_tokens:
        problems.append(f"{num_live} live tokens, the store counts {store.num_live_tokens}")
    if spans:
        slots = torch.cat([span.slot_ids() for span in spans.values()])
        if int(torch.unique(slots).numel()) != int(slots.numel()):
            problems.append("two live spans share a slot")
    try:
        pool = store.pool.check_integrity(refs)
    except CacheIntegrityError as exc:
        problems.append(str(exc))
    if problems:
        raise CacheIntegrityError("KV store inconsistent: " + "; ".join(problems[:20]))
    return StoreIntegrity(len(store._views), len(spans), num_live, pool)


def _view_problems(view) -> list[str]:
    problems = []
    spans = view.spans
    if not view.is_alive:
        problems.append(f"dropped view {view.view_id} is still registered")
    if len({id(span) for span in spans}) != len(spans):
        problems.append(f"view {view.view_id} holds a span twice")
    if view.open_span is not None:
        if not spans or spans[-1] is not view.open_span:
            problems.append(f"view {view.view_id}: open span is not its last span")
        elif view.open_span.is_shared:
            problems.append(f"view {view.view_id}: open span {view.open_span.span_id} is shared")
    shared = [span.is_shared for span in spans]
    if shared != sorted(shared, reverse=True):
        problems.append(f"view {view.view_id}: an exclusive span precedes a shared one")
    return problems
