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

from tim.kernels.backends import resolve_backend
from tim.kernels.merge import merge_attention_states
from tim.kernels.paged import gather_kv
from tim.kernels.params import AttentionParams, check_varlen_args

__all__ = ["cascade_attention", "paged_cascade_attention"]


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
    total_q, prefix_len = q.shape[0], prefix_k.shape[0]
    # every query of every worker sees the whole prefix: one unmasked "sequence"
    cu_all_q = torch.tensor([0, total_q], dtype=torch.int32, device=q.device)
    cu_all_k = torch.tensor([0, prefix_len], dtype=torch.int32, device=q.device)
    prefix_params = AttentionParams(False, params.softmax_scale, (-1, -1), params.softcap)
    o_pre, lse_pre = impl.varlen(
        q, prefix_k, prefix_v, cu_all_q, cu_all_k, total_q, prefix_len, prefix_params
    )
    max_q = int(q_lens.max()) if q_lens.numel() else 0
    max_s = int(s_lens.max()) if s_lens.numel() else 0
    o_suf, lse_suf = impl.varlen(
        q, suffix_k, suffix_v, cu_seqlens_q, cu_seqlens_suffix, max_q, max_s, params
    )
    out, lse = merge_attention_states(o_pre, lse_pre, o_suf, lse_suf)
    return (out, lse) if return_lse else out


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
    prefix_k, prefix_v = gather_kv(k_pages, v_pages, prefix_slots)
    suffix_k, suffix_v = gather_kv(k_pages, v_pages, suffix_slots)
    return cascade_attention(
        q, prefix_k, prefix_v, suffix_k, suffix_v, cu_seqlens_q, cu_seqlens_suffix,
        causal=causal, softmax_scale=softmax_scale, softcap=softcap,
        return_lse=return_lse, backend=backend,
    )
