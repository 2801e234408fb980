"""Varlen attention over packed sequences: a drop-in for flash-attn's ``flash_attn_varlen_func``."""

from __future__ import annotations

import torch

from tim.kernels.backends import KernelPlan, resolve_backend
from tim.kernels.params import AttentionParams, check_cu_seqlens, check_heads, check_varlen_args

__all__ = ["plan_varlen", "varlen_attention"]


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    *,
    causal: bool = True,
    softmax_scale: float | None = None,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    return_lse: bool = False,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Attention for ``B`` packed sequences, each over its own keys.

    Sequence ``b`` owns queries ``q[cu_seqlens_q[b]:cu_seqlens_q[b+1]]`` (``Lq`` of them) and keys
    ``k[cu_seqlens_k[b]:cu_seqlens_k[b+1]]`` (``Lk``). Masks align bottom-right: query ``i`` is the
    token just before key position ``i + Lk - Lq + 1``, so with ``causal`` it sees keys
    ``j <= i + Lk - Lq``. For ``Lq = 2, Lk = 5`` (1 = visible)::

        1 1 1 1 0
        1 1 1 1 1

    and for ``Lq = 5, Lk = 2`` the first three rows see nothing (output 0, lse ``-inf``)::

        0 0
        0 0
        0 0
        1 0
        1 1

    A window ``(left, right)`` keeps keys ``i + Lk - Lq - left <= j <= i + Lk - Lq + right``
    (``-1`` = unbounded; ``causal`` forces ``right = 0``).

    Parameters
    ----------
    q : torch.Tensor
        ``(total_q, H, D)`` queries, fp32/fp64 on CPU, fp16/bf16/fp32 on CUDA.
    k, v : torch.Tensor
        ``(total_k, Hkv, D)`` keys and values; ``H % Hkv == 0`` (GQA: query head ``h`` reads kv
        head ``h // (H // Hkv)``).
    cu_seqlens_q, cu_seqlens_k : torch.Tensor
        ``(B + 1,)`` int32 cumulative offsets, starting at 0. Empty sequences are allowed.
    max_seqlen_q, max_seqlen_k : int
        Longest query / key run; used by CUDA kernels for launch sizes.
    causal : bool
        Bottom-right causal mask.
    softmax_scale : float, optional
        Defaults to ``D ** -0.5``.
    window_size : tuple of int
        ``(left, right)`` sliding window, ``(-1, -1)`` for none.
    softcap : float
        ``> 0`` caps scores as ``softcap * tanh(scores / softcap)`` (after scaling).
    return_lse : bool
        Also return the log-sum-exp.
    backend : str
        ``"auto"``, ``"torch"``, ``"flash"``, ``"torch-cuda"`` or ``"sdpa"``; see
        :func:`tim.kernels.describe`.

    Returns
    -------
    out : torch.Tensor
        ``(total_q, H, D)`` in q's dtype. A query with no visible key gives zeros.
    lse : torch.Tensor
        Only with ``return_lse``: ``(H, total_q)`` fp32 natural-log
        ``logsumexp_j(score_ij)``; ``-inf`` for a query with no visible key.

    Raises
    ------
    ValueError
        On inconsistent shapes, dtypes or options; the message quotes the values.
    tim.errors.UnsupportedModelError
        When the named backend is missing or lacks a feature the call needs.

    Examples
    --------
    Two sequences: 2 queries over 3 keys, and 1 query over 4 keys (a decode step).

    >>> q = torch.randn(3, 4, 16)                      # (total_q, H, D)
    >>> k, v = torch.randn(7, 2, 16), torch.randn(7, 2, 16)   # (total_k, Hkv, D)
    >>> cu_q = torch.tensor([0, 2, 3], dtype=torch.int32)
    >>> cu_k = torch.tensor([0, 3, 7], dtype=torch.int32)
    >>> out, lse = varlen_attention(q, k, v, cu_q, cu_k, 2, 4, return_lse=True)
    >>> out.shape, lse.shape
    (torch.Size([3, 4, 16]), torch.Size([4, 3]))
    """
    check_varlen_args(q, k, v, cu_seqlens_q, cu_seqlens_k)
    plan = plan_varlen(
        q, k.shape[1], cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal=causal,
        softmax_scale=softmax_scale, window_size=window_size, softcap=softcap, backend=backend,
    )
    out, lse = plan.run(q, k, v)
    return (out, lse) if return_lse else out


def plan_varlen(
    q: torch.Tensor,
    num_kv_heads: int,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    *,
    causal: bool = True,
    softmax_scale: float | None = None,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    backend: str = "auto",
) -> KernelPlan:
    """Plan :func:`varlen_attention` once, to run it on many layers' tensors.

    Everything that depends only on the offsets and options (the backend, argument checks,
    the block cut and masks of the ``torch`` backend) is done here. ``plan.run(q, k, v)``
    returns ``(out, lse)`` for any ``q (total_q, H, D)`` and ``k, v (total_k, Hkv, D)`` of the
    planned shapes, dtype and device; ``q`` given here is read for those only.

    Examples
    --------
    >>> cu = torch.tensor([0, 1, 3], dtype=torch.int32)
    >>> q, k = torch.randn(3, 4, 16), torch.randn(3, 2, 16)
    >>> plan = plan_varlen(q, 2, cu, cu, 2, 2)
    >>> out, lse = plan.run(q, k, k)          # layer 0
    >>> out, lse = plan.run(q * 2, k, k)      # layer 1: the same plan
    >>> out.shape, lse.shape
    (torch.Size([3, 4, 16]), torch.Size([4, 3]))
    """
    check_heads(q.shape[1], num_kv_heads)
    check_cu_seqlens(cu_seqlens_q, cu_seqlens_k)
    params = AttentionParams.build(
        q.shape[2], causal=causal, softmax_scale=softmax_scale, window_size=window_size,
        softcap=softcap,
    )
    impl = resolve_backend(backend, q, params)
    return impl.plan(q, num_kv_heads, cu_seqlens_q, cu_seqlens_k, int(max_seqlen_q),
                     int(max_seqlen_k), params)
