"""The ``torch`` backend: attention in plain PyTorch, and the CPU fast path.

Each sequence is cut into row blocks. Rows that see no key are dropped (their output is 0 and
their lse ``-inf``) and each block keeps only the keys its rows can reach, so windows cost what
they cover. A block then runs one kernel of :mod:`tim.kernels.torch_kernels`:

- ``flash-cpu``: ATen's fused CPU flash-attention op, which also returns the LSE, with GQA
  heads folded into rows so keys are never copied. Consecutive sequences of equal shape that
  need no mask (a decode step of workers with equal views) share one batched call.
- causal square: a causal block whose last ``Lq`` keys form a square is split into the fully
  visible keys before it (no mask) and the square (``is_causal``), merged by LSE; causal
  prefill never builds a mask.
- ``matmul``: two batched matmuls with an explicit mask, for softcap and off-CPU devices;
  ``sdpa``: ``scaled_dot_product_attention`` with a boolean mask (the ``sdpa`` backend).

The block's *offset* ``off`` says which diagonal is ``j - i = off``; for a whole sequence it is
``Lk - Lq`` (bottom-right alignment)::

    Lq=3, Lk=5, causal, off=2        row 0 sees keys 0..2, row 2 sees all
        1 1 1 0 0
        1 1 1 1 0
        1 1 1 1 1
"""

from __future__ import annotations

import torch

import tim.kernels.torch_kernels as tk
from tim.kernels.merge import merge_attention_states
from tim.kernels.params import AttentionParams, check_offsets
from tim.kernels.reference import visible_mask

__all__ = ["TorchBackend", "SdpaBackend", "attend_varlen", "attend_block"]

_MATMUL_SCORES = 1 << 22  # score elements per matmul block (16 MiB in fp32)
_MASK_ELEMENTS = 1 << 24  # mask elements per flash-cpu block
_MIN_SPLIT_ROWS = 32  # below this a small mask is cheaper than a causal split
_MAX_BATCHED_ROWS = 16  # equal-shape sequences up to this many queries share one call


class TorchBackend:
    """Runs anywhere PyTorch runs; on CPU it uses ATen's fused flash-attention kernel."""

    name = "torch"

    def unavailable_reason(self, device: torch.device) -> str | None:
        if device.type == "cuda" and not torch.cuda.is_available():
            return "CUDA is not available"
        return None

    def unsupported_reason(self, q: torch.Tensor, params: AttentionParams) -> str | None:
        return None if q.is_floating_point() else f"dtype {q.dtype} is not floating point"

    def varlen(self, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, params):
        cu_q, cu_k = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
        check_offsets("cu_seqlens_q", cu_q, q.shape[0])
        check_offsets("cu_seqlens_k", cu_k, k.shape[0])
        return attend_varlen(q, k, v, cu_q, cu_k, params)

    def paged(self, *args, **kwargs):
        return None  # gathering by slots is as fast as anything we could do here


class SdpaBackend(TorchBackend):
    """``scaled_dot_product_attention`` per block with a boolean mask; the CUDA fallback.

    SDPA returns no LSE, so one extra ``q @ k.T`` pass computes it. Runs on any device (tests
    use it on CPU); ``auto`` picks it only on CUDA, after the flash-attn backends.
    """

    name = "sdpa"

    def unsupported_reason(self, q: torch.Tensor, params: AttentionParams) -> str | None:
        if params.softcap > 0:
            return "scaled_dot_product_attention has no softcap"
        return super().unsupported_reason(q, params)

    def varlen(self, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, params):
        cu_q, cu_k = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
        check_offsets("cu_seqlens_q", cu_q, q.shape[0])
        check_offsets("cu_seqlens_k", cu_k, k.shape[0])
        return attend_varlen(q, k, v, cu_q, cu_k, params, kernel="sdpa")


