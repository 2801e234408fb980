"""The page pool's tensor side: write K/V into slots, read them back, attend over pages.

One layer's pool is a pair of tensors ``(P, S, Hkv, D)``: ``P`` pages of ``S`` token slots.
A *slot* is the flat index ``page * S + offset``. A sequence's keys are either listed by a
block table row (pages in order, filled from the front) or by an explicit slot list::

    S = 4, block_table[b] = [7, 2], seqlens_k[b] = 6
    position:  0  1  2  3 | 4  5
    slot:     28 29 30 31 | 8  9        (= 7*4 + 0..3, then 2*4 + 0..1)
"""

from __future__ import annotations

import torch

from tim.kernels.backends import resolve_backend
from tim.kernels.params import AttentionParams, check_cu_seqlens, check_heads

__all__ = ["store_kv", "gather_kv", "block_table_to_slots", "paged_attention"]


def _flat(pages: torch.Tensor, name: str) -> torch.Tensor:
    if pages.dim() != 4 or not pages.is_contiguous():
        raise ValueError(
            f"{name} must be a contiguous (P, S, Hkv, D) tensor, got shape {tuple(pages.shape)} "
            f"contiguous={pages.is_contiguous()}"
        )
    return pages.view(-1, pages.shape[2], pages.shape[3])  # (P*S, Hkv, D)


def _max(x: torch.Tensor) -> int:
    return int(x.max()) if x.numel() else 0


def _check_slots(slots: torch.Tensor, name: str = "slots") -> None:
    if slots.dim() != 1 or slots.dtype != torch.int64:
        raise ValueError(f"{name} must be a 1-D int64 tensor, got {tuple(slots.shape)} {slots.dtype}")


def store_kv(
    k_pages: torch.Tensor,
    v_pages: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    slots: torch.Tensor,
) -> None:
    """Write new keys and values into their slots, in place.

    Parameters
    ----------
    k_pages, v_pages : torch.Tensor
        ``(P, S, Hkv, D)`` one layer's pool, contiguous.
    k, v : torch.Tensor
        ``(T, Hkv, D)`` new entries; cast to the pool's dtype.
    slots : torch.Tensor
        ``(T,)`` int64 flat slot ids ``page * S + offset``; distinct (duplicates: last write wins
        on CPU, undefined on CUDA).

    Examples
    --------
    >>> kp, vp = torch.zeros(3, 2, 1, 4), torch.zeros(3, 2, 1, 4)      # P=3, S=2
    >>> store_kv(kp, vp, torch.ones(2, 1, 4), torch.ones(2, 1, 4), torch.tensor([5, 0]))
    >>> kp[2, 1].sum().item(), kp[0, 0].sum().item(), kp[1].sum().item()
    (4.0, 4.0, 0.0)
    """
    flat_k, flat_v = _flat(k_pages, "k_pages"), _flat(v_pages, "v_pages")
    _check_slots(slots)
    if k.shape != v.shape or k.shape[1:] != flat_k.shape[1:] or k.shape[0] != slots.shape[0]:
        raise ValueError(
            f"k, v must be (T, Hkv, D) = ({slots.shape[0]}, {flat_k.shape[1]}, "
            f"{flat_k.shape[2]}); got {tuple(k.shape)}, {tuple(v.shape)}"
        )
    flat_k.index_copy_(0, slots, k.to(flat_k.dtype))
    flat_v.index_copy_(0, slots, v.to(flat_v.dtype))


