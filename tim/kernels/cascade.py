"""Cascade (shared-prefix) attention: sibling workers read their common prefix once.

``B`` workers share a prefix of ``Lp`` keys; worker ``b`` also owns ``Ls_b`` suffix keys and
``Lq_b`` queries (its newest tokens). Attention over ``prefix + suffix_b`` splits into::

    queries of all workers  x  prefix keys     one non-causal pass: every query sees the whole
    (folded into one "sequence")                prefix, so the B query sets stack into one GEMM
                                                that reads the prefix K/V once
    queries of worker b     x  suffix_b keys    causal (bottom-right), one sequence per worker

and the two partial results are merged through their log-sum-exp (:func:`merge_attention_states`).
"""

from __future__ import annotations

import torch

from tim.kernels.backends import KernelPlan, resolve_backend
from tim.kernels.merge import merge_attention_states
from tim.kernels.params import AttentionParams, check_cu_seqlens, check_heads, check_varlen_args
from tim.kernels.slots import GatherBuffers, _check_slots, _flat, as_slice

__all__ = ["cascade_attention", "paged_cascade_attention", "plan_cascade", "plan_paged_cascade",
           "CascadePlan", "PagedCascadePlan"]


def cascade_attention(
    q: torch.Tensor,
    prefix_k: torch.Tensor,
    prefix_v: torch.Tensor,
    suffix_k: torch.Tensor,
    suffix_v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_suffix: torch.Tensor,
    *,
    causal: bool = True,
    softmax_scale: float | None = None,
    softcap: float = 0.0,
    return_lse: bool = False,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Attention of ``B`` workers over one shared prefix plus a private suffix each.

    Equals ``varlen_attention`` with worker ``b``'s keys ``cat(prefix, suffix_b)``. With
    ``causal``, each worker's queries are the last tokens of its (prefix + suffix) view, so they
    all see the whole prefix; this needs ``Lq_b <= Ls_b + 1`` (checked for CPU offsets). Sliding
    windows are not supported here: a window would cut the prefix differently per query.

    Parameters
    ----------
    q : torch.Tensor
        ``(total_q, H, D)`` queries of all workers, packed.
    prefix_k, prefix_v : torch.Tensor
        ``(Lp, Hkv, D)`` the shared prefix (``Lp`` may be 0).
    suffix_k, suffix_v : torch.Tensor
        ``(total_s, Hkv, D)`` the workers' own keys, packed.
    cu_seqlens_q : torch.Tensor
        ``(B + 1,)`` int32 offsets of each worker's queries.
    cu_seqlens_suffix : torch.Tensor
        ``(B + 1,)`` int32 offsets of each worker's suffix keys.
    causal, softmax_scale, softcap, return_lse, backend
        As in :func:`tim.kernels.varlen_attention`; the prefix pass is never masked.

    Returns
    -------
    ``out (total_q, H, D)``, and with ``return_lse`` also ``lse (H, total_q)`` fp32.

    Examples
    --------
    Three workers decode one token each after a 10-token shared prefix.

    >>> H, Hkv, D = 4, 2, 16
    >>> pk, pv = torch.randn(10, Hkv, D), torch.randn(10, Hkv, D)
    >>> sk, sv = torch.randn(6, Hkv, D), torch.randn(6, Hkv, D)      # suffixes of 1, 2, 3 tokens
    >>> q = torch.randn(3, H, D)
    >>> cu_q = torch.tensor([0, 1, 2, 3], dtype=torch.int32)
    >>> cu_s = torch.tensor([0, 1, 3, 6], dtype=torch.int32)
    >>> cascade_attention(q, pk, pv, sk, sv, cu_q, cu_s).shape
    torch.Size([3, 4, 16])
    """
    check_varlen_args(q, suffix_k, suffix_v, cu_seqlens_q, cu_seqlens_suffix)
    check_varlen_args(q, prefix_k, prefix_v, cu_seqlens_q, cu_seqlens_suffix)
    plan = plan_cascade(q, suffix_k.shape[1], cu_seqlens_q, cu_seqlens_suffix, prefix_k.shape[0],
                        causal=causal, softmax_scale=softmax_scale, softcap=softcap,
                        backend=backend)
    out, lse = plan.run(q, prefix_k, prefix_v, suffix_k, suffix_v)
    return (out, lse) if return_lse else out


class CascadePlan:
    """A planned cascade: one unmasked pass over the prefix, one varlen pass over the
    suffixes, merged by LSE. ``run(q, prefix_k, prefix_v, suffix_k, suffix_v)``."""

    __slots__ = ("prefix", "suffix")

    def __init__(self, prefix: KernelPlan, suffix: KernelPlan) -> None:
        self.prefix, self.suffix = prefix, suffix

    def run(self, q, prefix_k, prefix_v, suffix_k, suffix_v) -> tuple[torch.Tensor, torch.Tensor]:
        o_pre, lse_pre = self.prefix.run(q, prefix_k, prefix_v)
        o_suf, lse_suf = self.suffix.run(q, suffix_k, suffix_v)
        return merge_attention_states(o_pre, lse_pre, o_suf, lse_suf)


def plan_cascade(
    q: torch.Tensor,
    num_kv_heads: int,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_suffix: torch.Tensor,
    prefix_len: int,
    *,
    causal: bool = True,
    softmax_scale: float | None = None,
    softcap: float = 0.0,
    backend: str = "auto",
) -> CascadePlan:
    """Plan :func:`cascade_attention` once for every layer of a step (arguments as there;
    ``q`` is read for its shape, dtype and device only)."""
    check_heads(q.shape[1], num_kv_heads)
    check_cu_seqlens(cu_seqlens_q, cu_seqlens_suffix)
    q_lens, s_lens = cu_seqlens_q.diff(), cu_seqlens_suffix.diff()
    if causal and q.device.type == "cpu" and bool((q_lens > s_lens + 1).any()):
        raise ValueError(
            f"causal cascade needs each worker's queries to be its newest tokens "
            f"(Lq <= Ls + 1); got Lq {q_lens.tolist()} and Ls {s_lens.tolist()}"
        )
    params = AttentionParams.build(
        q.shape[2], causal=causal, softmax_scale=softmax_scale, window_size=(-1, -1),
        softcap=softcap,
    )
    impl = resolve_backend(backend, q, params)
    total_q = q.shape[0]
    # every query of every worker sees the whole prefix: one unmasked "sequence"
    cu_all_q = torch.tensor([0, total_q], dtype=torch.int32, device=q.device)
    cu_all_k = torch.tensor([0, prefix_len], dtype=torch.int32, device=q.device)
    prefix_params = AttentionParams(False, params.softmax_scale, (-1, -1), params.softcap)
    prefix = impl.plan(q, num_kv_heads, cu_all_q, cu_all_k, total_q, prefix_len, prefix_params)
    max_q = int(q_lens.max()) if q_lens.numel() else 0
    max_s = int(s_lens.max()) if s_lens.numel() else 0
    suffix = impl.plan(q, num_kv_heads, cu_seqlens_q, cu_seqlens_suffix, max_q, max_s, params)
    return CascadePlan(prefix, suffix)


class PagedCascadePlan:
    """A planned :func:`paged_cascade_attention`: ``run(q, k_pages, v_pages)`` gathers the
    prefix once and the suffixes once, then runs the cascade plan."""

    __slots__ = ("cascade", "prefix", "suffix")

    def __init__(self, cascade: CascadePlan, prefix_slots: torch.Tensor,
                 suffix_slots: torch.Tensor) -> None:
        self.cascade = cascade
        self.prefix = GatherBuffers(as_slice(prefix_slots))
        self.suffix = GatherBuffers(as_slice(suffix_slots))

    def run(self, q, k_pages, v_pages) -> tuple[torch.Tensor, torch.Tensor]:
        prefix_k, prefix_v = self.prefix.gather(k_pages, v_pages)
        suffix_k, suffix_v = self.suffix.gather(k_pages, v_pages)
        return self.cascade.run(q, prefix_k, prefix_v, suffix_k, suffix_v)


def paged_cascade_attention(
    q: torch.Tensor,
    k_pages: torch.Tensor,
    v_pages: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    prefix_slots: torch.Tensor,
    suffix_slots: torch.Tensor,
    cu_seqlens_suffix: torch.Tensor,
    *,
    causal: bool = True,
    softmax_scale: float | None = None,
    softcap: float = 0.0,
    return_lse: bool = False,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """:func:`cascade_attention` with the prefix and suffixes given as slot lists into the pool.

    The prefix is gathered once (``Lp`` slots), the suffixes once each: ``Lp + total_s`` slot
    reads instead of the ``B * Lp + total_s`` of gathering every worker's full view.

    Parameters
    ----------
    q : torch.Tensor
        ``(total_q, H, D)``.
    k_pages, v_pages : torch.Tensor
        ``(P, S, Hkv, D)`` one layer's pool.
    cu_seqlens_q : torch.Tensor
        ``(B + 1,)`` int32.
    prefix_slots : torch.Tensor
        ``(Lp,)`` int64 slots of the shared prefix, in position order.
    suffix_slots : torch.Tensor
        ``(total_s,)`` int64 slots of all workers' suffixes, packed.
    cu_seqlens_suffix : torch.Tensor
        ``(B + 1,)`` int32 offsets into ``suffix_slots``.

    Examples
    --------
    >>> kp, vp = torch.randn(16, 1, 2, 8), torch.randn(16, 1, 2, 8)   # S = 1
    >>> out = paged_cascade_attention(
    ...     torch.randn(2, 4, 8), kp, vp, torch.tensor([0, 1, 2], dtype=torch.int32),
    ...     prefix_slots=torch.arange(10), suffix_slots=torch.tensor([12, 13, 14]),
    ...     cu_seqlens_suffix=torch.tensor([0, 1, 3], dtype=torch.int32))
    >>> out.shape
    torch.Size([2, 4, 8])
    """
    plan = plan_paged_cascade(q, k_pages, cu_seqlens_q, prefix_slots, suffix_slots,
                              cu_seqlens_suffix, causal=causal, softmax_scale=softmax_scale,
                              softcap=softcap, backend=backend)
    out, lse = plan.run(q, k_pages, v_pages)
    return (out, lse) if return_lse else out


def plan_paged_cascade(
    q: torch.Tensor,
    k_pages: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    prefix_slots: torch.Tensor,
    suffix_slots: torch.Tensor,
    cu_seqlens_suffix: torch.Tensor,
    *,
    causal: bool = True,
    softmax_scale: float | None = None,
    softcap: float = 0.0,
    backend: str = "auto",
) -> PagedCascadePlan:
    """Plan :func:`paged_cascade_attention` once for every layer of a step."""
    _flat(k_pages, "k_pages")
    _check_slots(prefix_slots, "prefix_slots")
    _check_slots(suffix_slots, "suffix_slots")
    cascade = plan_cascade(q, k_pages.shape[2], cu_seqlens_q, cu_seqlens_suffix,
                           prefix_slots.numel(), causal=causal, softmax_scale=softmax_scale,
                           softcap=softcap, backend=backend)
    return PagedCascadePlan(cascade, prefix_slots, suffix_slots)