def attend_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_q: list[int],
    cu_k: list[int],
    params: AttentionParams,
    *,
    kernel: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Varlen attention with host-side offsets.

    ``kernel`` is ``"auto"`` (flash-cpu on CPU, else matmul), ``"matmul"`` or ``"sdpa"``.

    Shapes as in :func:`tim.kernels.varlen_attention`; returns ``(out, lse)``.
    """
    lse_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)  # every row is written below
    lse = torch.full((q.shape[1], q.shape[0]), float("-inf"), dtype=lse_dtype, device=q.device)
    if kernel == "auto":
        fused = params.softcap == 0 and q.device.type == "cpu" and tk.flash_cpu_op() is not None
        kernel = "flash-cpu" if fused else "matmul"
    b, num_seqs = 0, len(cu_q) - 1
    while b < num_seqs:
        q0, k0 = cu_q[b], cu_k[b]
        q_len, k_len = cu_q[b + 1] - q0, cu_k[b + 1] - k0
        run = 1
        if kernel == "flash-cpu" and 0 < q_len <= _MAX_BATCHED_ROWS and k_len > 0:
            run = _equal_full_run(cu_q, cu_k, b, params)
        if run > 1:  # e.g. a decode step of workers with equal views: one call for all
            o, run_lse = tk.flash_cpu_batch(
                q[q0 : q0 + run * q_len], k[k0 : k0 + run * k_len], v[k0 : k0 + run * k_len],
                run, params.softmax_scale,
            )
            out[q0 : q0 + run * q_len] = o
            lse[:, q0 : q0 + run * q_len] = run_lse
        else:
            _attend_sequence(q, k, v, out, lse, (q0, q_len, k0, k_len), params, kernel)
        b += run
    return out, lse


def _attend_sequence(q, k, v, out, lse, extent, params: AttentionParams, kernel: str) -> None:
    """Fill ``out``/``lse`` rows of one sequence, ``extent = (q0, q_len, k0, k_len)``."""
    q0, q_len, k0, k_len = extent
    if k_len == 0 or q_len == 0:
        out[q0 : q0 + q_len] = 0
        return
    left, right = params.bounds()
    if kernel != "flash-cpu":
        rows = max(1, _MATMUL_SCORES // (q.shape[1] * k_len))
    else:
        rows = min(2048, max(64, _MASK_ELEMENTS // (q.shape[1] // k.shape[1] * k_len)))
    # Row block [a, e) reaches keys [c, d); inside it the diagonal moves to off + a - c.
    #     keys:   0 ....... c ====== d ...... Lk
    #     row a:            [a+off-left, a+off+right]
    #     row e-1:                [e-1+off-left, e-1+off+right]
    off = k_len - q_len
    first = min(q_len, 0 if right is None else max(0, -off - right))  # rows before see none
    out[q0 : q0 + first] = 0
    for a in range(first, q_len, rows):
        e = min(q_len, a + rows)
        c = 0 if left is None else max(0, a + off - left)
        d = k_len if right is None else min(k_len, e - 1 + off + right + 1)
        o, blk_lse = attend_block(
            q[q0 + a : q0 + e], k[k0 + c : k0 + d], v[k0 + c : k0 + d], off + a - c, params,
            kernel=kernel,
        )
        out[q0 + a : q0 + e] = o
        lse[:, q0 + a : q0 + e] = blk_lse


def _is_full(q_len: int, k_len: int, off: int, params: AttentionParams) -> bool:
    """Every row of the block sees every key (so no mask is needed)."""
    left, right = params.bounds()
    return (left is None or left >= q_len - 1 + off) and (right is None or k_len - 1 - off <= right)


def _equal_full_run(cu_q: list[int], cu_k: list[int], b: int, params: AttentionParams) -> int:
    """How many sequences from ``b`` on share ``(Lq, Lk)`` and need no mask (at least 1)."""
    q_len, k_len = cu_q[b + 1] - cu_q[b], cu_k[b + 1] - cu_k[b]
    if not _is_full(q_len, k_len, k_len - q_len, params):
        return 1
    end = b + 1
    while end < len(cu_q) - 1 and (cu_q[end + 1] - cu_q[end], cu_k[end + 1] - cu_k[end]) == (
        q_len, k_len
    ):
        end += 1
    return end - b


def attend_block(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    off: int,
    params: AttentionParams,
    *,
    kernel: str = "flash-cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One block where every row sees at least one key, by ``kernel`` (see module docstring).

    Parameters
    ----------
    q : torch.Tensor
        ``(Lq, H, D)`` queries.
    k, v : torch.Tensor
        ``(Lk, Hkv, D)`` keys and values.
    off : int
        Query ``i`` sees key ``j`` when ``-left <= j - i - off <= right`` (``params.bounds()``).

    Returns
    -------
    ``(out (Lq, H, D) in q's dtype, lse (H, Lq))``.
    """
    q_len, k_len = q.shape[0], k.shape[0]
    left, right = params.bounds()
    full = _is_full(q_len, k_len, off, params)
    causal_square = left is None and right == 0 and off >= 0 and k_len == off + q_len
    if kernel == "flash-cpu" and not full and causal_square and q_len >= _MIN_SPLIT_ROWS:
        o_sq, lse_sq = tk.flash_cpu_causal(q, k[off:], v[off:], params.softmax_scale)
        if off == 0:
            return o_sq, lse_sq
        o_pre, lse_pre = tk.flash_cpu(q, k[:off], v[:off], None, params.softmax_scale)
        return merge_attention_states(o_pre, lse_pre, o_sq, lse_sq)
    mask = None if full else visible_mask(q_len, k_len, params, q.device, off=off)
    if kernel == "matmul":
        return tk.matmul_attention(q, k, v, mask, params)
    if kernel == "sdpa":
        return tk.sdpa_attention(q, k, v, mask, params)
    return tk.flash_cpu(q, k, v, mask, params.softmax_scale)
