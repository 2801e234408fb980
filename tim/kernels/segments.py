"""Segment attention: sibling workers that see each other's tokens, each token stored once.

While a list's children run with shared visibility (Hogwild-style), worker ``b``'s view is the
parent's prefix, then every other running sibling's tokens written so far (plan order), then
its own tokens last. Every segment's K/V sits once in the pool, with RoPE applied at the
position ``w`` where it was written, but a worker's layout puts it somewhere else. ``delta`` is
that offset, measured in the worker's own frame (its queries and own keys carry RoPE at their
written positions)::

    the pool:   prefix   p0 p1 p2 p3      written at 0..3
                child 0  a0 a1 a2         written at 4..6  (each child writes from 4 on)
                child 1  b0 b1            written at 4..5
                child 2  c0 c1 c2 c3      written at 4..7

    worker 1:   key      p0 p1 p2 p3 | a0 a1 a2 | c0 c1 c2 c3 | b0 b1
                layout    0  1  2  3 |  4  5  6 |  7  8  9 10 | 11 12
                written   0  1  2  3 |  4  5  6 |  4  5  6  7 |  4  5
                delta        -7      |    -7    |     -4      |  (own frame: 0)

    delta = (layout - written) of the segment  -  (layout - written) of the worker's own tokens

RoPE scores depend only on relative position, so instead of re-rotating the stored keys for
each worker, the worker's query is rotated by ``-delta``: with ``R(p)`` the rotation at ``p``,
a query written at ``P`` and a key written at ``w``::

    (R(P) q) . (R(w + delta) k)  =  (R(P - delta) q) . (R(w) k)  =  rope_shift(q, -delta) . stored

The attention is then a cascade over segments merged by log-sum-exp: one unmasked pass per
shared segment over the query rows of every worker that sees it (each rotated by its own
``-delta``; the segment's K/V is read once per layer), and one causal pass over each worker's
own segment (bottom-right, as the cascade suffix pass). The shared passes are packed into one
varlen call, a "sequence" per segment, and merged into their rows all at once
(:func:`~tim.kernels.merge.merge_rows`), so a step costs the same few calls however many
segments there are.

Over 300 lines because the plan, its run and the one-shot call are one concept whose long
parameter list is documented once, FlashAttention-style, with its checks beside it.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import NamedTuple

import torch

from tim.kernels.backends import KernelPlan, resolve_backend
from tim.kernels.merge import merge_rows
from tim.kernels.params import AttentionParams, check_cu_seqlens, check_heads, check_offsets
from tim.kernels.rope import rope_shift
from tim.kernels.slots import GatherBuffers, _check_slots, _flat, as_slice

__all__ = ["SharedSegment", "SegmentPlan", "plan_segments", "segment_attention"]


class SharedSegment(NamedTuple):
    """A run of tokens stored once in the pool and seen by several workers.

    Attributes
    ----------
    slots : torch.Tensor
        ``(L,)`` int64 pool slots of its keys, in written-position order (``L`` may be 0).
    deltas : Mapping[int, int]
        Worker index ``b`` (``0 <= b < B``) -> ``delta``, for every worker that sees the
        segment: its keys sit ``delta`` positions from where they were written, in ``b``'s
        own frame. A worker not in the mapping does not see the segment.
    """

    slots: torch.Tensor
    deltas: Mapping[int, int]


class SegmentPlan:
    """A planned :func:`segment_attention`: ``run(q, k_pages, v_pages) -> (out, lse)``.

    The shared segments form one packed unmasked call, one "sequence" per segment whose
    queries are the rows of every worker that sees it::

        keys:    prefix        | child 0    | child 1    ...   each segment once
        rows:    0  1  2  3    | 1  2  3    | 0  2  3    ...   pair i: a row of q, rotated
                                                               by its worker's -delta

    Attributes: ``own`` and ``own_slots`` (the workers' own segments, causal), ``shared`` (the
    packed call's backend plan), ``slots`` (every shared segment's slots, packed, with the
    buffers they are gathered into), ``rows`` (``(N,)`` int64, the query row of each pair), ``shift``
    (``None`` when every delta is 0, an int when all are equal, else ``(N,)`` int64 of
    ``-delta``), and the RoPE ``inv_freq`` and ``interleaved``. ``shared`` is ``None`` when no
    query sees a shared key.
    """

    __slots__ = ("own", "own_slots", "shared", "slots", "rows", "shift", "inv_freq",
                 "interleaved")

    def __init__(self, own: KernelPlan, own_slots: torch.Tensor, shared: KernelPlan | None,
                 slots: torch.Tensor, rows: torch.Tensor, shift: int | torch.Tensor | None,
                 inv_freq: torch.Tensor | None, interleaved: bool) -> None:
        # the gathers land in buffers kept across layers: no fresh pages for the allocator
        self.own, self.own_slots = own, GatherBuffers(as_slice(own_slots))
        self.shared, self.slots = shared, GatherBuffers(as_slice(slots))
        self.rows, self.shift = rows, shift
        self.inv_freq, self.interleaved = inv_freq, interleaved

    def run(self, q: torch.Tensor, k_pages: torch.Tensor, v_pages: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """``q (total_q, H, D)``, one layer's pool ``(P, S, Hkv, D)`` -> ``(out (total_q, H, D),
        lse (H, total_q))``."""
        k, v = self.own_slots.gather(k_pages, v_pages)
        out, lse = self.own.run(q, k, v)
        if self.shared is None:
            return out, lse
        k, v = self.slots.gather(k_pages, v_pages)  # each segment once
        pair_q = q.index_select(0, self.rows)  # (N, H, D): a row once per segment it sees
        if self.shift is not None:
            pair_q = rope_shift(pair_q, self.shift, self.inv_freq, interleaved=self.interleaved)
        o_pairs, lse_pairs = self.shared.run(pair_q, k, v)
        return merge_rows(out, lse, o_pairs, lse_pairs, self.rows)


def segment_attention(
    q: torch.Tensor,
    k_pages: torch.Tensor,
    v_pages: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    own_slots: torch.Tensor,
    cu_seqlens_own: torch.Tensor,
    segments: Sequence[SharedSegment],
    *,
    inv_freq: torch.Tensor | None = None,
    interleaved: bool = False,
    causal: bool = True,
    softmax_scale: float | None = None,
    softcap: float = 0.0,
    return_lse: bool = False,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Attention of ``B`` workers over shared segments stored once, each placed per worker.

    Worker ``b``'s queries attend to every shared segment it sees (all keys visible), with the
    segment's keys moved by ``delta`` positions, and to its own segment, causally
    (bottom-right). The result equals :func:`tim.kernels.varlen_attention` over worker ``b``'s
    view ``cat(rope_shift(segment keys, delta) for its segments, own keys)``, causal, without
    re-rotating or copying a key: each worker's queries are rotated by ``-delta`` instead
    (see the module docstring for the identity and a picture). With ``causal``, each worker's
    queries are its newest tokens: ``Lq_b <= Lown_b + 1`` (checked).

    Parameters
    ----------
    q : torch.Tensor
        ``(total_q, H, D)`` queries of all workers, packed, RoPE applied at their written
        positions (the worker's own frame).
    k_pages, v_pages : torch.Tensor
        ``(P, S, Hkv, D)`` one layer's pool, contiguous, q's dtype.
    cu_seqlens_q : torch.Tensor
        ``(B + 1,)`` int32 offsets of each worker's queries.
    own_slots : torch.Tensor
        ``(total_own,)`` int64 slots of every worker's own segment, packed, in position order.
    cu_seqlens_own : torch.Tensor
        ``(B + 1,)`` int32 offsets into ``own_slots``.
    segments : sequence of SharedSegment
        The shared segments (parent prefix, siblings' tokens); each with its slots and, for
        every worker that sees it, that worker's ``delta``. A segment whose deltas are all 0
        (typically the prefix) is not rotated.
    inv_freq : torch.Tensor, optional
        ``(D_rot / 2,)`` fp32, the model's rotary ``inv_freq`` (as in
        :func:`tim.kernels.rope_shift`; partial rotary when ``D_rot < D``). Needed when a
        delta is not 0.
    interleaved : bool
        RoPE pairs ``(x[2i], x[2i + 1])`` instead of ``rotate_half``'s halves.
    causal, softmax_scale, softcap, return_lse, backend
        As in :func:`tim.kernels.varlen_attention`; shared passes are never masked.
        Sliding windows are not supported (a window would cut segments per query).

    Returns
    -------
    ``out (total_q, H, D)`` in q's dtype; with ``return_lse`` also ``lse (H, total_q)`` fp32.
    A row that sees no key gives 0 and lse ``-inf``.

    Raises
    ------
    ValueError
        On inconsistent shapes, offsets, worker indices, or a nonzero delta without
        ``inv_freq``; the message quotes the values.

    Examples
    --------
    Two workers decode one token each. Both see the 4-token prefix unmoved; worker 0 sees
    worker 1's 2 tokens 3 positions on, worker 1 sees worker 0's 3 tokens 2 positions back.

    >>> H, Hkv, D = 4, 2, 16
    >>> kp, vp = torch.randn(16, 1, Hkv, D), torch.randn(16, 1, Hkv, D)    # S = 1
    >>> inv_freq = 1.0 / 10000 ** (torch.arange(0, D, 2) / D)
    >>> prefix = SharedSegment(torch.arange(0, 4), {0: 0, 1: 0})
    >>> child0 = SharedSegment(torch.arange(4, 7), {1: -2})
    >>> child1 = SharedSegment(torch.arange(7, 9), {0: 3})
    >>> cu = torch.tensor([0, 1, 2], dtype=torch.int32)
    >>> out = segment_attention(torch.randn(2, H, D), kp, vp, cu,
    ...                         own_slots=torch.arange(4, 9),     # own: worker 0 3, worker 1 2
    ...                         cu_seqlens_own=torch.tensor([0, 3, 5], dtype=torch.int32),
    ...                         segments=[prefix, child0, child1], inv_freq=inv_freq)
    >>> out.shape
    torch.Size([2, 4, 16])
    """
    if k_pages.shape != v_pages.shape:
        raise ValueError(f"k_pages {tuple(k_pages.shape)} != v_pages {tuple(v_pages.shape)}")
    if q.dtype != k_pages.dtype:
        raise ValueError(f"q dtype {q.dtype} differs from the pool's {k_pages.dtype}")
    plan = plan_segments(q, k_pages, cu_seqlens_q, own_slots, cu_seqlens_own, segments,
                         inv_freq=inv_freq, interleaved=interleaved, causal=causal,
                         softmax_scale=softmax_scale, softcap=softcap, backend=backend)
    out, lse = plan.run(q, k_pages, v_pages)
    return (out, lse) if return_lse else out


