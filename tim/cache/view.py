"""Views: the ordered spans one worker attends over, and what the kernels need from them.

::

    view spans   [ prompt(5) | plan(3) | child body(4) ]
    token index    0 ....  4   5 .. 7    8 ....... 11      num_tokens = 12
    slot_mapping   slots of each span, concatenated       (12,) int64
    position_ids   positions of each span, concatenated   (12,) int64
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import NamedTuple

import torch

from tim.cache.span import Span

__all__ = ["TokenLocation", "View"]


class TokenLocation(NamedTuple):
    """Where view token ``index`` lives: ``view.spans[span_index]``, token ``offset`` in it."""

    span_index: int
    offset: int


class View:
    """The ordered spans of one worker. Created and changed only by ``KVStore``.

    Shared spans (held by more than one live view) always form the leading part of a view;
    only the view's own trailing spans can be evicted, shifted or appended to.

    Attributes
    ----------
    view_id : int
        Unique within its store.
    open_span : Span or None
        The span appends go into (always the last span), or None when sealed.
    is_alive : bool
        False once the view was dropped or joined.
    """

    __slots__ = ("view_id", "_spans", "open_span", "is_alive")

    def __init__(self, view_id: int, spans: list[Span] | None = None) -> None:
        self.view_id = view_id
        self._spans: list[Span] = spans if spans is not None else []
        self.open_span: Span | None = None
        self.is_alive = True

    def __repr__(self) -> str:
        state = "alive" if self.is_alive else "dropped"
        return (
            f"View(id={self.view_id}, {state}, tokens={self.num_tokens}, spans={len(self._spans)})"
        )

    def __len__(self) -> int:
        return self.num_tokens

    @property
    def spans(self) -> tuple[Span, ...]:
        return tuple(self._spans)

    @property
    def num_tokens(self) -> int:
        """KV length: tokens this view attends over."""
        return sum(len(span) for span in self._spans)

    @property
    def max_position(self) -> int | None:
        """Largest position id in the view, None when empty."""
        return max((span.max_position for span in self._spans), default=None)

    @property
    def next_position(self) -> int:
        """``max_position + 1`` (0 for an empty view): where a plain continuation goes."""
        top = self.max_position
        return 0 if top is None else top + 1

    def slot_mapping(self) -> torch.Tensor:
        """Slots of every token in view order: ``(num_tokens,)`` int64 on CPU."""
        return _concat([span.slot_ids() for span in self._spans])

    def page_table(self) -> list[int] | None:
        """The view's pages in order when it is page-aligned, else None.

        Aligned means block-table addressable: every span starts at the front of a page and
        every span but the last fills its pages, so token ``i`` sits in page ``i // S`` of the
        list at offset ``i % S``. With ``S = 1`` every view is aligned.
        """
        pages: list[int] = []
        last = len(self._spans) - 1
        for i, span in enumerate(self._spans):
            size = span.page_size
            if span.first_offset or (i < last and len(span) % size):
                return None
            pages.extend(span.pages[: -(-len(span) // size)])
        return pages

    def position_ids(self) -> torch.Tensor:
        """Position id of every token in view order: ``(num_tokens,)`` int64 on CPU."""
        return _concat([span.position_ids() for span in self._spans])

    def token_ids(self) -> torch.Tensor | None:
        """Token ids in view order ``(num_tokens,)`` int64, or None if any span lacks them."""
        ids: list[int] = []
        for span in self._spans:
            if span.token_ids is None:
                return None
            ids.extend(span.token_ids)
        return torch.tensor(ids, dtype=torch.int64)

    def sources(self, start: int, end: int) -> list[tuple[Hashable, int, int]]:
        """Who wrote view tokens ``[start, end)``: ``(source, first, last + 1)`` runs in view
        order, indices into each source's own token sequence (see ``Span.source``)::

            view    [ prompt(3) | s0: 0..4 | s1: 2..3 ]      evict view tokens 5..9
            sources(5, 9) == [(s0, 2, 5), (s1, 2, 3)]
        """
        runs: list[tuple[Hashable, int, int]] = []
        offset = 0
        for span in self._spans:
            lo, hi = max(start, offset), min(end, offset + len(span))
            if lo < hi:
                first = span.source_start + lo - offset
                if runs and runs[-1][0] == span.source and runs[-1][2] == first:
                    runs[-1] = (span.source, runs[-1][1], first + hi - lo)
                else:
                    runs.append((span.source, first, first + hi - lo))
            offset += len(span)
        return runs

    def index_of(self, source: Hashable, index: int) -> int | None:
        """View index of ``source``'s token ``index`` (see ``Span.source``); None when the
        view does not hold it (never appended here, or evicted)."""
        offset = 0
        for span in self._spans:
            if span.source == source and 0 <= index - span.source_start < len(span):
                return offset + index - span.source_start
            offset += len(span)
        return None

    def locate(self, index: int) -> TokenLocation:
        """Span and offset of view token ``index`` (``0 <= index < num_tokens``)."""
        if index >= 0:
            start = 0
            for span_index, span in enumerate(self._spans):
                if index < start + len(span):
                    return TokenLocation(span_index, index - start)
                start += len(span)
        raise IndexError(f"token index {index} outside view {self.view_id} of {self.num_tokens}")

    def span_start(self, span: Span) -> int:
        """View token index where ``span`` begins."""
        start = 0
        for held in self._spans:
            if held is span:
                return start
            start += len(held)
        raise ValueError(f"span {span.span_id} is not in view {self.view_id}")

    def common_prefix_spans(self, other: View) -> int:
        """Number of leading spans this view and ``other`` both hold (same span objects)."""
        count = 0
        for mine, theirs in zip(self._spans, other._spans, strict=False):
            if mine is not theirs:
                break
            count += 1
        return count

    def common_prefix_len(self, other: View) -> int:
        """Tokens in the leading spans shared with ``other``: the cascade prefix length."""
        return sum(len(span) for span in self._spans[: self.common_prefix_spans(other)])


def _concat(parts: list[torch.Tensor]) -> torch.Tensor:
    if not parts:
        return torch.empty(0, dtype=torch.int64)
    return torch.cat(parts)
