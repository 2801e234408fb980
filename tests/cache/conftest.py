"""Independent references for the cache tests: RoPE, rope_shift, store_kv, gather_kv.

``tim.cache`` calls ``tim.kernels.{store_kv, gather_kv, rope_shift}``. Until (or unless)
``tim.kernels`` provides them, the autouse fixture installs these references so the cache
can be tested on its own; once it does, the tests run against the real kernels and these
stay the oracle.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import tim.kernels


def rope(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """HF-convention RoPE in float64: x (T, H, D), positions (T,) int; first 2*len(inv_freq)
    dims rotated with rotate_half, the rest passed through."""
    x = x.double()
    rot = 2 * inv_freq.numel()
    freqs = positions.double()[:, None] * inv_freq.double()[None, :]  # (T, rot/2)
    emb = torch.cat([freqs, freqs], dim=-1)[:, None, :]  # (T, 1, rot)
    head, tail = x[..., :rot], x[..., rot:]
    half = rot // 2
    rotated = torch.cat([-head[..., half:], head[..., :half]], dim=-1)
    return torch.cat([head * emb.cos() + rotated * emb.sin(), tail], dim=-1)


def ref_rope_shift(k: torch.Tensor, delta, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotate post-RoPE keys (T, Hkv, D) by delta (int or (T,) int64) positions, fp32 math."""
    num = k.shape[0]
    deltas = torch.as_tensor(delta, dtype=torch.int64).expand(num)
    x = k.float()
    rot = 2 * inv_freq.numel()
    freqs = deltas.float()[:, None] * inv_freq.float()[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)[:, None, :]
    head, tail = x[..., :rot], x[..., rot:]
    half = rot // 2
    rotated = torch.cat([-head[..., half:], head[..., :half]], dim=-1)
    return torch.cat([head * emb.cos() + rotated * emb.sin(), tail], dim=-1).to(k.dtype)


def ref_store_kv(k_pages, v_pages, k, v, slots) -> None:
    num_pages, page_size, heads, dim = k_pages.shape
    k_pages.view(num_pages * page_size, heads, dim)[slots] = k.to(k_pages.dtype)
    v_pages.view(num_pages * page_size, heads, dim)[slots] = v.to(v_pages.dtype)


def ref_gather_kv(k_pages, v_pages, slots):
    num_pages, page_size, heads, dim = k_pages.shape
    return (
        k_pages.reshape(num_pages * page_size, heads, dim)[slots],
        v_pages.reshape(num_pages * page_size, heads, dim)[slots],
    )


REFERENCE = SimpleNamespace(
    rope=rope, rope_shift=ref_rope_shift, store_kv=ref_store_kv, gather_kv=ref_gather_kv
)


@pytest.fixture(autouse=True)
def kernels_or_reference(monkeypatch):
    """Use tim.kernels' functions where they exist, the references above where not."""
    for name in ("store_kv", "gather_kv", "rope_shift"):
        if not hasattr(tim.kernels, name):
            monkeypatch.setattr(tim.kernels, name, getattr(REFERENCE, name), raising=False)


@pytest.fixture
def ref() -> SimpleNamespace:
    return REFERENCE