def gather_kv(
    k_pages: torch.Tensor, v_pages: torch.Tensor, slots: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the keys and values held in ``slots``, in slot-list order.

    Parameters
    ----------
    k_pages, v_pages : torch.Tensor
        ``(P, S, Hkv, D)`` one layer's pool, contiguous.
    slots : torch.Tensor
        ``(N,)`` int64 flat slot ids.

    Returns
    -------
    ``(k, v)``, each ``(N, Hkv, D)``, fresh tensors.

    Examples
    --------
    >>> kp = torch.arange(12.0).reshape(3, 2, 1, 2)     # P=3, S=2, Hkv=1, D=2
    >>> k, _ = gather_kv(kp, kp, torch.tensor([5, 0]))
    >>> k.flatten().tolist()
    [10.0, 11.0, 0.0, 1.0]
    """
    _check_slots(slots)
    flat_k, flat_v = _flat(k_pages, "k_pages"), _flat(v_pages, "v_pages")
    return flat_k.index_select(0, slots), flat_v.index_select(0, slots)


def block_table_to_slots(
    block_table: torch.Tensor, seqlens_k: torch.Tensor, page_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn block-table addressing into a flat slot list.

    Parameters
    ----------
    block_table : torch.Tensor
        ``(B, max_pages)`` int32 page ids of each sequence, in order.
    seqlens_k : torch.Tensor
        ``(B,)`` int32 keys per sequence (``<= max_pages * page_size``).
    page_size : int
        ``S``.

    Returns
    -------
    slots : torch.Tensor
        ``(sum(seqlens_k),)`` int64.
    cu_seqlens_k : torch.Tensor
        ``(B + 1,)`` int32.

    Examples
    --------
    >>> bt = torch.tensor([[7, 2], [1, 0]], dtype=torch.int32)
    >>> slots, cu = block_table_to_slots(bt, torch.tensor([6, 1], dtype=torch.int32), 4)
    >>> slots.tolist(), cu.tolist()
    ([28, 29, 30, 31, 8, 9, 4], [0, 6, 7])
    """
    if block_table.dim() != 2 or seqlens_k.dim() != 1 or seqlens_k.shape[0] != block_table.shape[0]:
        raise ValueError(
            f"block_table must be (B, max_pages) and seqlens_k (B,); got "
            f"{tuple(block_table.shape)} and {tuple(seqlens_k.shape)}"
        )
    device = block_table.device
    lens = seqlens_k.to(torch.int64)
    cu = torch.zeros(lens.shape[0] + 1, dtype=torch.int64, device=device)
    torch.cumsum(lens, 0, out=cu[1:])
    total = int(cu[-1])
    if _max(lens) > block_table.shape[1] * page_size:
        raise ValueError(
            f"seqlens_k {seqlens_k.tolist()} exceed block_table capacity "
            f"{block_table.shape[1]} pages x {page_size}"
        )
    seq = torch.repeat_interleave(torch.arange(lens.shape[0], device=device), lens, output_size=total)
    pos = torch.arange(total, device=device) - cu[:-1][seq]  # position inside its sequence
    pages = block_table.to(torch.int64)[seq, pos // page_size]
    return pages * page_size + pos % page_size, cu.to(torch.int32)


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
    table_mode = block_table is not None or seqlens_k is not None
    slot_mode = slots is not None or cu_seqlens_k is not None
    if table_mode == slot_mode or (table_mode and (block_table is None or seqlens_k is None)) or (
        slot_mode and (slots is None or cu_seqlens_k is None)
    ):
        raise ValueError(
            "pass either (block_table, seqlens_k) or (slots=, cu_seqlens_k=), not both or neither"
        )
    _flat(k_pages, "k_pages")
    if k_pages.shape != v_pages.shape:
        raise ValueError(f"k_pages {tuple(k_pages.shape)} != v_pages {tuple(v_pages.shape)}")
    if q.dim() != 3 or q.shape[2] != k_pages.shape[3]:
        raise ValueError(f"q must be (total_q, H, {k_pages.shape[3]}), got {tuple(q.shape)}")
    check_heads(q.shape[1], k_pages.shape[2])
    if q.dtype != k_pages.dtype:
        raise ValueError(f"q dtype {q.dtype} differs from the pool's {k_pages.dtype}")
    if table_mode:
        if block_table.dtype != torch.int32 or seqlens_k.dtype != torch.int32:
            raise ValueError(
                f"block_table and seqlens_k must be int32, got {block_table.dtype} and "
                f"{seqlens_k.dtype}"
            )
        check_cu_seqlens(cu_seqlens_q, torch.zeros(seqlens_k.shape[0] + 1, dtype=torch.int32))
    params = AttentionParams.build(
        q.shape[2], causal=causal, softmax_scale=softmax_scale,
        window_size=window_size, softcap=softcap,
    )
    impl = resolve_backend(backend, q, params)
    if max_seqlen_q is None:
        max_seqlen_q = _max(cu_seqlens_q.diff())
    result = None
    if table_mode:
        if max_seqlen_k is None:
            max_seqlen_k = _max(seqlens_k)
        result = impl.paged(
            q, k_pages, v_pages, cu_seqlens_q, block_table, seqlens_k,
            max_seqlen_q, max_seqlen_k, params,
        )
        if result is None:
            slots, cu_seqlens_k = block_table_to_slots(block_table, seqlens_k, k_pages.shape[1])
    if result is None:
        _check_slots(slots)
        check_cu_seqlens(cu_seqlens_q, cu_seqlens_k)
        if max_seqlen_k is None:
            max_seqlen_k = _max(cu_seqlens_k.diff())
        k, v = gather_kv(k_pages, v_pages, slots)
        result = impl.varlen(
            q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, params
        )
    out, lse = result
    return (out, lse) if return_lse else out
