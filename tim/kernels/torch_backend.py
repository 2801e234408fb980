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

All of that is decided from the offsets alone, so it is done once per packed call in
:func:`plan_blocks` (cutting blocks, choosing kernels, building masks) and the resulting
:class:`TorchPlan` runs every layer of a step with tensor work only.

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

__all__ = ["TorchBackend", "SdpaBackend", "TorchPlan", "plan_blocks", "attend_varlen"]

_MATMUL_SCORES = 1 << 22  # score elements per matmul block (16 MiB in fp32)
_MASK_ELEMENTS = 1 << 24  # mask elements per flash-cpu block
_MIN_SPLIT_ROWS = 32  # below this a small mask is cheaper than a causal split
_MAX_BATCHED_ROWS = 16  # equal-shape sequences up to this many queries share one call


class TorchBackend:
    """Runs anywhere PyTorch runs; on CPU it uses ATen's fused flash-attention kernel."""

    name = "torch"
    kernel = "auto"

    def unavailable_reason(self, device: torch.device) -> str | None:
        if device.type == "cuda" and not torch.cuda.is_available():
            return "CUDA is not available"
        return None

    def unsupported_reason(self, q: torch.Tensor, params: AttentionParams) -> str | None:
        return None if q.is_floating_point() else f"dtype {q.dtype} is not floating point"

    def plan(self, q, num_kv_heads, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
             params) -> TorchPlan:
        return plan_blocks(q, num_kv_heads, cu_seqlens_q.tolist(), cu_seqlens_k.tolist(),
                           params, kernel=self.kernel)

    def plan_paged(self, *args, **kwargs) -> None:
        return None  # gathering by slots is as fast as anything we could do here


class SdpaBackend(TorchBackend):
    """``scaled_dot_product_attention`` per block with a boolean mask; the CUDA fallback.

    SDPA returns no LSE, so one extra ``q @ k.T`` pass computes it. Runs on any device (tests
    use it on CPU); ``auto`` picks it only on CUDA, after the flash-attn backends.
    """

    name = "sdpa"
    kernel = "sdpa"

    def unsupported_reason(self, q: torch.Tensor, params: AttentionParams) -> str | None:
        if params.softcap > 0:
            return "scaled_dot_product_attention has no softcap"
        return super().unsupported_reason(q, params)


