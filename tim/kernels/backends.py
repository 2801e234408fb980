"""Attention backends: a small registry whose entries import their libraries only on first use.

==========  ====================================================  ==========================
name        what runs                                             where
==========  ====================================================  ==========================
flash       ``flash_attn.flash_attn_varlen_func`` (if installed)  CUDA, fp16/bf16
torch-cuda  ``torch.nn.attention.varlen.varlen_attn``             CUDA, fp16/bf16
sdpa        ``scaled_dot_product_attention`` per sequence         CUDA fallback (runs anywhere)
torch       plain PyTorch kernels; the CPU fast path              anywhere
==========  ====================================================  ==========================

``backend="auto"`` takes the first entry of :data:`AUTO_ORDER` for q's device that is
available and supports the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from tim.errors import UnsupportedModelError
from tim.kernels.params import AttentionParams

__all__ = [
    "AttentionBackend",
    "KernelPlan",
    "AUTO_ORDER",
    "backend_names",
    "describe",
    "get_backend",
    "resolve_backend",
]


class AttentionBackend(Protocol):
    """What a backend provides: plans whose runs return ``(out, lse)``; see
    ``varlen_attention``."""

    name: str

    def unavailable_reason(self, device: torch.device) -> str | None:
        """``None`` when it can run on ``device``, else why not (e.g. a missing package)."""
        ...

    def unsupported_reason(self, q: torch.Tensor, params: AttentionParams) -> str | None:
        """``None`` when it can run this call, else the missing feature (dtype, softcap, ...)."""
        ...

    def plan(
        self,
        q: torch.Tensor,
        num_kv_heads: int,
        cu_seqlens_q: torch.Tensor,
        cu_seqlens_k: torch.Tensor,
        max_seqlen_q: int,
        max_seqlen_k: int,
        params: AttentionParams,
    ) -> KernelPlan:
        """Plan one packed varlen call (see ``varlen_attention``); ``q`` is read for its shape,
        dtype and device only. The plan's ``run(q, k, v)`` serves every layer of a step."""
        ...

    def plan_paged(
        self,
        q: torch.Tensor,
        k_pages: torch.Tensor,
        cu_seqlens_q: torch.Tensor,
        block_table: torch.Tensor,
        seqlens_k: torch.Tensor,
        max_seqlen_q: int,
        max_seqlen_k: int,
        params: AttentionParams,
    ) -> KernelPlan | None:
        """A plan whose ``run(q, k_pages, v_pages)`` reads the pool in place, or ``None`` to let
        the caller gather keys."""
        ...


class KernelPlan(Protocol):
    """The host-side work of one packed attention call, done once and run once per layer.

    Offsets are checked, the backend chosen, blocks cut and masks built when the plan is made
    (FlashInfer's plan/run split). ``run`` then does tensor work only.
    """

    def run(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(out (total_q, H, D), lse (H, total_q) fp32)``."""
        ...


def _torch() -> AttentionBackend:
    from tim.kernels.torch_backend import TorchBackend

    return TorchBackend()


def _flash() -> AttentionBackend:
    from tim.kernels.cuda_backends import FlashBackend

    return FlashBackend()


def _torch_cuda() -> AttentionBackend:
    from tim.kernels.cuda_backends import TorchCudaBackend

    return TorchCudaBackend()


def _sdpa() -> AttentionBackend:
    from tim.kernels.torch_backend import SdpaBackend

    return SdpaBackend()


_FACTORIES: dict[str, Callable[[], AttentionBackend]] = {
    "torch": _torch,
    "flash": _flash,
    "torch-cuda": _torch_cuda,
    "sdpa": _sdpa,
}
_INSTANCES: dict[str, AttentionBackend] = {}

AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "cuda": ("flash", "torch-cuda", "sdpa", "torch"),
    "cpu": ("torch",),
}
"""Preference order of ``backend="auto"`` per device type; other devices use ``("torch",)``."""


def backend_names() -> tuple[str, ...]:
    """Names accepted by ``backend=`` besides ``"auto"``."""
    return tuple(_FACTORIES)


def get_backend(name: str) -> AttentionBackend:
    """The backend object registered under ``name`` (created once; imports nothing optional)."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown attention backend {name!r}; choose 'auto' or one of {backend_names()}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _FACTORIES[name]()
    return _INSTANCES[name]


def resolve_backend(name: str, q: torch.Tensor, params: AttentionParams) -> AttentionBackend:
    """Pick the backend for this call.

    ``"auto"`` walks :data:`AUTO_ORDER` for ``q.device`` and returns the first backend that is
    available and supports ``params``; an explicit name must do both or raises
    :class:`~tim.errors.UnsupportedModelError` naming what is missing.
    """
    if name != "auto":
        backend = get_backend(name)
        why = backend.unavailable_reason(q.device) or backend.unsupported_reason(q, params)
        if why is not None:
            raise UnsupportedModelError(f"attention backend {name!r} cannot run this call: {why}")
        return backend
    reasons = []
    for candidate in AUTO_ORDER.get(q.device.type, ("torch",)):
        backend = get_backend(candidate)
        why = backend.unavailable_reason(q.device) or backend.unsupported_reason(q, params)
        if why is None:
            return backend
        reasons.append(f"{candidate}: {why}")
    raise UnsupportedModelError("no attention backend can run this call: " + "; ".join(reasons))


def describe(device: str | torch.device | None = None) -> str:
    """Say which backend ``"auto"`` uses on ``device`` and why the others are not used.

    Parameters
    ----------
    device : str or torch.device, optional
        Defaults to ``"cuda"`` when CUDA is available, else ``"cpu"``.

    Examples
    --------
    >>> print(describe("cpu").splitlines()[0])
    auto on cpu -> torch
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    order = AUTO_ORDER.get(device.type, ("torch",))
    reasons = {name: get_backend(name).unavailable_reason(device) for name in backend_names()}
    chosen = next((name for name in order if reasons[name] is None), "none")
    lines = [
        f"  {name:<10} {'available' if why is None else 'unavailable: ' + why}"
        for name, why in reasons.items()
    ]
    head = f"auto on {device.type} -> {chosen}"
    note = "  (auto skips a backend that lacks a feature a call needs, e.g. softcap)"
    return "\n".join([head, *lines, note])
