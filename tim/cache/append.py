"""Appending tokens to a ``KVStore`` view: the store-side half of ``budget.py``'s plan.

``KVStore.can_append`` / ``append`` delegate to the functions here. They work on the
store's own pool, spans and views (the store stays their one owner) and keep none of
their own state::

    append(view, positions)
    1. check the arguments        positions >= 0; token_ids, if given, one per position
    2. plan_append   (budget.py)  extend the open span | pack after the last | fresh page
    3. budget_problem(budget.py)  free pages and max_live_tokens, else KVBudgetError
    4. apply the plan             allocate pages; open and register a new span if the
                                  plan has none; extend it; count the live tokens

Steps 1 to 3 change nothing, so a refused append leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING

import torch

from tim.cache.budget import AppendPlan, budget_problem, plan_append
from tim.cache.span import Span
from tim.cache.view import View
from tim.errors import KVBudgetError

if TYPE_CHECKING:
    from tim.cache.store import KVStore

__all__: list[str] = []


def can_append(store: KVStore, view: View, num_tokens: int, label: str | None) -> bool:
    store._check_alive(view)
    return _budget_problem(store, view, num_tokens, label) is None


def append(
    store: KVStore,
    view: View,
    positions: Sequence[int] | torch.Tensor,
    *,
    token_ids: Sequence[int] | torch.Tensor | None,
    label: str | None,
    source: tuple[Hashable, int] | None,
) -> torch.Tensor:
    store._check_alive(view)
    positions = _int_list(positions, "positions")
    if token_ids is not None:
        token_ids = _int_list(token_ids, "token_ids")
        if len(token_ids) != len(positions):
            raise ValueError(f"got {len(token_ids)} token_ids for {len(positions)} positions")
    if any(p < 0 for p in positions):
        raise ValueError(f"positions must be >= 0, got {positions!r}")
    if not positions:
        return torch.empty(0, dtype=torch.int64)
    plan = plan_append(view, len(positions), label, store.pool, source)
    problem = _budget_problem(store, view, len(positions), label, plan)
    if problem is not None:
        raise KVBudgetError(problem)
    new_pages = store.pool.allocate(plan.num_new_pages)
    span = plan.span
    if span is None:
        view.open_span = None
        span = _new_span(store, label or "", plan, source)
        span.num_holders = 1
        view._spans.append(span)
        view.open_span = span
    slots = span.extend(positions, token_ids, new_pages)
    store.num_live_tokens += len(positions)
    store.peak_live_tokens = max(store.peak_live_tokens, store.num_live_tokens)
    store._note_position(max(positions))
    return slots


def _budget_problem(
    store: KVStore, view: View, num_tokens: int, label: str | None,
    plan: AppendPlan | None = None,
) -> str | None:
    if plan is None:
        plan = plan_append(view, num_tokens, label, store.pool)
    return budget_problem(
        view=view,
        num_tokens=num_tokens,
        plan=plan,
        pool=store.pool,
        num_live_tokens=store.num_live_tokens,
        max_live_tokens=store.config.max_live_tokens,
    )


def _new_span(store: KVStore, label: str, plan: AppendPlan,
              source: tuple[Hashable, int] | None = None) -> Span:
    pages: list[int] = []
    if plan.tail_page is not None:
        store.pool.retain([plan.tail_page])
        pages.append(plan.tail_page)
    span = Span(
        span_id=store._next_span_id,
        label=label,
        page_size=store.config.page_size,
        pages=pages,
        first_offset=plan.first_offset,
        token_ids=[],
        source=None if source is None else source[0],
        source_start=0 if source is None else source[1],
    )
    store._next_span_id += 1
    store._spans[span.span_id] = span
    return span


def _int_list(values: Sequence[int] | torch.Tensor, name: str) -> list[int]:
    if isinstance(values, torch.Tensor):
        if values.ndim != 1 or values.dtype.is_floating_point:
            raise ValueError(
                f"{name} must be a 1-D integer tensor, got {values.dtype} "
                f"shape {tuple(values.shape)}"
            )
        return values.tolist()
    return [int(v) for v in values]
