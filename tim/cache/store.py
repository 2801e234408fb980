"""KVStore: the owner of the page pool, the live spans and the views.

Every runtime operation on KV memory is one of these methods:

    new_view / fork / join / drop        view lifecycle (fork shares spans, never copies)
    can_append / append / seal           write tokens into a view's open span
    can_evict / evict / evict_span       remove a token range, then apply the position policy
    can_shift / shift                    move positions of a view's tail (RoPE re-rotation)
    write / gather                       K/V in and out of the pages (tim.kernels)
    check_integrity                      ref counts == references held by live spans
                                         (append and eviction bodies: append.py, eviction.py)

Sharing rules (see docs/cache.md):

* A span held by more than one live view is never written, moved or evicted (an eviction
  touching one returns ``deferred=True``); shared spans lead a view, so only a view's
  trailing, exclusive spans change.
* A new span never writes into a page another view can read: it starts on a fresh page,
  or packs into its own view's last page when only this view's one span holds it. So a
  fork never copies the parent's partial last page; neither side writes into it again.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

from tim import kernels
from tim.cache import append, eviction
from tim.cache.config import CacheConfig, PositionPolicy
from tim.cache.eviction import EvictResult
from tim.cache.integrity import StoreIntegrity, check_store
from tim.cache.pool import PagePool
from tim.cache.span import Span
from tim.cache.view import View
from tim.errors import TimError
from tim.kernels.slots import store_unchecked

__all__ = ["EvictResult", "KVStore"]


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
        return append.can_append(self, view, num_tokens, label)

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
        return append.append(self, view, positions, token_ids=token_ids, label=label,
                             source=source)

    # ---------------------------------------------------------------- split
    def split_at(self, view: View, index: int) -> int:
        """Make a span boundary fall at view token ``index``; return the index of the span
        that starts there (``len(view.spans)`` when ``index == num_tokens``).

        Metadata only: a mid-page cut makes both halves reference the boundary page. A
        shared span is split in every view that holds it.
        """
        return eviction.split_at(self, view, index)

    # ---------------------------------------------------------------- evict / shift
    def can_evict(self, view: View, start: int, end: int) -> bool:
        """True when no span overlapping tokens ``[start, end)`` is held by another view."""
        return eviction.can_evict(self, view, start, end)

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
        return eviction.evict(self, view, start, end, policy=policy)

    def evict_span(
        self, view: View, span: Span, *, policy: PositionPolicy | str | None = None
    ) -> EvictResult:
        """``evict`` the tokens of one span of ``view``."""
        start = view.span_start(span)
        return self.evict(view, start, start + len(span), policy=policy)

    def can_shift(self, view: View, start: int) -> bool:
        """True when every span holding view tokens ``start:`` is held by this view only."""
        return eviction.can_shift(self, view, start)

    def shift(self, view: View, start: int, delta: int) -> int:
        """Add ``delta`` to the positions of view tokens ``start:`` and re-rotate their keys
        in every layer by ``delta``; return the number of tokens moved.

        Raises
        ------
        ValueError
            The tail holds a shared span, a position would become negative, or the store
            has no ``rope_inv_freq``. Nothing changed.
        """
        return eviction.shift(self, view, start, delta)

    # ---------------------------------------------------------------- K/V access
    def write(self, layer: int, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store ``k``, ``v`` ``(T, Hkv, D)`` of one layer at ``slots`` ``(T,)`` int64 on the
        pool's device, without :func:`~tim.kernels.store_kv`'s checks (every layer calls it)."""
        store_unchecked(*self.pool.flat_layer(layer), k, v, slots)

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
