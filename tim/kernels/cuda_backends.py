"""CUDA backends built on FlashAttention-2 kernels. The only file that imports ``flash_attn``.

Both import their library on first use, check signatures at run time, and hand back the LSE in
tim's convention: flash-attn reports a row with no visible key as ``lse = +inf``; here it
becomes ``-inf`` (its output is already 0).
"""

from __future__ import annotations

import inspect
from functools import cache

import torch

from tim.kernels.params import AttentionParams

__all__ = ["CudaPlan", "FlashBackend", "TorchCudaBackend"]

_HALF = (torch.float16, torch.bfloat16)
_NATIVE_PAGE = 256  # flash-attn's paged kernels need page_size % 256 == 0


@cache
def _flash_varlen():
    """``flash_attn.flash_attn_varlen_func`` and its parameter names, or the import error text."""
    try:
        from flash_attn import flash_attn_varlen_func
    except Exception as exc:  # ImportError, or a broken CUDA build raising at import
        return None, f"flash_attn does not import ({type(exc).__name__}: {exc})"
    return flash_attn_varlen_func, frozenset(inspect.signature(flash_attn_varlen_func).parameters)


@cache
def _torch_varlen():
    try:
        from torch.nn.attention import varlen
    except ImportError:
        return None, "this torch has no torch.nn.attention.varlen"
    fn = getattr(varlen, "varlen_attn", None)
    if fn is None:
        return None, "this torch has no torch.nn.attention.varlen.varlen_attn"
    return fn, frozenset(inspect.signature(fn).parameters)


def _common_unsupported(q: torch.Tensor, params: AttentionParams) -> str | None:
    if q.dtype not in _HALF:
        return f"FlashAttention kernels need fp16/bf16, got {q.dtype}"
    if q.shape[-1] > 256:
        return f"FlashAttention kernels need head_dim <= 256, got {q.shape[-1]}"
    return None


def _fix_lse(lse: torch.Tensor, num_heads: int, total_q: int) -> torch.Tensor:
    if lse.shape != (num_heads, total_q) and lse.shape == (total_q, num_heads):
        lse = lse.t()  # some builds document (T, H)
    lse = lse.float()
    return lse.masked_fill_(lse == float("inf"), float("-inf"))


