"""Merge two partial attention results over disjoint key sets through their log-sum-exp."""

from __future__ import annotations

import torch

__all__ = ["merge_attention_states", "merge_rows"]


def merge_attention_states(
    o1: torch.Tensor, lse1: torch.Tensor, o2: torch.Tensor, lse2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine attention over key sets A and B into attention over A ∪ B.

    With ``m = max(lse1, lse2)`` and ``w_i = exp(lse_i - m)``::

        o   = (w_1 o_1 + w_2 o_2) / (w_1 + w_2)
        lse = m + log(w_1 + w_2)

    computed in fp32 (fp64 for fp64 inputs). A side that saw no key has ``lse = -inf`` and
    weight 0; when both sides are empty the result is ``o = 0``, ``lse = -inf`` (never NaN).

    Parameters
    ----------
    o1, o2 : torch.Tensor
        ``(T, H, D)`` partial outputs, each already normalised over its own keys.
    lse1, lse2 : torch.Tensor
        ``(H, T)`` natural-log sum of exp of the scores of each side (flash-attn varlen layout).

    Returns
    -------
    o : torch.Tensor
        ``(T, H, D)`` in o1's dtype.
    lse : torch.Tensor
        ``(H, T)`` fp32 (fp64 for fp64 inputs).

    Examples
    --------
    >>> o1, o2 = torch.ones(1, 1, 2), torch.zeros(1, 1, 2)
    >>> lse = torch.zeros(1, 1)
    >>> o, l = merge_attention_states(o1, lse, o2, lse)   # equal weights
    >>> o.flatten().tolist(), round(l.item(), 4)
    ([0.5, 0.5], 0.6931)
    >>> o, l = merge_attention_states(o1, lse, o2, torch.full((1, 1), float("-inf")))
    >>> o.flatten().tolist(), l.item()                    # empty right side
    ([1.0, 1.0], 0.0)
    """
    if o1.shape != o2.shape or lse1.shape != lse2.shape:
        raise ValueError(
            f"shapes differ: o {tuple(o1.shape)} vs {tuple(o2.shape)}, "
            f"lse {tuple(lse1.shape)} vs {tuple(lse2.shape)}"
        )
    if o1.dim() != 3 or tuple(lse1.shape) != (o1.shape[1], o1.shape[0]):
        raise ValueError(
            f"expected o (T, H, D) and lse (H, T); got o {tuple(o1.shape)}, lse {tuple(lse1.shape)}"
        )
    acc = torch.float64 if torch.float64 in (o1.dtype, lse1.dtype) else torch.float32
    a, b = lse1.to(acc), lse2.to(acc)
    m = torch.maximum(a, b)
    m_safe = torch.where(torch.isinf(m), torch.zeros_like(m), m)  # both -inf: avoid inf - inf
    w1, w2 = torch.exp(a - m_safe), torch.exp(b - m_safe)  # (H, T)
    total = w1 + w2
    denom = torch.where(total > 0, total, torch.ones_like(total))
    w1t = (w1 / denom).t()[..., None]  # (T, H, 1)
    w2t = (w2 / denom).t()[..., None]  # (T, H, 1)
    o = o1.to(acc) * w1t + o2.to(acc) * w2t
    lse = m_safe + torch.log(total)  # log(0) = -inf for two empty sides
    return o.to(o1.dtype), lse


def merge_rows(
    o: torch.Tensor, lse: torch.Tensor, o_parts: torch.Tensor, lse_parts: torch.Tensor,
    rows: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`merge_attention_states` of each row of ``o (T, H, D), lse (H, T)`` with every
    part ``i`` of ``o_parts (N, H, D), lse_parts (H, N)`` that belongs to it
    (``rows (N,)`` int64), all parts at once. Same formula: weights ``exp(lse - max)``."""
    acc = torch.float64 if torch.float64 in (o.dtype, lse.dtype) else torch.float32
    lse, lse_parts = lse.to(acc), lse_parts.to(acc)
    m = lse.scatter_reduce(1, rows.expand(lse.shape[0], -1), lse_parts, "amax")  # (H, T)
    m = torch.where(torch.isinf(m), 0.0, m)  # a row with no key anywhere: avoid inf - inf
    w, w_parts = torch.exp(lse - m), torch.exp(lse_parts - m[:, rows])  # (H, T), (H, N)
    total = w.index_add(1, rows, w_parts)  # (H, T)
    out = (o.to(acc) * w.t()[..., None]).index_add_(
        0, rows, o_parts.to(acc) * w_parts.t()[..., None])  # (T, H, D)
    out = out / torch.where(total > 0, total, 1.0).t()[..., None]
    return out.to(o.dtype), m + torch.log(total)  # log(0) = -inf for a row with no key
