"""Block kernels of the ``torch`` backend. Each takes one block of rows in which every row sees
at least one key, and returns ``(out (Lq, H, D), lse (H, Lq))``.

GQA *folding*: the ``G = H // Hkv`` query heads that share a kv head become ``G * Lq`` rows of
that kv head (row ``g * Lq + t``), so one matmul or fused call per kv head reads each key once::

    q (Lq, H, D) -> (Lq, Hkv, G, D) -> (Hkv, G, Lq, D) -> (Hkv, G*Lq, D)
"""

from __future__ import annotations

import torch

from tim.kernels.params import AttentionParams

__all__ = [
    "flash_bias",
    "flash_cpu",
    "flash_cpu_batch",
    "flash_cpu_causal",
    "flash_cpu_op",
    "fold",
    "matmul_attention",
    "sdpa_attention",
    "unfold",
]


def flash_cpu_op():
    """ATen's fused CPU flash attention (returns the LSE), or ``None`` if this torch lacks it."""
    return getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def fold(q: torch.Tensor, num_kv_heads: int) -> torch.Tensor:
    """(Lq, H, D) -> (Hkv, G * Lq, D): the G query heads of each kv head become rows g*Lq + t."""
    q_len, num_heads, dim = q.shape
    group = num_heads // num_kv_heads
    q4 = q.reshape(q_len, num_kv_heads, group, dim)  # (Lq, Hkv, G, D)
    return q4.permute(1, 2, 0, 3).reshape(num_kv_heads, group * q_len, dim)  # (Hkv, G*Lq, D)


