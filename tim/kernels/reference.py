"""The dense, masked reference attention: the spec every backend is tested against.

It builds the full ``(Lq, Lk)`` score matrix of each sequence, so it is slow and memory-hungry
on purpose: nothing here is clever.
"""

from __future__ import annotations

import torch

from tim.kernels.params import AttentionParams

__all__ = ["visible_mask", "reference_attention"]


def visible_mask(
    q_len: int,
    k_len: int,
    params: AttentionParams,
    device: torch.device | None = None,
    *,
    off: int | None = None,
) -> torch.Tensor:
    """Which keys each query may see, aligned bottom-right like flash-attn.

    The one owner of the visible-key rule (:mod:`tim.kernels.params`): the reference and the
    ``torch`` backend's masked blocks both build their masks here.

    Parameters
    ----------
    q_len, k_len : int
        Queries and keys of one sequence (or of one block of it).
    params : AttentionParams
        ``causal`` and ``window_size`` are read.
    device : torch.device or None
        Where to build the mask.
    off : int or None
        Query ``i`` sees key ``j`` when ``-left <= j - i - off <= right``. ``None``: the
        whole sequence's ``k_len - q_len`` (bottom-right alignment); a row block of a
        sequence passes its own.

    Returns
    -------
    torch.Tensor
        ``(q_len, k_len)`` bool, True where query ``i`` sees key ``j``.

    Examples
    --------
    >>> visible_mask(2, 4, AttentionParams(causal=True)).int()
    tensor([[1, 1, 1, 0],
            [1, 1, 1, 1]], dtype=torch.int32)
    >>> visible_mask(2, 4, AttentionParams(causal=True), off=0).int()
    tensor([[1, 0, 0, 0],
            [1, 1, 0, 0]], dtype=torch.int32)
    """
    left, right = params.bounds()
    if off is None:
        off = k_len - q_len
    i = torch.arange(q_len, device=device)[:, None]
    j = torch.arange(k_len, device=device)[None, :]
    rel = j - i - off  # (Lq, Lk): 0 on the diagonal j - i = off
    mask = torch.ones(q_len, k_len, dtype=torch.bool, device=device)
    if left is not None:
        mask &= rel >= -left
    if right is not None:
        mask &= rel <= right
    return mask


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    params: AttentionParams,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Varlen attention by dense masked softmax, one sequence at a time.

    Parameters
    ----------
    q : torch.Tensor
        ``(total_q, H, D)`` queries.
    k, v : torch.Tensor
        ``(total_k, Hkv, D)`` keys and values, ``H % Hkv == 0``.
    cu_seqlens_q, cu_seqlens_k : torch.Tensor
        ``(B + 1,)`` int32 cumulative offsets.
    params : AttentionParams
        Scale, mask and softcap.

    Returns
    -------
    out : torch.Tensor
        ``(total_q, H, D)`` in q's dtype; rows with no visible key are 0.
    lse : torch.Tensor
        ``(H, total_q)`` natural-log sum of exp of the (capped) scores; ``-inf`` for rows with no
        visible key. fp32, or fp64 for fp64 inputs.

    Examples
    --------
    >>> q, k, v = torch.randn(3, 2, 8), torch.randn(5, 1, 8), torch.randn(5, 1, 8)
    >>> cu_q, cu_k = torch.tensor([0, 3], dtype=torch.int32), torch.tensor([0, 5], dtype=torch.int32)
    >>> out, lse = reference_attention(q, k, v, cu_q, cu_k, AttentionParams(softmax_scale=8**-0.5))
    >>> out.shape, lse.shape
    (torch.Size([3, 2, 8]), torch.Size([2, 3]))
    """
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    num_heads, num_kv_heads = q.shape[1], k.shape[1]
    group = num_heads // num_kv_heads
    out = torch.zeros(q.shape, dtype=acc, device=q.device)
    lse = torch.full((num_heads, q.shape[0]), float("-inf"), dtype=acc, device=q.device)
    cq, ck = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    for b in range(len(cq) - 1):
        q0, q1, k0, k1 = cq[b], cq[b + 1], ck[b], ck[b + 1]
        if q1 == q0 or k1 == k0:
            continue
        qb = q[q0:q1].to(acc).transpose(0, 1)  # (H, Lq, D)
        kb = k[k0:k1].to(acc).repeat_interleave(group, dim=1).transpose(0, 1)  # (H, Lk, D)
        vb = v[k0:k1].to(acc).repeat_interleave(group, dim=1).transpose(0, 1)  # (H, Lk, D)
        scores = (qb @ kb.transpose(1, 2)) * params.softmax_scale  # (H, Lq, Lk)
        if params.softcap > 0:
            scores = params.softcap * torch.tanh(scores / params.softcap)
        mask = visible_mask(q1 - q0, k1 - k0, params, q.device)
        scores = scores.masked_fill(~mask, float("-inf"))
        row_lse = torch.logsumexp(scores, dim=-1)  # (H, Lq)
        safe = torch.where(torch.isinf(row_lse), torch.zeros_like(row_lse), row_lse)
        probs = torch.exp(scores - safe[..., None])  # masked entries -> exp(-inf) = 0
        out[q0:q1] = (probs @ vb).transpose(0, 1)
        lse[:, q0:q1] = row_lse
    return out.to(q.dtype), lse