def _empty(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lse = torch.full((q.shape[1], 0), float("-inf"), dtype=torch.float32, device=q.device)
    return torch.zeros_like(q), lse


def _cu_from_lens(seqlens_k: torch.Tensor) -> torch.Tensor:
    cu = torch.zeros(seqlens_k.shape[0] + 1, dtype=torch.int32, device=seqlens_k.device)
    torch.cumsum(seqlens_k, 0, dtype=torch.int32, out=cu[1:])
    return cu


class CudaPlan:
    """One packed call of a flash-attn kernel: offsets and launch sizes, fixed for a step.

    ``run(q, k, v)`` takes keys and values packed ``(total_k, Hkv, D)``, or the pool's pages
    ``(P, S, Hkv, D)`` when the plan holds a block table.
    """

    __slots__ = ("call", "cu_q", "cu_k", "max_q", "max_k", "params", "extra")

    def __init__(self, call, cu_q, cu_k, max_q, max_k, params, **extra) -> None:
        self.call, self.cu_q, self.cu_k, self.max_q, self.max_k = call, cu_q, cu_k, max_q, max_k
        self.params, self.extra = params, extra

    def run(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
        if q.shape[0] == 0:
            return _empty(q)
        return self.call(q, k, v, self.cu_q, self.cu_k, self.max_q, self.max_k, self.params,
                         **self.extra)


class _FlashFamily:
    """What both flash-attn backends share: a plan is the kernel's arguments, kept."""

    def _call(self, q, k, v, cu_q, cu_k, max_q, max_k, params, **extra):
        raise NotImplementedError

    def plan(self, q, num_kv_heads, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
             params) -> CudaPlan:
        return CudaPlan(self._call, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, params)


class FlashBackend(_FlashFamily):
    """``flash_attn.flash_attn_varlen_func`` (FlashAttention-2, installed separately)."""

    name = "flash"

    def unavailable_reason(self, device: torch.device) -> str | None:
        if device.type != "cuda" or not torch.cuda.is_available():
            return "needs a CUDA device"
        return _flash_varlen()[1] if _flash_varlen()[0] is None else None

    def unsupported_reason(self, q: torch.Tensor, params: AttentionParams) -> str | None:
        why = _common_unsupported(q, params)
        if why is None and params.softcap > 0 and "softcap" not in _flash_varlen()[1]:
            why = "this flash_attn has no softcap (needs >= 2.6)"
        return why

    def _call(self, q, k, v, cu_q, cu_k, max_q, max_k, params, **extra):
        fn, names = _flash_varlen()
        kwargs = dict(
            dropout_p=0.0,
            softmax_scale=params.softmax_scale,
            causal=params.causal,
            window_size=params.flash_window(),
            return_attn_probs=True,
            **extra,
        )
        if "softcap" in names:
            kwargs["softcap"] = params.softcap
        out, lse, *_ = fn(q, k, v, cu_q, cu_k, max_q, max_k, **kwargs)
        return out, _fix_lse(lse, q.shape[1], q.shape[0])

    def plan_paged(self, q, k_pages, cu_seqlens_q, block_table, seqlens_k, max_q, max_k,
                   params) -> CudaPlan | None:
        if k_pages.shape[1] % _NATIVE_PAGE or "block_table" not in _flash_varlen()[1]:
            return None
        return CudaPlan(self._call, cu_seqlens_q, _cu_from_lens(seqlens_k), max_q, max_k, params,
                        block_table=block_table)


class TorchCudaBackend(_FlashFamily):
    """PyTorch's built-in FlashAttention varlen, ``torch.nn.attention.varlen.varlen_attn``."""

    name = "torch-cuda"

    def unavailable_reason(self, device: torch.device) -> str | None:
        if device.type != "cuda" or not torch.cuda.is_available():
            return "needs a CUDA device"
        return _torch_varlen()[1] if _torch_varlen()[0] is None else None

    def unsupported_reason(self, q: torch.Tensor, params: AttentionParams) -> str | None:
        why = _common_unsupported(q, params)
        names = _torch_varlen()[1]
        if why is None and params.softcap > 0:
            why = "varlen_attn has no softcap"
        if why is None and params.window_size != (-1, -1) and "window_size" not in names:
            why = "this torch's varlen_attn has no window_size"
        if why is None and "return_aux" not in names:
            why = "this torch's varlen_attn cannot return the LSE"
        return why

    def _call(self, q, k, v, cu_q, cu_k, max_q, max_k, params, **extra):
        from torch.nn.attention.varlen import AuxRequest

        fn, names = _torch_varlen()
        dim = q.shape[-1]
        pad = (-dim) % 8  # kernels want head_dim % 8 == 0; zero columns change no dot product
        if pad:
            q, k, v = (torch.nn.functional.pad(x, (0, pad)) for x in (q, k, v))
        kwargs = dict(scale=params.softmax_scale, return_aux=AuxRequest(lse=True), **extra)
        if "window_size" in names:
            kwargs["window_size"] = params.flash_window()  # (-1, 0) is how it spells causal
        if "is_causal" in names:
            kwargs["is_causal"] = params.causal
        if "enable_gqa" in names:
            kwargs["enable_gqa"] = q.shape[1] != k.shape[-2]
        out, lse = fn(q, k, v, cu_q, cu_k, max_q, max_k, **kwargs)
        return out[..., :dim], _fix_lse(lse, q.shape[1], q.shape[0])

    def plan_paged(self, q, k_pages, cu_seqlens_q, block_table, seqlens_k, max_q, max_k,
                   params) -> CudaPlan | None:
        names = _torch_varlen()[1]
        if k_pages.shape[1] % _NATIVE_PAGE or not {"block_table", "seqused_k"} <= names:
            return None
        return CudaPlan(self._call, cu_seqlens_q, _cu_from_lens(seqlens_k), max_q, max_k, params,
                        block_table=block_table, seqused_k=seqlens_k)
