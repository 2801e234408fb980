"""Spans: runs of tokens written once by one source, laid out in ref-counted pages.

A span's tokens occupy consecutive slots of its pages, starting at ``first_offset`` in its
first page::

    page_size S = 4, pages = [7, 2], first_offset = 1, 5 tokens

    page 7: [ . | t0 | t1 | t2 ]      token i sits at a = first_offset + i
    page 2: [ t3 | t4 | . | . ]      slot = pages[a // S] * S + a % S
                                      t3: a = 4 -> page 2, offset 0 -> slot 8

Splitting at token index i is metadata only. Both halves reference the boundary page when
the split falls mid-page, so that page's ref count goes up by one::

    split at i = 2  (a = 3, mid-page)

    left : pages = [7],    first_offset = 1, tokens t0 t1
    right: pages = [7, 2], first_offset = 3, tokens t2 t3 t4     (page 7 now shared)

    split at i = 3  (a = 4, page boundary): left pages = [7], right pages = [2], nothing shared
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch

__all__ = ["Span"]


class Span:
    """Tokens written once by one source (prompt, stream segment, forced text, tool result).

    Spans are created and changed only by ``KVStore``; read them freely.

    Attributes
    ----------
    span_id : int
        Unique within its store.
    label : str
        Free-form source tag given at append time (e.g. ``"prompt"``, ``"tool"``).
    pages : list[int]
        Page ids this span references (one reference each).
    first_offset : int
        Offset of token 0 inside ``pages[0]``.
    positions : list[int]
        Current position id of each token.
    token_ids : list[int] or None
        Token ids when every append gave them, else None.
    source : hashable or None
        Who wrote the tokens (the engine uses the stream's path), None when not given.
    source_start : int
        Index of token 0 in its source's own token sequence: token ``i`` is the source's
        token ``source_start + i`` (a split keeps this true for both halves).
    num_holders : int
        Live views that hold this span. It is shared when this is more than 1.
    """

    __slots__ = (
        "span_id",
        "label",
        "page_size",
        "pages",
        "first_offset",
        "positions",
        "token_ids",
        "source",
        "source_start",
        "num_holders",
        "_slot_cache",
        "_position_cache",
    )

    def __init__(
        self,
        *,
        span_id: int,
        label: str,
        page_size: int,
        pages: list[int],
        first_offset: int,
        token_ids: list[int] | None,
        source: Hashable | None = None,
        source_start: int = 0,
    ) -> None:
        self.span_id = span_id
        self.label = label
        self.page_size = page_size
        self.pages = pages
        self.first_offset = first_offset
        self.positions: list[int] = []
        self.token_ids = token_ids
        self.source = source
        self.source_start = source_start
        self.num_holders = 0
        self._slot_cache: torch.Tensor | None = None
        self._position_cache: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.positions)

    def __repr__(self) -> str:
        return (
            f"Span(id={self.span_id}, label={self.label!r}, len={len(self)}, "
            f"pages={self.pages}, first_offset={self.first_offset}, holders={self.num_holders})"
        )

    @property
    def is_shared(self) -> bool:
        return self.num_holders > 1

    @property
    def end_offset(self) -> int:
        """Offset one past the last token, counted from the start of ``pages[0]``."""
        return self.first_offset + len(self.positions)

    @property
    def room(self) -> int:
        """Free slots after the last token in the span's last page."""
        return len(self.pages) * self.page_size - self.end_offset

    def continues(self, source: Hashable | None, source_start: int) -> bool:
        """True when tokens ``source_start...`` of ``source`` follow this span's last token."""
        return source == self.source and (source is None or source_start == self.source_start + len(self))

    @property
    def max_position(self) -> int:
        return max(self.positions)

    def slot_ids(self) -> torch.Tensor:
        """Slots of the span's tokens: ``(len,)`` int64 on CPU."""
        if self._slot_cache is None:
            self._slot_cache = self._slots(self.first_offset, self.end_offset)
        return self._slot_cache

    def position_ids(self) -> torch.Tensor:
        """Position ids of the span's tokens: ``(len,)`` int64 on CPU."""
        if self._position_cache is None:
            self._position_cache = torch.tensor(self.positions, dtype=torch.int64)
        return self._position_cache

    def _slots(self, start: int, end: int) -> torch.Tensor:
        offsets = torch.arange(start, end, dtype=torch.int64)
        pages = torch.tensor(self.pages, dtype=torch.int64)
        return pages[offsets // self.page_size] * self.page_size + offsets % self.page_size

    def extend(
        self, positions: Sequence[int], token_ids: Sequence[int] | None, new_pages: list[int]
    ) -> torch.Tensor:
        """Append tokens (the caller took ``new_pages`` for them); return their slots ``(T,)``."""
        start = self.end_offset
        self.pages.extend(new_pages)
        self.positions.extend(positions)
        if token_ids is None:
            self.token_ids = None
        elif self.token_ids is not None:
            self.token_ids.extend(token_ids)
        assert self.room >= 0, "span extended past its pages"
        self._slot_cache = None
        self._position_cache = None
        return self._slots(start, self.end_offset)

    def shift(self, start: int, delta: int) -> None:
        """Add ``delta`` to the positions of tokens ``start:``."""
        for i in range(start, len(self.positions)):
            self.positions[i] += delta
        self._position_cache = None

    def split(self, index: int, right_id: int) -> Span:
        """Cut at token ``index`` (0 < index < len): keep ``[:index]``, return ``[index:]``.

        The right half references the boundary page too when ``right.first_offset != 0``;
        the caller adds that page reference to the pool.
        """
        assert 0 < index < len(self), f"split index {index} outside (0, {len(self)})"
        cut = self.first_offset + index
        size = self.page_size
        right = Span(
            span_id=right_id,
            label=self.label,
            page_size=size,
            pages=self.pages[cut // size :],
            first_offset=cut % size,
            token_ids=None if self.token_ids is None else self.token_ids[index:],
            source=self.source,
            source_start=self.source_start + index,
        )
        right.positions = self.positions[index:]
        right.num_holders = self.num_holders
        self.pages = self.pages[: -(-cut // size)]
        self.positions = self.positions[:index]
        if self.token_ids is not None:
            self.token_ids = self.token_ids[:index]
        self._slot_cache = None
        self._position_cache = None
        return right