def plan_segments(
    q: torch.Tensor,
    k_pages: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    own_slots: torch.Tensor,
    cu_seqlens_own: torch.Tensor,
    segments: Sequence[SharedSegment],
    *,
    inv_freq: torch.Tensor | None = None,
    interleaved: bool = False,
    causal: bool = True,
    softmax_scale: float | None = None,
    softcap: float = 0.0,
    backend: str = "auto",
) -> SegmentPlan:
    """Plan :func:`segment_attention` once for every layer of a step (arguments as there;
    ``q`` and ``k_pages`` are read for their shapes, dtype and device only).

    The offsets are read on the host (one device sync on CUDA), the query rows and per-row
    shifts of every segment built, and two backend plans made: the own segments (causal) and
    the shared segments packed (unmasked). Segments that no query sees, or that hold no
    key, are dropped here.

    Examples
    --------
    >>> kp = torch.randn(8, 1, 1, 8)
    >>> q = torch.randn(2, 2, 8)
    >>> cu = torch.tensor([0, 1, 2], dtype=torch.int32)
    >>> seg = SharedSegment(torch.tensor([0, 1, 2]), {0: -5, 1: 4})
    >>> plan = plan_segments(q, kp, cu, torch.tensor([3, 4, 5]),
    ...                      torch.tensor([0, 2, 3], dtype=torch.int32), [seg],
    ...                      inv_freq=torch.ones(4))
    >>> plan.shift.tolist()                              # each row rotated by its own -delta
    [5, -4]
    >>> plan.run(q, kp, kp)[1].shape                     # one plan, any layer's pool
    torch.Size([2, 2])
    """
    _flat(k_pages, "k_pages")
    if q.dim() != 3 or q.shape[2] != k_pages.shape[3]:
        raise ValueError(f"q must be (total_q, H, {k_pages.shape[3]}), got {tuple(q.shape)}")
    num_kv_heads = k_pages.shape[2]
    check_heads(q.shape[1], num_kv_heads)
    _check_slots(own_slots, "own_slots")
    check_cu_seqlens(cu_seqlens_q, cu_seqlens_own)
    cu_q, cu_own = cu_seqlens_q.tolist(), cu_seqlens_own.tolist()
    check_offsets("cu_seqlens_q", cu_q, q.shape[0])
    check_offsets("cu_seqlens_own", cu_own, own_slots.numel())
    num_workers = len(cu_q) - 1
    q_lens = [cu_q[b + 1] - cu_q[b] for b in range(num_workers)]
    own_lens = [cu_own[b + 1] - cu_own[b] for b in range(num_workers)]
    if causal and any(lq > lo + 1 for lq, lo in zip(q_lens, own_lens, strict=True)):
        raise ValueError(
            f"causal segment attention needs each worker's queries to be its newest tokens "
            f"(Lq <= Lown + 1); got Lq {q_lens} and Lown {own_lens}"
        )
    params = AttentionParams.build(q.shape[2], causal=causal, softmax_scale=softmax_scale,
                                   window_size=(-1, -1), softcap=softcap)
    impl = resolve_backend(backend, q, params)
    own = impl.plan(q, num_kv_heads, cu_seqlens_q, cu_seqlens_own, max(q_lens, default=0),
                    max(own_lens, default=0), params)
    rows, shifts, num_rows, num_keys, slots = [], [], [], [], []
    for i, segment in enumerate(segments):
        deltas = _check_segment(segment, i, num_workers)
        workers = [b for b in sorted(deltas) if q_lens[b] > 0]
        if not workers or segment.slots.numel() == 0:
            continue  # contributes no key to any row
        for b in workers:
            rows += range(cu_q[b], cu_q[b + 1])
            shifts += [-deltas[b]] * q_lens[b]
        num_rows.append(sum(q_lens[b] for b in workers))
        num_keys.append(segment.slots.numel())
        slots.append(segment.slots)
    shift = _shift(shifts, q.device)
    if shift is not None:
        _check_inv_freq(inv_freq, q.shape[2])
    shared = None
    if rows:  # one unmasked "sequence" per segment: its viewers' rows x its keys
        unmasked = AttentionParams(False, params.softmax_scale, (-1, -1), params.softcap)
        cu_rows = torch.tensor([0, *accumulate(num_rows)], dtype=torch.int32, device=q.device)
        cu_keys = torch.tensor([0, *accumulate(num_keys)], dtype=torch.int32, device=q.device)
        pair_q = q[:1].expand(len(rows), -1, -1)  # read for its shape, dtype and device
        shared = impl.plan(pair_q, num_kv_heads, cu_rows, cu_keys, max(num_rows),
                           max(num_keys), unmasked)
    return SegmentPlan(
        own, own_slots, shared,
        torch.cat(slots) if slots else own_slots.new_zeros(0),
        torch.tensor(rows, dtype=torch.int64, device=q.device), shift, inv_freq, interleaved,
    )


