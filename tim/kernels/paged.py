"""Attention whose keys live in the page pool, by block table or by slot list.

The pool's layout, slots and block tables are drawn in :mod:`tim.kernels.slots`. A backend
that reads pages in place (flash-attn with ``S % 256 == 0``) gets the block table; every
other one gets the slots gathered, converted from the block table once per plan.
"""

from __future__ import annotations

import torch

from tim.kernels.backends import KernelPlan, resolve_backend
from tim.kernels.params import AttentionParams, check_cu_seqlens, check_heads
from tim.kernels.slots import (
    GatherBuffers,
    _check_slots,
    _flat,
    _max,
    as_slice,
    block_table_to_slots,
)

__all__ = ["paged_attention", "plan_paged", "PagedPlan"]


def paged_attention(
    q: torch.Tensor,
    k_pages: torch.Tensor,
    v_pages: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    block_table: torch.Tensor | None = None,
    seqlens_k: torch.Tensor | None = None,
    *,
    slots: torch.Tensor | None = None,
    cu_seqlens_k: torch.Tensor | None = None,
    max_seqlen_q: int | None = None,
    max_seqlen_k: int | None = None,
    causal: bool = True,
    softmax_scale: float | None = None,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    return_lse: bool = False,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Varlen attention whose keys live in the page pool.

    Two ways to name each sequence's keys, exactly one per call:

    - **block table** (flash-attn's paged layout): ``block_table`` ``(B, max_pages)`` int32 and
      ``seqlens_k`` ``(B,)`` int32. Backends with native paging read pages in place (flash-attn
      needs ``S % 256 == 0``); the others gather first.
    - **slot list** (the CPU engine's layout, any page size, typically ``S = 1``): ``slots``
      ``(N,)`` int64, sequence ``b`` owning ``slots[cu_seqlens_k[b]:cu_seqlens_k[b+1]]``,
      with ``cu_seqlens_k`` ``(B + 1,)`` int32. Keys are gathered, then attended.

    Either way the result equals :func:`tim.kernels.varlen_attention` over the gathered keys:
    the same masks (bottom-right), options, output and lse.

    Parameters
    ----------
    q : torch.Tensor
        ``(total_q, H, D)`` queries.
    k_pages, v_pages : torch.Tensor
        ``(P, S, Hkv, D)`` one layer's pool, contiguous.
    cu_seqlens_q : torch.Tensor
        ``(B + 1,)`` int32 query offsets.
    max_seqlen_q, max_seqlen_k : int, optional
        Computed from the offsets (a host sync) when not given.

    Other parameters are those of :func:`tim.kernels.varlen_attention`.

    Examples
    --------
    >>> kp, vp = torch.randn(8, 1, 2, 16), torch.randn(8, 1, 2, 16)   # S = 1
    >>> q = torch.randn(2, 4, 16)                                     # one query per sequence
    >>> cu_q = torch.tensor([0, 1, 2], dtype=torch.int32)
    >>> out = paged_attention(q, kp, vp, cu_q, slots=torch.tensor([3, 0, 5, 6, 7]),
    ...                       cu_seqlens_k=torch.tensor([0, 2, 5], dtype=torch.int32))
    >>> out.shape
    torch.Size([2, 4, 16])
    """
    plan = plan_paged(
        q, k_pages, cu_seqlens_q, block_table, seqlens_k, slots=slots, cu_seqlens_k=cu_seqlens_k,
        max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k, causal=causal,
        softmax_scale=softmax_scale, window_size=window_size, softcap=softcap, backend=backend,
    )
    if k_pages.shape != v_pages.shape:
        raise ValueError(f"k_pages {tuple(k_pages.shape)} != v_pages {tuple(v_pages.shape)}")
    if q.dtype != k_pages.dtype:
        raise ValueError(f"q dtype {q.dtype} differs from the pool's {k_pages.dtype}")
    out, lse = plan.run(q, k_pages, v_pages)
    return (out, lse) if return_lse else out


class PagedPlan:
    """A planned :func:`paged_attention`: ``run(q, k_pages, v_pages) -> (out, lse)``.

    ``native`` is True when the backend reads pages through the block table in place;
    otherwise the plan holds the slot list (converted from the block table once, here) and
    each run gathers those slots, then runs a varlen plan.
    """

    __slots__ = ("native", "inner", "slots", "_buffers")

    def __init__(self, native: bool, inner: KernelPlan, slots: torch.Tensor | None) -> None:
        self.native, self.inner = native, inner
        self.slots = None if slots is None else as_slice(slots)  # a run of slots: no gather
        self._buffers = None if slots is None else GatherBuffers(self.slots)

    def run(self, q: torch.Tensor, k_pages: torch.Tensor, v_pages: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.native:
            return self.inner.run(q, k_pages, v_pages)
        k, v = self._buffers.gather(k_pages, v_pages)
        return self.inner.run(q, k, v)


def plan_paged(
    q: torch.Tensor,
    k_pages: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    block_table: torch.Tensor | None = None,
    seqlens_k: torch.Tensor | None = None,
    *,
    slots: torch.Tensor | None = None,
    cu_seqlens_k: torch.Tensor | None = None,
    max_seqlen_q: int | None = None,
    max_seqlen_k: int | None = None,
    causal: bool = True,
    softmax_scale: float | None = None,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    backend: str = "auto",
) -> PagedPlan:
    """Plan :func:`paged_attention` once for every layer of a step (arguments as there; ``q``
    and ``k_pages`` are read for their shapes, dtype and device only).

    Examples
    --------
    >>> kp = torch.randn(8, 1, 2, 16)                                  # S = 1
    >>> q = torch.randn(2, 4, 16)
    >>> plan = plan_paged(q, kp, torch.tensor([0, 1, 2], dtype=torch.int32),
    ...                   torch.tensor([[3, 0, 0], [5, 6, 7]], dtype=torch.int32),
    ...                   torch.tensor([2, 3], dtype=torch.int32))
    >>> plan.native, plan.slots.tolist()                                # gathered on CPU
    (False, [3, 0, 5, 6, 7])
    >>> plan.run(q, kp, kp)[0].shape
    torch.Size([2, 4, 16])
    """
    table_mode = block_table is not None or seqlens_k is not None
    slot_mode = slots is not None or cu_seqlens_k is not None
    if table_mode == slot_mode or (table_mode and (block_table is None or seqlens_k is None)) or (
        slot_mode and (slots is None or cu_seqlens_k is None)
    ):
        raise ValueError(
            "pass either (block_table, seqlens_k) or (slots=, cu_seqlens_k=), not both or neither"
        )
    _flat(k_pages, "k_pages")
    if q.dim() != 3 or q.shape[2] != k_pages.shape[3]:
        raise ValueError(f"q must be (total_q, H, {k_pages.shape[3]}), got {tuple(q.shape)}")
    num_kv_heads = k_pages.shape[2]
    check_heads(q.shape[1], num_kv_heads)
    params = AttentionParams.build(
        q.shape[2], causal=causal, softmax_scale=softmax_scale,
        window_size=window_size, softcap=softcap,
    )
    impl = resolve_backend(backend, q, params)
    if max_seqlen_q is None:
        max_seqlen_q = _max(cu_seqlens_q.diff())
    if table_mode:
        if block_table.dtype != torch.int32 or seqlens_k.dtype != torch.int32:
            raise ValueError(
                f"block_table and seqlens_k must be int32, got {block_table.dtype} and "
                f"{seqlens_k.dtype}"
            )
        check_cu_seqlens(cu_seqlens_q, torch.zeros(seqlens_k.shape[0] + 1, dtype=torch.int32))
        if max_seqlen_k is None:
            max_seqlen_k = _max(seqlens_k)
        native = impl.plan_paged(q, k_pages, cu_seqlens_q, block_table, seqlens_k,
                                 max_seqlen_q, max_seqlen_k, params)
        if native is not None:
            return PagedPlan(True, native, None)
        slots, cu_seqlens_k = block_table_to_slots(block_table, seqlens_k, k_pages.shape[1])
    _check_slots(slots)
    check_cu_seqlens(cu_seqlens_q, cu_seqlens_k)
    if max_seqlen_k is None:
        max_seqlen_k = _max(cu_seqlens_k.diff())
    inner = impl.plan(q, num_kv_heads, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                      params)
    return PagedPlan(False, inner, slots)