class TorchPlan:
    """One packed call of the ``torch`` backend, planned: a list of block operations.

    Each operation is a tuple whose first entry names it::

        ("zero", q0, q1)                      rows that see no key: out 0, lse -inf
        ("batch", q0, q1, k0, k1, n)          n equal full sequences, one fused call
        ("split", q0, q1, k0, k1, off)        causal square after `off` fully visible keys
        (kernel, q0, q1, k0, k1, mask)        one block; mask None (all visible), a bool
                                              (Lq, Lk) mask, or for flash-cpu a float bias

    :meth:`run` does only tensor work, so one plan serves every layer of a step.
    """

    __slots__ = ("ops", "total_q", "total_k", "scale", "params")

    def __init__(self, ops: list[tuple], total_q: int, total_k: int,
                 params: AttentionParams) -> None:
        self.ops, self.total_q, self.total_k = ops, total_q, total_k
        self.params, self.scale = params, params.softmax_scale

    def run(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """``q (total_q, H, D)``, ``k, v (total_k, Hkv, D)`` -> ``(out (total_q, H, D),
        lse (H, total_q))``."""
        if q.shape[0] != self.total_q:
            raise ValueError(f"this plan is for {self.total_q} queries, got q {tuple(q.shape)}")
        if k.shape[0] < self.total_k:
            raise ValueError(
                f"cu_seqlens_k must end <= {k.shape[0]} (the rows of k), got {self.total_k}"
            )
        if len(self.ops) == 1 and self.ops[0][0] != "zero":  # one block covers every row
            return self._run_op(self.ops[0], q, k, v)
        lse_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device)  # every row is written below
        lse = torch.full((q.shape[1], q.shape[0]), float("-inf"), dtype=lse_dtype,
                         device=q.device)
        for op in self.ops:
            q0, q1 = op[1], op[2]
            if op[0] == "zero":
                out[q0:q1] = 0
            else:
                out[q0:q1], lse[:, q0:q1] = self._run_op(op, q, k, v)
        return out, lse

    def _run_op(self, op: tuple, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        kind, q0, q1, k0, k1, extra = op
        if q0 == 0 and q1 == q.shape[0] and k0 == 0 and k1 == k.shape[0]:
            qb, kb, vb = q, k, v  # the whole call is one block
        else:
            qb, kb, vb = q[q0:q1], k[k0:k1], v[k0:k1]
        if kind == "batch":
            return tk.flash_cpu_batch(qb, kb, vb, extra, self.scale)
        if kind == "split":
            o, lse = tk.flash_cpu_causal(qb, kb[extra:], vb[extra:], self.scale)
            if not extra:
                return o, lse
            o_pre, lse_pre = tk.flash_cpu(qb, kb[:extra], vb[:extra], None, self.scale)
            return merge_attention_states(o_pre, lse_pre, o, lse)
        if kind == "flash-cpu":
            return tk.flash_cpu(qb, kb, vb, extra, self.scale)
        if kind == "matmul":
            return tk.matmul_attention(qb, kb, vb, extra, self.params)
        return tk.sdpa_attention(qb, kb, vb, extra, self.params)


def plan_blocks(
    q: torch.Tensor,
    num_kv_heads: int,
    cu_q: list[int],
    cu_k: list[int],
    params: AttentionParams,
    *,
    kernel: str = "auto",
) -> TorchPlan:
    """Cut a packed call into block operations (see :class:`TorchPlan`).

    ``q`` is read for its shape, dtype and device only. ``kernel`` is ``"auto"`` (flash-cpu on
    CPU, else matmul), ``"matmul"`` or ``"sdpa"``. Offsets are host lists, checked here.
    """
    check_offsets("cu_seqlens_q", cu_q, q.shape[0])
    check_offsets("cu_seqlens_k", cu_k, cu_k[-1])
    if kernel == "auto":
        fused = params.softcap == 0 and q.device.type == "cpu" and tk.flash_cpu_op() is not None
        kernel = "flash-cpu" if fused else "matmul"
    ops: list[tuple] = []
    group = q.shape[1] // num_kv_heads
    b, num_seqs = 0, len(cu_q) - 1
    while b < num_seqs:
        q0, k0 = cu_q[b], cu_k[b]
        q_len, k_len = cu_q[b + 1] - q0, cu_k[b + 1] - k0
        run = 1
        if kernel == "flash-cpu" and 0 < q_len <= _MAX_BATCHED_ROWS and k_len > 0:
            run = _equal_full_run(cu_q, cu_k, b, params)
        if run > 1:  # e.g. a decode step of workers with equal views: one call for all
            ops.append(("batch", q0, q0 + run * q_len, k0, k0 + run * k_len, run))
        else:
            ops.extend(_plan_sequence((q0, q_len, k0, k_len), params, kernel, q, group))
        b += run
    return TorchPlan(ops, q.shape[0], cu_k[-1], params)


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
    """Plan and run one call: varlen attention with host-side offsets, returning
    ``(out, lse)`` (shapes as in :func:`tim.kernels.varlen_attention`)."""
    return plan_blocks(q, k.shape[1], cu_q, cu_k, params, kernel=kernel).run(q, k, v)


def _plan_sequence(extent, params: AttentionParams, kernel: str, q: torch.Tensor,
                   group: int) -> list[tuple]:
    """The operations of one sequence, ``extent = (q0, q_len, k0, k_len)``."""
    q0, q_len, k0, k_len = extent
    if k_len == 0 or q_len == 0:
        return [("zero", q0, q0 + q_len, 0, 0, None)]
    left, right = params.bounds()
    if kernel != "flash-cpu":
        rows = max(1, _MATMUL_SCORES // (q.shape[1] * k_len))
    else:
        rows = min(2048, max(64, _MASK_ELEMENTS // (group * k_len)))
    # Row block [a, e) reaches keys [c, d); inside it the diagonal moves to off + a - c.
    #     keys:   0 ....... c ====== d ...... Lk
    #     row a:            [a+off-left, a+off+right]
    #     row e-1:                [e-1+off-left, e-1+off+right]
    off = k_len - q_len
    first = min(q_len, 0 if right is None else max(0, -off - right))  # rows before see none
    ops = [("zero", q0, q0 + first, 0, 0, None)] if first else []
    for a in range(first, q_len, rows):
        e = min(q_len, a + rows)
        c = 0 if left is None else max(0, a + off - left)
        d = k_len if right is None else min(k_len, e - 1 + off + right + 1)
        ops.append(_plan_block((q0 + a, q0 + e, k0 + c, k0 + d), off + a - c, params, kernel,
                               q, group))
    return ops


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


def _plan_block(bounds: tuple[int, int, int, int], off: int, params: AttentionParams,
                kernel: str, q: torch.Tensor, group: int) -> tuple:
    """One block ``q[q0:q1]`` over ``k[k0:k1]`` where every row sees at least one key; query
    ``i`` sees key ``j`` when ``-left <= j - i - off <= right`` (``params.bounds()``)."""
    q0, q1, k0, k1 = bounds
    q_len, k_len = q1 - q0, k1 - k0
    left, right = params.bounds()
    full = _is_full(q_len, k_len, off, params)
    causal_square = left is None and right == 0 and off >= 0 and k_len == off + q_len
    if kernel == "flash-cpu" and not full and causal_square and q_len >= _MIN_SPLIT_ROWS:
        return ("split", *bounds, off)
    mask = None if full else visible_mask(q_len, k_len, params, q.device, off=off)
    if kernel == "flash-cpu" and mask is not None:
        mask = tk.flash_bias(mask, group, q.dtype)  # (G*Lq, Lk)
    return (kernel, *bounds, mask)
