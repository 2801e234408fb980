"""KVStore: the owner of the page pool, the live spans and the views.

Every runtime operation on KV memory is one of these methods:

    new_view / fork / join / drop        view lifecycle (fork shares spans, never copies)
    can_append / append / seal           write tokens into a view's open span
    can_evict / evict / evict_span       remove a token range, then apply the position policy
    can_shift / shift                    move positions of a view's tail (RoPE re-rotation)
    write / gather                       K/V in and out of the pages (tim.kernels)
    check_integrity                      ref counts == references held by live spans

Sharing rules (see docs/cache.md):

* A span held by more than one live view is never written, moved or evicted; an eviction
  that touches one returns ``deferred=True`` and changes nothing.
* Shared spans always lead a view: only a view's trailing, exclusive spans change.
* A new span never writes into a page another view can read. It starts on a fresh page,
  or packs into its own view's last page when that page is referenced by one span that
  only this view holds. So a fork never copies the parent's partially filled last page:
  the parent's open span is sealed and neither side writes into that page again.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import NamedTuple

import torch

from tim import kernels
from tim.cache.budget import AppendPlan, budget_problem, plan_append
from tim.cache.config import CacheConfig, PositionPolicy
from tim.cache.integrity import StoreIntegrity, check_store
from tim.cache.pool import PagePool
from tim.cache.positions import Reencode, apply_policy, check_policy
from tim.cache.span import Span
from tim.cache.view import View
from tim.errors import KVBudgetError, TimError

__all__ = ["EvictResult", "KVStore"]


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


class KVStore:
    """Paged KV memory for a tree of workers: pool, spans, views and their operations.

    Parameters
    ----------
    config : CacheConfig
        Pool geometry, budget and default position policy.
    rope_inv_freq : torch.Tensor, optional
        ``(D_rot / 2,)`` float: the model's RoPE inverse frequencies, needed by ``SHIFT``.
    rope_interleaved : bool
        The model's RoPE pairs channels ``(2i, 2i + 1)`` (Cohere) rather than the halves.

    Examples
    --------
    >>> from tim.cache import CacheConfig, KVStore
    >>> store = KVStore(CacheConfig(num_layers=1, num_kv_heads=1, head_dim=4, num_pages=8,
    ...                             page_size=2, position_policy="keep"))
    >>> view = store.new_view()
    >>> store.append(view, [0, 1, 2]).tolist()
    [0, 1, 2]
    >>> child = store.fork(view)
    >>> store.append(child, [3]).tolist()    # fresh page: never the parent's page 1
    [4]
    >>> store.evict(child, 3, 4).num_evicted, store.evict(child, 0, 1).deferred
    (1, True)
    >>> store.drop(child), store.drop(view), store.pool.num_free_pages    # pages freed
    (0, 2, 8)
    """

    def __init__(self, config: CacheConfig, *, rope_inv_freq: torch.Tensor | None = None,
                 rope_interleaved: bool = False) -> None:
        if rope_inv_freq is not None:
            if rope_inv_freq.ndim != 1 or 2 * rope_inv_freq.numel() > config.head_dim:
                raise ValueError(
                    f"rope_inv_freq must be 1-D with at most head_dim/2={config.head_dim // 2} "
                    f"entries, got shape {tuple(rope_inv_freq.shape)}"
                )
            rope_inv_freq = rope_inv_freq.to(device=config.device, dtype=torch.float32)
        if config.position_policy is PositionPolicy.SHIFT and rope_inv_freq is None:
            raise ValueError("position_policy 'shift' needs rope_inv_freq (the model's RoPE)")
        self.config = config
        self.pool = PagePool(config)
        self.rope_inv_freq = rope_inv_freq
        self.rope_interleaved = rope_interleaved
        self.num_live_tokens = 0
        self.peak_live_tokens = 0
        self.peak_position: int | None = None
        self._views: dict[int, View] = {}
        self._spans: dict[int, Span] = {}
        self._next_view_id = 0
        self._next_span_id = 0

    # ---------------------------------------------------------------- lifecycle
    @property
    def views(self) -> tuple[View, ...]:
        return tuple(self._views.values())

    @property
    def spans(self) -> tuple[Span, ...]:
        """Live spans (held by at least one live view)."""
        return tuple(self._spans.values())

    def new_view(self) -> View:
        view = View(self._next_view_id)
        self._next_view_id += 1
        self._views[view.view_id] = view
        return view

    def fork(self, view: View) -> View:
        """Return a child view holding all of ``view``'s spans (no copy); seals the open span."""
        self._check_alive(view)
        view.open_span = None
        child = View(self._next_view_id, list(view.spans))
        self._next_view_id += 1
        for span in child.spans:
            span.num_holders += 1
        self._views[child.view_id] = child
        return child

    def join(self, parent: View, child: View) -> None:
        """Move ``child``'s own spans (after the leading spans both hold) to the end of
        ``parent``, then drop ``child``. Both open spans are sealed.

        Raises
        ------
        TimError
            A moved span is still held by another live view (join that view first).
        """
        self._check_alive(parent)
        self._check_alive(child)
        if parent is child:
            raise ValueError(f"cannot join view {parent.view_id} into itself")
        num_common = child.common_prefix_spans(parent)
        own = list(child.spans[num_common:])
        busy = [span.span_id for span in own if span.num_holders > 1]
        if busy:
            raise TimError(
                f"cannot join view {child.view_id} into {parent.view_id}: its spans {busy} are "
                f"held by other live views; join or drop those first"
            )
        parent.open_span = None
        child.open_span = None
        parent._spans.extend(own)  # the child's hold becomes the parent's: counts unchanged
        del child._spans[num_common:]
        self.drop(child)

    def drop(self, view: View) -> int:
        """Release ``view``'s hold on its spans; return the number of pages freed."""
        self._check_alive(view)
        num_freed = sum(self._unhold(span) for span in view.spans)
        view._spans.clear()
        view.open_span = None
        view.is_alive = False
        del self._views[view.view_id]
        return num_freed

    def seal(self, view: View) -> None:
        """End the open span: the next append starts a new span."""
        self._check_alive(view)
        view.open_span = None

    # ---------------------------------------------------------------- append
    def can_append(self, view: View, num_tokens: int, *, label: str | None = None) -> bool:
        self._check_alive(view)
        return self._budget_problem(view, num_tokens, label) is None

    def append(
        self,
        view: View,
        positions: Sequence[int] | torch.Tensor,
        *,
        token_ids: Sequence[int] | torch.Tensor | None = None,
        label: str | None = None,
        source: tuple[Hashable, int] | None = None,
    ) -> torch.Tensor:
        """Reserve slots for new tokens at the end of ``view``; return them.

        Tokens go into the view's open span. A new span is opened when there is none or
        when ``label`` differs from the open span's label.

        Parameters
        ----------
        positions : (T,) ints
            Position ids of the new tokens.
        token_ids : (T,) ints, optional
            Kept for ``REENCODE``; a span appended without them reports None.
        label : str, optional
            Source tag of the span (``"prompt"``, ``"tool"``, ...).
        source : (hashable, int), optional
            ``(writer, index)``: the tokens are the writer's tokens ``index, index + 1, ...``
            in its own sequence. :meth:`View.sources` maps view ranges back to them.

        Returns
        -------
        torch.Tensor
            ``(T,)`` int64 slots (``page * page_size + offset``) on CPU, for ``store_kv``.

        Raises
        ------
        KVBudgetError
            Not enough free pages, or ``max_live_tokens`` would be exceeded. Nothing changed.
        """
        self._check_alive(view)
        positions = _int_list(positions, "positions")
        if token_ids is not None:
            token_ids = _int_list(token_ids, "token_ids")
            if len(token_ids) != len(positions):
                raise ValueError(f"got {len(token_ids)} token_ids for {len(positions)} positions")
        if any(p < 0 for p in positions):
            raise ValueError(f"positions must be >= 0, got {positions!r}")
        if not positions:
            return torch.empty(0, dtype=torch.int64)
        plan = plan_append(view, len(positions), label, self.pool, source)
        problem = self._budget_problem(view, len(positions), label, plan)
        if problem is not None:
            raise KVBudgetError(problem)
        new_pages = self.pool.allocate(plan.num_new_pages)
        span = plan.span
        if span is None:
            view.open_span = None
            span = self._new_span(label or "", plan, source)
            span.num_holders = 1
            view._spans.append(span)
            view.open_span = span
        slots = span.extend(positions, token_ids, new_pages)
        self.num_live_tokens += len(positions)
        self.peak_live_tokens = max(self.peak_live_tokens, self.num_live_tokens)
        self._note_position(max(positions))
        return slots

    def _budget_problem(
        self, view: View, num_tokens: int, label: str | None, plan: AppendPlan | None = None
    ) -> str | None:
        if plan is None:
            plan = plan_append(view, num_tokens, label, self.pool)
        return budget_problem(
            view=view,
            num_tokens=num_tokens,
            plan=plan,
            pool=self.pool,
            num_live_tokens=self.num_live_tokens,
            max_live_tokens=self.config.max_live_tokens,
        )

    def _new_span(self, label: str, plan: AppendPlan,
                  source: tuple[Hashable, int] | None = None) -> Span:
        pages: list[int] = []
        if plan.tail_page is not None:
            self.pool.retain([plan.tail_page])
            pages.append(plan.tail_page)
        span = Span(
            span_id=self._next_span_id,
            label=label,
            page_size=self.config.page_size,
            pages=pages,
            first_offset=plan.first_offset,
            token_ids=[],
            source=None if source is None else source[0],
            source_start=0 if source is None else source[1],
        )
        self._next_span_id += 1
        self._spans[span.span_id] = span
        return span

    # ---------------------------------------------------------------- split
    def split_at(self, view: View, index: int) -> int:
        """Make a span boundary fall at view token ``index``; return the index of the span
        that starts there (``len(view.spans)`` when ``index == num_tokens``).

        Metadata only: a mid-page cut makes both halves reference the boundary page. A
        shared span is split in every view that holds it.
        """
        self._check_alive(view)
        if not 0 <= index <= view.num_tokens:
            raise IndexError(f"split index {index} outside view {view.view_id} of {len(view)}")
        if index == view.num_tokens:
            return len(view.spans)
        span_index, offset = view.locate(index)
        if offset == 0:
            return span_index
        span = view.spans[span_index]
        right = span.split(offset, self._next_span_id)
        self._next_span_id += 1
        self._spans[right.span_id] = right
        if right.first_offset != 0:
            self.pool.retain([right.pages[0]])
        for holder in self._views.values():
            for i, held in enumerate(holder._spans):
                if held is span:
                    holder._spans.insert(i + 1, right)
                    if holder.open_span is span:
                        holder.open_span = right
                    break
        return span_index + 1

    # ---------------------------------------------------------------- evict / shift
    def can_evict(self, view: View, start: int, end: int) -> bool:
        """True when no span overlapping tokens ``[start, end)`` is held by another view."""
        self._check_alive(view)
        _check_range(view, start, end)
        return not any(span.is_shared for span in _spans_overlapping(view, start, end))

    def evict(
        self,
        view: View,
        start: int,
        end: int,
        *,
        policy: PositionPolicy | str | None = None,
    ) -> EvictResult:
        """Remove view tokens ``[start, end)`` and apply the position policy to the tail.

        Spans are split where the range starts or ends mid-span. Pages are freed when no
        live span references them. The tail (tokens after ``end``) moves left by the range
        length under ``SHIFT`` (keys re-rotated in every layer) and ``REENCODE`` (keys
        left stale; recompute ``result.reencode``); ``KEEP`` moves nothing.

        Returns
        -------
        EvictResult
            ``deferred=True`` (and nothing changed) when the range touches a shared span.
        """
        policy = self.config.position_policy if policy is None else PositionPolicy.parse(policy)
        if not self.can_evict(view, start, end):
            return EvictResult(0, 0, True, policy, 0, None)
        if start == end:
            return EvictResult(0, 0, False, policy, 0, None)
        check_policy(view, end, -(end - start), policy, self.rope_inv_freq)
        self.split_at(view, start)
        self.split_at(view, end)
        first = view.locate(start).span_index
        last = len(view.spans) if end == view.num_tokens else view.locate(end).span_index
        removed = view._spans[first:last]
        del view._spans[first:last]
        if view.open_span in removed:
            view.open_span = None
        num_freed = sum(self._unhold(span) for span in removed)
        tail = view.spans[first:]
        num_moved, reencode = apply_policy(
            self.pool,
            tail,
            start=start,
            delta=-(end - start),
            policy=policy,
            inv_freq=self.rope_inv_freq,
            interleaved=self.rope_interleaved,
        )
        return EvictResult(end - start, num_freed, False, policy, num_moved, reencode)

    def evict_span(
        self, view: View, span: Span, *, policy: PositionPolicy | str | None = None
    ) -> EvictResult:
        """``evict`` the tokens of one span of ``view``."""
        start = view.span_start(span)
        return self.evict(view, start, start + len(span), policy=policy)

    def can_shift(self, view: View, start: int) -> bool:
        """True when every span holding view tokens ``start:`` is held by this view only."""
        self._check_alive(view)
        _check_range(view, start, view.num_tokens)
        return not any(span.is_shared for span in _spans_overlapping(view, start, len(view)))

    def shift(self, view: View, start: int, delta: int) -> int:
        """Add ``delta`` to the positions of view tokens ``start:`` and re-rotate their keys
        in every layer by ``delta``; return the number of tokens moved.

        Raises
        ------
        ValueError
            The tail holds a shared span, a position would become negative, or the store
            has no ``rope_inv_freq``. Nothing changed.
        """
        if not self.can_shift(view, start):
            raise ValueError(
                f"cannot shift view {view.view_id} from token {start}: the tail holds a span "
                f"shared with another live view"
            )
        check_policy(view, start, delta, PositionPolicy.SHIFT, self.rope_inv_freq)
        if start == view.num_tokens:
            return 0
        span_index, offset = view.locate(start)
        num_moved, _ = apply_policy(
            self.pool,
            view.spans[span_index:],
            start=start,
            delta=delta,
            policy=PositionPolicy.SHIFT,
            inv_freq=self.rope_inv_freq,
            first_offset=offset,
            interleaved=self.rope_interleaved,
        )
        self._note_position(view.max_position)
        return num_moved

    # ---------------------------------------------------------------- K/V access
    def write(self, layer: int, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store ``k``, ``v`` ``(T, Hkv, D)`` of one layer at ``slots`` ``(T,)`` int64."""
        k_pages, v_pages = self.pool.layer(layer)
        kernels.store_kv(k_pages, v_pages, k, v, slots.to(k_pages.device))

    def gather(self, view: View, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the view's ``(k, v)`` of one layer, each ``(num_tokens, Hkv, D)``."""
        self._check_alive(view)
        k_pages, v_pages = self.pool.layer(layer)
        return kernels.gather_kv(k_pages, v_pages, view.slot_mapping().to(k_pages.device))

    def check_integrity(self) -> StoreIntegrity:
        """Verify every invariant of pool, spans and views; raise ``CacheIntegrityError``."""
        return check_store(self)

    # ---------------------------------------------------------------- internals
    def _unhold(self, span: Span) -> int:
        span.num_holders -= 1
        if span.num_holders > 0:
            return 0
        self.num_live_tokens -= len(span)
        del self._spans[span.span_id]
        return self.pool.release(span.pages)

    def _note_position(self, position: int) -> None:
        if self.peak_position is None or position > self.peak_position:
            self.peak_position = position

    def _check_alive(self, view: View) -> None:
        if not view.is_alive or self._views.get(view.view_id) is not view:
            raise ValueError(f"view {view.view_id} is not a live view of this store")


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


def _int_list(values: Sequence[int] | torch.Tensor, name: str) -> list[int]:
    if isinstance(values, torch.Tensor):
        if values.ndim != 1 or values.dtype.is_floating_point:
            raise ValueError(
                f"{name} must be a 1-D integer tensor, got {values.dtype} "
                f"shape {tuple(values.shape)}"
            )
        return values.tolist()
    return [int(v) for v in values]