def unfold(o: torch.Tensor, lse: torch.Tensor, q_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`fold` for the output ``(Hkv, G*Lq, D)`` and lse ``(Hkv, G*Lq)``."""
    num_kv_heads, rows, dim = o.shape
    group = rows // q_len
    o = o.reshape(num_kv_heads, group, q_len, dim).permute(2, 0, 1, 3)  # (Lq, Hkv, G, D)
    return o.reshape(q_len, num_kv_heads * group, dim), lse.reshape(num_kv_heads * group, q_len)


def flash_bias(mask: torch.Tensor, group: int, dtype: torch.dtype) -> torch.Tensor:
    """The additive bias :func:`flash_cpu` takes for a bool ``(Lq, Lk)`` mask: 0 where visible,
    ``-inf`` elsewhere, repeated for the ``G`` folded query heads -> ``(G * Lq, Lk)``."""
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return bias.masked_fill_(~mask, float("-inf")).repeat(group, 1)  # (G*Lq, Lk)


def flash_cpu(q, k, v, bias, scale) -> tuple[torch.Tensor, torch.Tensor]:
    """ATen's fused CPU kernel on one block, GQA heads folded into rows; ``bias`` is None (all
    keys visible) or :func:`flash_bias` of the block's mask."""
    q_len, num_heads, num_kv_heads, dim = q.shape[0], q.shape[1], k.shape[1], q.shape[2]
    kf = k.permute(1, 0, 2).unsqueeze(0)  # (1, Hkv, Lk, D), a view
    vf = v.permute(1, 0, 2).unsqueeze(0)  # (1, Hkv, Lk, D), a view
    if q_len == 1:  # a decode step: folding is a reshape, and so is unfolding
        qf = q.reshape(1, num_kv_heads, num_heads // num_kv_heads, dim)  # (1, Hkv, G, D)
        o, lse = flash_cpu_op()(qf, kf, vf, 0.0, False, attn_mask=bias, scale=scale)
        return o.reshape(1, num_heads, dim), lse.reshape(num_heads, 1)
    qf = fold(q, num_kv_heads).unsqueeze(0)  # (1, Hkv, G*Lq, D)
    o, lse = flash_cpu_op()(qf, kf, vf, 0.0, False, attn_mask=bias, scale=scale)
    return unfold(o[0], lse[0], q_len)


def flash_cpu_batch(q, k, v, num_seqs, scale) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_seqs`` equal-shape sequences, all keys visible, in one call (batch dimension)."""
    num_heads, num_kv_heads, dim = q.shape[1], k.shape[1], q.shape[2]
    group, q_len = num_heads // num_kv_heads, q.shape[0] // num_seqs
    q5 = q.reshape(num_seqs, q_len, num_kv_heads, group, dim)  # (n, Lq, Hkv, G, D)
    qf = q5.permute(0, 2, 3, 1, 4).reshape(num_seqs, num_kv_heads, group * q_len, dim)
    kf = k.reshape(num_seqs, -1, num_kv_heads, dim).permute(0, 2, 1, 3)  # (n, Hkv, Lk, D)
    vf = v.reshape(num_seqs, -1, num_kv_heads, dim).permute(0, 2, 1, 3)  # (n, Hkv, Lk, D)
    o, lse = flash_cpu_op()(qf, kf, vf, 0.0, False, scale=scale)  # (n, Hkv, G*Lq, D)
    o = o.reshape(num_seqs, num_kv_heads, group, q_len, dim).permute(0, 3, 1, 2, 4)
    lse = lse.reshape(num_seqs, num_heads, q_len).permute(1, 0, 2)  # (H, n, Lq)
    return o.reshape(-1, num_heads, dim), lse.reshape(num_heads, -1)  # (n*Lq, H, D), (H, n*Lq)


def flash_cpu_causal(q, k, v, scale) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left causal square (Lq == Lk). Rows cannot be folded here; the op maps query head
    ``h`` to kv head ``h // G`` itself."""
    qf = q.transpose(0, 1).unsqueeze(0)  # (1, H, L, D), a view
    kf = k.transpose(0, 1).unsqueeze(0)  # (1, Hkv, L, D), a view
    vf = v.transpose(0, 1).unsqueeze(0)  # (1, Hkv, L, D), a view
    o, lse = flash_cpu_op()(qf, kf, vf, 0.0, True, scale=scale)
    return o[0].transpose(0, 1), lse[0]  # (L, H, D), (H, L)


def matmul_attention(q, k, v, mask, params: AttentionParams) -> tuple[torch.Tensor, torch.Tensor]:
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    q_len, num_kv_heads = q.shape[0], k.shape[1]
    group = q.shape[1] // num_kv_heads
    qf = fold(q, num_kv_heads).to(acc)  # (Hkv, G*Lq, D)
    scores = torch.bmm(qf, k.to(acc).permute(1, 2, 0))  # (Hkv, G*Lq, Lk)
    scores.mul_(params.softmax_scale)
    if params.softcap > 0:
        scores.div_(params.softcap).tanh_().mul_(params.softcap)
    if mask is not None:
        scores.masked_fill_(~mask.repeat(group, 1), float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)  # (Hkv, G*Lq), finite: every row sees a key
    probs = scores.sub_(lse.unsqueeze(-1)).exp_()
    o = torch.bmm(probs, v.to(acc).transpose(0, 1))  # (Hkv, G*Lq, D)
    o, lse = unfold(o, lse, q_len)
    return o.to(q.dtype), lse


def sdpa_attention(q, k, v, mask, params: AttentionParams) -> tuple[torch.Tensor, torch.Tensor]:
    group = q.shape[1] // k.shape[1]
    qb = q.transpose(0, 1).unsqueeze(0)  # (1, H, Lq, D)
    kb = k.repeat_interleave(group, dim=1).transpose(0, 1).unsqueeze(0)  # (1, H, Lk, D)
    vb = v.repeat_interleave(group, dim=1).transpose(0, 1).unsqueeze(0)  # (1, H, Lk, D)
    o = torch.nn.functional.scaled_dot_product_attention(
        qb, kb, vb, attn_mask=mask, scale=params.softmax_scale
    )
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    scores = (qb[0].to(acc) @ kb[0].to(acc).transpose(1, 2)) * params.softmax_scale  # (H, Lq, Lk)
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    return o[0].transpose(0, 1), torch.logsumexp(scores, dim=-1)  # (Lq, H, D), (H, Lq)
