"""Token-range surgery on a ``KVStore``: split spans, evict a range, shift a tail.

``KVStore.split_at`` / ``can_evict`` / ``evict`` / ``can_shift`` / ``shift`` delegate to
the functions here. They work on the store's own pool, spans and views (the store stays
their one owner) and keep none of their own state.

Evicting view tokens ``[2, 6)`` from a view whose spans are ``A B C``::

    view token    0  1  2  3  4  5  6  7  8  9  10 11
    spans        [A         ][B            ][C      ]
    evict [2, 6)       ^^^^^^^^^^^^
    1. split_at(2), split_at(6)                     metadata only (docs/cache.md, Spans)
                 [A   ][A'  ][B   ][B'     ][C      ]
    2. drop the view's hold on A' and B             pages free at ref count 0
                 [A   ][B'     ][C      ]           view tokens 0..7
    3. position policy on the tail B' C             SHIFT: positions - 4, keys re-rotated
                                                    REENCODE: positions - 4, keys stale
                                                    KEEP: nothing moves

A range that touches a span another live view holds is refused whole: ``evict`` returns
``deferred=True`` and ``shift`` raises, before anything changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from tim.cache.config import PositionPolicy
from tim.cache.positions import Reencode, apply_policy, check_policy
from tim.cache.span import Span
from tim.cache.view import View

if TYPE_CHECKING:
    from tim.cache.store import KVStore

__all__ = ["EvictResult"]


class EvictResult(NamedTuple):
    """Outcome of ``KVStore.evict``.

    ``deferred=True`` means the range touches a span that another live view holds; nothing
    changed and the engine should retry after that view joins or is dropped.
    """

    num_evicted: int
    num_freed_pages: int
    deferred: bool
    policy: PositionPolicy
    num_moved: int
    reencode: Reencode | None


def split_at(store: KVStore, view: View, index: int) -> int:
    store._check_alive(view)
    if not 0 <= index <= view.num_tokens:
        raise IndexError(f"split index {index} outside view {view.view_id} of {len(view)}")
    if index == view.num_tokens:
        return len(view.spans)
    span_index, offset = view.locate(index)
    if offset == 0:
        return span_index
    span = view.spans[span_index]
    right = span.split(offset, store._next_span_id)
    store._next_span_id += 1
    store._spans[right.span_id] = right
    if right.first_offset != 0:
        store.pool.retain([right.pages[0]])
    for holder in store._views.values():
        for i, held in enumerate(holder._spans):
            if held is span:
                holder._spans.insert(i + 1, right)
                if holder.open_span is span:
                    holder.open_span = right
                break
    return span_index + 1


def can_evict(store: KVStore, view: View, start: int, end: int) -> bool:
    store._check_alive(view)
    _check_range(view, start, end)
    return not any(span.is_shared for span in _spans_overlapping(view, start, end))


def evict(
    store: KVStore, view: View, start: int, end: int, *, policy: PositionPolicy | str | None
) -> EvictResult:
    policy = store.config.position_policy if policy is None else PositionPolicy.parse(policy)
    if not can_evict(store, view, start, end):
        return EvictResult(0, 0, True, policy, 0, None)
    if start == end:
        return EvictResult(0, 0, False, policy, 0, None)
    check_policy(view, end, -(end - start), policy, store.rope_inv_freq)
    split_at(store, view, start)
    split_at(store, view, end)
    first = view.locate(start).span_index
    last = len(view.spans) if end == view.num_tokens else view.locate(end).span_index
    removed = view._spans[first:last]
    del view._spans[first:last]
    if view.open_span in removed:
        view.open_span = None
    num_freed = sum(store._unhold(span) for span in removed)
    tail = view.spans[first:]
    num_moved, reencode = apply_policy(
        store.pool,
        tail,
        start=start,
        delta=-(end - start),
        policy=policy,
        inv_freq=store.rope_inv_freq,
        interleaved=store.rope_interleaved,
    )
    return EvictResult(end - start, num_freed, False, policy, num_moved, reencode)


def can_shift(store: KVStore, view: View, start: int) -> bool:
    store._check_alive(view)
    _check_range(view, start, view.num_tokens)
    return not any(span.is_shared for span in _spans_overlapping(view, start, len(view)))


def shift(store: KVStore, view: View, start: int, delta: int) -> int:
    if not can_shift(store, view, start):
        raise ValueError(
            f"cannot shift view {view.view_id} from token {start}: the tail holds a span "
            f"shared with another live view"
        )
    check_policy(view, start, delta, PositionPolicy.SHIFT, store.rope_inv_freq)
    if start == view.num_tokens:
        return 0
    span_index, offset = view.locate(start)
    num_moved, _ = apply_policy(
        store.pool,
        view.spans[span_index:],
        start=start,
        delta=delta,
        policy=PositionPolicy.SHIFT,
        inv_freq=store.rope_inv_freq,
        first_offset=offset,
        interleaved=store.rope_interleaved,
    )
    store._note_position(view.max_position)
    return num_moved


def _check_range(view: View, start: int, end: int) -> None:
    if not 0 <= start <= end <= view.num_tokens:
        raise IndexError(
            f"token range [{start}, {end}) outside view {view.view_id} of {view.num_tokens}"
        )


def _spans_overlapping(view: View, start: int, end: int) -> Iterable[Span]:
    if start == end:
        return
    offset = 0
    for span in view.spans:
        if offset < end and start < offset + len(span):
            yield span
        offset += len(span)