def _check_segment(segment: SharedSegment, index: int, num_workers: int) -> dict[int, int]:
    """The segment's deltas as ``{worker: int}``, its slots and workers checked."""
    _check_slots(segment.slots, f"segments[{index}].slots")
    try:
        deltas = {operator.index(b): operator.index(d) for b, d in segment.deltas.items()}
    except (AttributeError, TypeError) as e:
        raise ValueError(
            f"segments[{index}].deltas must map worker ints to delta ints, got "
            f"{segment.deltas!r}"
        ) from e
    bad = [b for b in deltas if not 0 <= b < num_workers]
    if bad:
        raise ValueError(
            f"segments[{index}] names workers {bad}; there are {num_workers} (0..{num_workers - 1})"
        )
    return deltas


def _shift(shifts: list[int], device: torch.device) -> int | torch.Tensor | None:
    """Per-row rotation: ``None`` when all 0, an int when all equal, else ``(N,)`` int64."""
    values = set(shifts)
    if values <= {0}:
        return None
    if len(values) == 1:
        return values.pop()
    return torch.tensor(shifts, dtype=torch.int64, device=device)


def _check_inv_freq(inv_freq: torch.Tensor | None, dim: int) -> None:
    if inv_freq is None:
        raise ValueError("a segment has a nonzero delta: pass inv_freq to rotate the queries")
    if inv_freq.dim() != 1 or 2 * inv_freq.shape[0] > dim:
        raise ValueError(
            f"inv_freq must be (D_rot / 2,) with D_rot <= D = {dim}, got {tuple(inv_freq.shape)}"
        )

