"""Append planning: which slots new tokens take, and whether the budget allows it.

Where an append goes (S = page size; ``|`` page boundaries, ``#`` used, ``.`` free)::

    1. the view has an open span: continue it             [###|##..] -> [###|####]
    2. no open span, but the view's last span is held by   [###|##..] -> [###|####]
       this view only and is the only span on its last       (new span starts mid-page)
       page: pack the new span right after it
    3. otherwise (e.g. after a fork): a fresh page         [###|##..] [....] -> [##..]

Rule 2 never writes where another view can read: every slot after ``last``'s end on that
page is referenced by no live span. A forked parent and child both fall under rule 3 for
their shared last page, which is why a fork never copies a partially filled page.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import NamedTuple

from tim.cache.config import num_pages_for_tokens
from tim.cache.pool import PagePool
from tim.cache.span import Span
from tim.cache.view import View

__all__ = ["AppendPlan", "budget_problem", "plan_append"]


class AppendPlan(NamedTuple):
    """Where ``num_tokens`` new tokens of a view go."""

    span: Span | None  # the open span to extend; None: start a new span
    tail_page: int | None  # the page a new span packs into; None: start on a fresh page
    first_offset: int  # offset of a new span's first token in its first page
    num_new_pages: int  # pages to allocate


def plan_append(view: View, num_tokens: int, label: str | None, pool: PagePool,
                source: tuple[Hashable, int] | None = None) -> AppendPlan:
    """Plan an append of ``num_tokens`` tokens to ``view`` (see the module diagram).

    The open span is extended only when ``label`` matches and the tokens continue its
    ``source`` (see :meth:`Span.continues`); otherwise a new span starts.
    """
    size = pool.page_size
    span = view.open_span
    if (span is not None and (label is None or label == span.label)
            and span.continues(*(source or (None, 0)))):
        return AppendPlan(span, None, 0, num_pages_for_tokens(max(0, num_tokens - span.room), size))
    last = view.spans[-1] if view.spans else None
    if (
        last is not None
        and last.num_holders == 1
        and last.room > 0
        and pool.ref_count(last.pages[-1]) == 1
    ):
        need = num_pages_for_tokens(max(0, num_tokens - last.room), size)
        return AppendPlan(None, last.pages[-1], last.end_offset % size, need)
    return AppendPlan(None, None, 0, num_pages_for_tokens(num_tokens, size))


def budget_problem(
    *,
    view: View,
    num_tokens: int,
    plan: AppendPlan,
    pool: PagePool,
    num_live_tokens: int,
    max_live_tokens: int | None,
) -> str | None:
    """Why the planned append does not fit, as a message for ``KVBudgetError``; or None."""
    if max_live_tokens is not None and num_live_tokens + num_tokens > max_live_tokens:
        return (
            f"KV token budget exceeded: appending {num_tokens} token(s) to view "
            f"{view.view_id} would make {num_live_tokens + num_tokens} live tokens, "
            f"max_live_tokens={max_live_tokens}. Evict or drop views, or raise max_live_tokens."
        )
    if not pool.can_allocate(plan.num_new_pages):
        return (
            f"KV page pool exhausted: appending {num_tokens} token(s) to view "
            f"{view.view_id} needs {plan.num_new_pages} new page(s) of {pool.page_size} slots; "
            f"{pool.num_free_pages} of {pool.num_pages} pages free, {num_live_tokens} live "
            f"tokens. Evict or drop views, or raise num_pages."
        )
    return None
