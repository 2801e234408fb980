"""The page pool: per-layer K/V page tensors and ref-counted page ids.

The pool knows pages, not spans. A page's ref count is the number of spans that reference
it (see ``tim.cache.span``); the store tells the pool when a span takes or drops a page.

::

    page id     0   1   2   3   4   5
    ref count   2   1   0   1   0   0      free list: [2, 4, 5]
                ^ two spans reference page 0 (e.g. both halves of a split span)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import torch

from tim.cache.config import CacheConfig
from tim.errors import KVBudgetError, TimError

__all__ = ["CacheIntegrityError", "PagePool", "PoolIntegrity"]


class CacheIntegrityError(TimError):
    """The KV store's bookkeeping is inconsistent (a bug, never a user error)."""


class PoolIntegrity(NamedTuple):
    """What ``PagePool.check_integrity`` verified."""

    num_pages: int
    num_free_pages: int
    num_used_pages: int
    num_references: int


class PagePool:
    """Owns the K/V page tensors of every layer and the ref counts of page ids.

    Parameters
    ----------
    config : CacheConfig
        Pool geometry (``num_layers``, ``num_pages``, ``page_size``, heads, dtype, device).

    Attributes
    ----------
    k_cache, v_cache : torch.Tensor
        ``(num_layers, P, S, Hkv, D)`` in ``config.dtype``. ``k_cache[layer]`` is the
        ``(P, S, Hkv, D)`` page tensor that the kernels take. Slot ``page * S + offset``.

    Examples
    --------
    >>> from tim.cache import CacheConfig, PagePool
    >>> pool = PagePool(CacheConfig(num_layers=1, num_kv_heads=1, head_dim=4, num_pages=3,
    ...                             page_size=2))
    >>> pages = pool.allocate(2)
    >>> pool.retain(pages[:1]); pool.ref_count(pages[0]), pool.num_free_pages
    (2, 1)
    >>> pool.release(pages), pool.release(pages[:1]), pool.num_free_pages   # pages freed
    (1, 1, 3)
    """

    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        shape = (
            config.num_layers,
            config.num_pages,
            config.page_size,
            config.num_kv_heads,
            config.head_dim,
        )
        # empty, not zeros: a slot is always written before any view can read it, and
        # zero-filling a large pool costs seconds (7.5 GB for 32k tokens of a 0.6B model)
        self.k_cache = torch.empty(shape, dtype=config.dtype, device=config.device)
        self.v_cache = torch.empty(shape, dtype=config.dtype, device=config.device)
        self._ref_counts = [0] * config.num_pages
        self._free: deque[int] = deque(range(config.num_pages))
        # per-layer views, made once: a forward asks for them in every layer
        self._layers = [(self.k_cache[i], self.v_cache[i]) for i in range(config.num_layers)]
        flat = (-1, config.num_kv_heads, config.head_dim)
        self._flat = [(k.view(flat), v.view(flat)) for k, v in self._layers]

    @property
    def page_size(self) -> int:
        return self.config.page_size

    @property
    def num_pages(self) -> int:
        return self.config.num_pages

    @property
    def num_free_pages(self) -> int:
        return len(self._free)

    @property
    def num_used_pages(self) -> int:
        return self.num_pages - len(self._free)

    def layer(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(k_pages, v_pages)`` of one layer, each ``(P, S, Hkv, D)`` (views, not copies)."""
        return self._layers[layer]

    def flat_layer(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The same as ``(P * S, Hkv, D)`` views, indexed by slot."""
        return self._flat[layer]

    def ref_count(self, page: int) -> int:
        return self._ref_counts[page]

    def can_allocate(self, num_pages: int) -> bool:
        return 0 <= num_pages <= len(self._free)

    def allocate(self, num_pages: int) -> list[int]:
        """Take ``num_pages`` free pages, each with ref count 1.

        Raises
        ------
        KVBudgetError
            Fewer than ``num_pages`` pages are free. Nothing is taken.
        """
        if num_pages < 0:
            raise ValueError(f"num_pages must be >= 0, got {num_pages!r}")
        if num_pages > len(self._free):
            raise KVBudgetError(
                f"KV page pool exhausted: asked for {num_pages} page(s), {len(self._free)} of "
                f"{self.num_pages} free (page size {self.page_size}). Evict or drop views, "
                f"or raise num_pages."
            )
        pages = [self._free.popleft() for _ in range(num_pages)]
        for page in pages:
            self._ref_counts[page] = 1
        return pages

    def retain(self, pages: Iterable[int]) -> None:
        """Add one reference to each page (sharing, no copy). Every page must be in use."""
        pages = list(pages)
        for page in pages:
            if self._ref_counts[page] < 1:
                raise CacheIntegrityError(f"retain of free page {page}")
        for page in pages:
            self._ref_counts[page] += 1

    def release(self, pages: Iterable[int]) -> int:
        """Drop one reference from each page; pages reaching 0 return to the free list.

        Returns the number of pages freed.
        """
        pages = list(pages)
        for page in pages:
            if self._ref_counts[page] < 1:
                raise CacheIntegrityError(f"release of free page {page}")
        num_freed = 0
        for page in pages:
            self._ref_counts[page] -= 1
            if self._ref_counts[page] == 0:
                self._free.append(page)
                num_freed += 1
        return num_freed

    def check_integrity(self, expected_refs: Mapping[int, int] | None = None) -> PoolIntegrity:
        """Verify the free list against the ref counts (and, if given, the expected refs).

        Parameters
        ----------
        expected_refs : mapping page -> references, optional
            The references actually held (by live spans). When given, every page's ref
            count must equal it (missing pages expect 0): this catches leaks (count too
            high) and pages that could be freed while referenced (count too low).

        Raises
        ------
        CacheIntegrityError
            Listing every inconsistency found.
        """
        problems: list[str] = []
        free = list(self._free)
        free_set = set(free)
        if len(free_set) != len(free):
            problems.append("free list holds duplicate pages")
        for page, count in enumerate(self._ref_counts):
            if count < 0:
                problems.append(f"page {page} has negative ref count {count}")
            if (count == 0) != (page in free_set):
                state = "free" if page in free_set else "not free"
                problems.append(f"page {page} has ref count {count} but is {state}")
            if expected_refs is not None and count != expected_refs.get(page, 0):
                problems.append(
                    f"page {page} has ref count {count}, live spans hold "
                    f"{expected_refs.get(page, 0)} reference(s)"
                )
        if expected_refs is not None:
            unknown = [p for p in expected_refs if not 0 <= p < self.num_pages]
            if unknown:
                problems.append(f"spans reference pages outside the pool: {unknown}")
        if problems:
            raise CacheIntegrityError("page pool inconsistent: " + "; ".join(problems[:20]))
        return PoolIntegrity(
            num_pages=self.num_pages,
            num_free_pages=len(free),
            num_used_pages=self.num_pages - len(free),
            num_references=sum(self._ref_counts),
        )
