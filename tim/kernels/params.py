"""Attention options shared by every backend, and the argument checks of the public functions.

The visible-key rule is flash-attn's, aligned bottom-right. For a sequence with ``Lq`` queries
and ``Lk`` keys, query ``i`` may see key ``j`` when::

    off - left <= j - i <= off + right,        off = Lk - Lq

with ``left``/``right`` unbounded when ``None``. ``causal=True`` means ``right = 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["AttentionParams", "check_varlen_args"]


@dataclass(frozen=True)
class AttentionParams:
    """Everything about one attention call except the tensors.

    Parameters
    ----------
    causal : bool
        Bottom-right aligned causal mask (flash-attn convention).
    softmax_scale : float
        Multiplies ``q @ k.T`` before softcap and softmax.
    window_size : tuple of int
        ``(left, right)`` sliding window; ``-1`` means unbounded on that side.
    softcap : float
        ``0.0`` is off; otherwise scores become ``softcap * tanh(scores / softcap)``.

    Examples
    --------
    >>> p = AttentionParams(causal=True, softmax_scale=0.125, window_size=(4, -1))
    >>> p.bounds()
    (4, 0)
    """

    causal: bool = True
    softmax_scale: float = 1.0
    window_size: tuple[int, int] = (-1, -1)
    softcap: float = 0.0

    def __post_init__(self) -> None:
        w = self.window_size
        if (
            not isinstance(w, tuple)
            or len(w) != 2
            or not all(isinstance(x, int) and x >= -1 for x in w)
        ):
            raise ValueError(f"window_size must be a pair of ints >= -1, got {w!r}")
        if not (math.isfinite(self.softmax_scale) and self.softmax_scale > 0):
            raise ValueError(f"softmax_scale must be a positive finite float, got {self.softmax_scale!r}")
        if not (math.isfinite(self.softcap) and self.softcap >= 0):
            raise ValueError(f"softcap must be a finite float >= 0, got {self.softcap!r}")

    @classmethod
    def build(
        cls,
        head_dim: int,
        *,
        causal: bool,
        softmax_scale: float | None,
        window_size: tuple[int, int] | list[int],
        softcap: float,
    ) -> AttentionParams:
        """Fill in the default scale ``1 / sqrt(head_dim)`` and normalise the window to a tuple."""
        scale = head_dim**-0.5 if softmax_scale is None else float(softmax_scale)
        window = tuple(window_size) if isinstance(window_size, (tuple, list)) else window_size
        return cls(bool(causal), scale, window, float(softcap))  # type: ignore[arg-type]

    def bounds(self) -> tuple[int | None, int | None]:
        """``(left, right)`` limits on ``j - i - off``; ``None`` is unbounded."""
        left = self.window_size[0] if self.window_size[0] >= 0 else None
        if self.causal:
            return left, 0
        right = self.window_size[1] if self.window_size[1] >= 0 else None
        return left, right

    def flash_window(self) -> tuple[int, int]:
        """The ``window_size`` to hand to flash-attn kernels (causal forces ``right = 0``)."""
        left, right = self.bounds()
        return (-1 if left is None else left, -1 if right is None else right)


def check_varlen_args(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
) -> None:
    """Raise ``ValueError`` quoting the bad shape or dtype; checks shapes only (no device sync)."""
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise ValueError(
            f"q, k, v must be (total, heads, head_dim); got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if k.shape != v.shape:
        raise ValueError(f"k and v shapes differ: {tuple(k.shape)} vs {tuple(v.shape)}")
    if q.shape[2] != k.shape[2]:
        raise ValueError(f"q head_dim {q.shape[2]} != k head_dim {k.shape[2]}")
    check_heads(q.shape[1], k.shape[1])
    if q.dtype != k.dtype or q.dtype != v.dtype:
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    check_cu_seqlens(cu_seqlens_q, cu_seqlens_k)


def check_heads(num_heads: int, num_kv_heads: int) -> None:
    """GQA needs ``num_heads % num_kv_heads == 0``."""
    if num_kv_heads < 1 or num_heads % num_kv_heads != 0:
        raise ValueError(
            f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads})"
        )


def cu_seqlens(lengths: list[int]) -> torch.Tensor:
    """``(B + 1,)`` int32 cumulative offsets of ``B`` sequence lengths, on the CPU.

    >>> cu_seqlens([3, 1, 2]).tolist()
    [0, 3, 4, 6]
    """
    out = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    out[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int32), 0)
    return out


def check_cu_seqlens(cu_seqlens_q: torch.Tensor, cu_seqlens_k: torch.Tensor) -> None:
    """Both cumulative-offset tensors are 1-D int32 of the same length ``B + 1``."""
    for name, cu in (("cu_seqlens_q", cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k)):
        if cu.dim() != 1 or cu.dtype != torch.int32 or cu.numel() < 1:
            raise ValueError(
                f"{name} must be a 1-D int32 tensor (B + 1,), got {tuple(cu.shape)} {cu.dtype}"
            )
    if cu_seqlens_q.numel() != cu_seqlens_k.numel():
        raise ValueError(
            f"cu_seqlens_q has {cu_seqlens_q.numel()} entries but cu_seqlens_k has "
            f"{cu_seqlens_k.numel()}; both must be (B + 1,)"
        )


def check_offsets(name: str, offsets: list[int], total: int) -> None:
    """Host-side offsets start at 0, never decrease and end within the ``total`` rows."""
    decreasing = any(offsets[i + 1] < offsets[i] for i in range(len(offsets) - 1))
    if offsets[0] != 0 or decreasing or offsets[-1] > total:
        shown = offsets if len(offsets) <= 12 else offsets[:6] + ["..."] + offsets[-6:]
        raise ValueError(
            f"{name} must start at 0, be non-decreasing and end <= {total}; got {shown}"
        )
