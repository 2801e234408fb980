"""The page pool's tensor side: write K/V into slots, read them back, turn block tables into slots.

One layer's pool is a pair of tensors ``(P, S, Hkv, D)``: ``P`` pages of ``S`` token slots.
A *slot* is the flat index ``page * S + offset``. A sequence's keys are either listed by a
block table row (pages in order, filled from the front) or by an explicit slot list::

    S = 4, block_table[b] = [7, 2], seqlens_k[b] = 6
    position:  0  1  2  3 | 4  5
    slot:     28 29 30 31 | 8  9        (= 7*4 + 0..3, then 2*4 + 0..1)
"""

from __future__ import annotations

import torch

__all__ = [
    "store_kv", "store_unchecked", "gather_kv", "block_table_to_slots", "as_slice",
    "gather_unchecked",
    "GatherBuffers",
]


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
    store_unchecked(flat_k, flat_v, k, v, slots)


def store_unchecked(
    flat_k: torch.Tensor, flat_v: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    slots: torch.Tensor,
) -> None:
    """:func:`store_kv` into ``(P * S, Hkv, D)`` views of the pool, without its checks, for a
    caller that writes every layer of every step (``KVStore.write``)."""
    if k.dtype != flat_k.dtype:
        k, v = k.to(flat_k.dtype), v.to(flat_v.dtype)
    flat_k.index_copy_(0, slots, k)
    flat_v.index_copy_(0, slots, v)


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
    _flat(k_pages, "k_pages"), _flat(v_pages, "v_pages")
    return gather_unchecked(k_pages, v_pages, slots)


def gather_unchecked(
    k_pages: torch.Tensor, v_pages: torch.Tensor, slots: torch.Tensor | slice,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`gather_kv` without its argument checks, for plans that checked them once.

    ``slots`` may be a ``slice`` (from :func:`as_slice`): the keys are then a view of the
    pool, not a copy. ``out``, two ``(N, Hkv, D)`` tensors, receives a gather instead of
    fresh memory: a plan gathers into the same buffers in every layer, since a fresh
    megabyte-sized tensor per layer costs the CPU allocator page faults that can take longer
    than the attention itself.
    """
    shape = (-1, k_pages.shape[2], k_pages.shape[3])
    flat_k, flat_v = k_pages.view(shape), v_pages.view(shape)
    if isinstance(slots, slice):
        return flat_k[slots], flat_v[slots]
    if out is None:
        return flat_k.index_select(0, slots), flat_v.index_select(0, slots)
    torch.index_select(flat_k, 0, slots, out=out[0])
    torch.index_select(flat_v, 0, slots, out=out[1])
    return out


class GatherBuffers:
    """The two ``(N, Hkv, D)`` buffers one plan gathers into, made on its first run and
    reused by every later layer (see :func:`gather_unchecked`)."""

    __slots__ = ("slots", "pair")

    def __init__(self, slots: torch.Tensor | slice) -> None:
        self.slots, self.pair = slots, None

    def gather(self, k_pages: torch.Tensor, v_pages: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.slots, slice):
            return gather_unchecked(k_pages, v_pages, self.slots)
        if self.pair is None or self.pair[0].dtype != k_pages.dtype:
            shape = (self.slots.numel(), k_pages.shape[2], k_pages.shape[3])
            self.pair = (k_pages.new_empty(shape), v_pages.new_empty(shape))
        return gather_unchecked(k_pages, v_pages, self.slots, self.pair)


def as_slice(slots: torch.Tensor) -> torch.Tensor | slice:
    """``slice(a, a + N)`` when ``slots`` is the run ``a, a + 1, ..., a + N - 1`` (a fresh
    view's pages come from the pool in order, so a lone decoding stream's keys usually are),
    else ``slots`` itself. One check per plan saves a gather per layer.

    Examples
    --------
    >>> as_slice(torch.tensor([4, 5, 6])), as_slice(torch.tensor([4, 6])).tolist()
    (slice(4, 7, None), [4, 6])
    """
    n = slots.numel()
    if n == 0 or slots.device.type != "cpu":
        return slots
    first = int(slots[0])
    if int(slots[-1]) - first != n - 1 or not bool((slots.diff() == 1).all()):
        return slots
    return slice(first, first + n)


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
