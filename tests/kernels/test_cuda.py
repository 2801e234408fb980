"""CUDA backends against the float64 oracle (DESIGN O5): on GPU each backend's error must be
at most twice the error of the same attention computed naively in the low-precision dtype.

Everything here is marked ``cuda`` and skips itself without a GPU; a backend that is not
installed (flash-attn) or lacks a feature (softcap on torch-cuda) skips its own cases.
"""

from __future__ import annotations

import pytest
import torch

from tim.kernels import (
    AttentionParams,
    cascade_attention,
    paged_attention,
    varlen_attention,
)
from tim.kernels.backends import get_backend, resolve_backend

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

BACKENDS = ["flash", "torch-cuda", "sdpa", "torch"]
DTYPES = [torch.float16, torch.bfloat16]
CASES = [  # (q_lens, k_lens, causal, window, softcap)
    ([97, 1, 0, 64], [97, 300, 9, 64], True, (-1, -1), 0.0),
    ([5, 40, 128], [200, 40, 1000], True, (32, -1), 0.0),
    ([33, 7], [33, 90], False, (-1, -1), 0.0),
    ([64, 3], [64, 77], False, (8, 8), 0.0),
    ([50, 1], [80, 600], True, (-1, -1), 30.0),
]


def skip_unless_runs(name: str, q: torch.Tensor, params: AttentionParams) -> None:
    backend = get_backend(name)
    why = backend.unavailable_reason(q.device) or backend.unsupported_reason(q, params)
    if why is not None:
        pytest.skip(f"{name}: {why}")


def naive_low_precision(q, k, v, cu_q, cu_k, causal, window, softcap, kt):
    """The same attention with scores, softmax and product all in q's dtype."""
    group = q.shape[1] // k.shape[1]
    outs = []
    for b in range(len(cu_q) - 1):
        qb = q[cu_q[b]:cu_q[b + 1]]
        kb = k[cu_k[b]:cu_k[b + 1]].repeat_interleave(group, 1)
        vb = v[cu_k[b]:cu_k[b + 1]].repeat_interleave(group, 1)
        mask = kt.oracle_mask(qb.shape[0], kb.shape[0], causal, window).to(q.device)
        s = torch.einsum("qhd,khd->hqk", qb, kb) * q.shape[2] ** -0.5
        if softcap:
            s = softcap * torch.tanh(s / softcap)
        p = s.masked_fill(~mask, float("-inf")).softmax(-1).nan_to_num(0.0)
        outs.append(torch.einsum("hqk,khd->qhd", p, vb))
    return torch.cat(outs)


def cuda_problem(kt, q_lens, k_lens, group, dim, dtype, seed=0):
    p = kt.make_problem(seed, q_lens, k_lens, 2 * group, 2, dim, dtype=torch.float64)
    for name in ("q", "k", "v"):  # round once, so the oracle sees the same inputs
        setattr(p, name, getattr(p, name).to(dtype).cuda())
    p.cu_q_dev, p.cu_k_dev = p.cu_q.cuda(), p.cu_k.cuda()
    return p


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("group", "dim"), [(1, 64), (4, 128), (8, 59)])
@pytest.mark.parametrize("case", CASES)
def test_varlen_within_twice_low_precision_error(kt, backend, dtype, group, dim, case):
    q_lens, k_lens, causal, window, softcap = case
    p = cuda_problem(kt, q_lens, k_lens, group, dim, dtype)
    skip_unless_runs(backend, p.q, AttentionParams(causal, dim**-0.5, window, softcap))
    out, lse = varlen_attention(p.q, p.k, p.v, p.cu_q_dev, p.cu_k_dev, max(q_lens),
                                max(k_lens), causal=causal, window_size=window,
                                softcap=softcap, return_lse=True, backend=backend)
    ref, ref_lse = kt.dense_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, causal=causal,
                                      window=window, softcap=softcap)
    naive = naive_low_precision(p.q, p.k, p.v, p.cu_q.tolist(), p.cu_k.tolist(), causal,
                                window, softcap, kt)
    err = (out.double().cpu() - ref).abs().max().item()
    naive_err = (naive.double().cpu() - ref).abs().max().item()
    assert out.dtype == dtype and lse.dtype == torch.float32
    assert err <= 2 * naive_err + 1e-6, (err, naive_err)
    kt.assert_lse_close(lse.cpu(), ref_lse, atol=1e-2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("page_size", [1, 256])
def test_paged_block_table_on_cuda(kt, backend, page_size):
    dtype, group, dim = torch.bfloat16, 4, 128
    k_lens, q_lens = [300, 700, 1], [1, 16, 1]
    gen = torch.Generator().manual_seed(1)
    pages_per_seq = [-(-n // page_size) for n in k_lens]
    num_pages = sum(pages_per_seq) + 3
    k_pages = torch.randn(num_pages, page_size, 2, dim, generator=gen).to(dtype).cuda()
    v_pages = torch.randn(num_pages, page_size, 2, dim, generator=gen).to(dtype).cuda()
    perm = torch.randperm(num_pages, generator=gen)
    table = torch.zeros(len(k_lens), max(pages_per_seq), dtype=torch.int32)
    start = 0
    for b, n in enumerate(pages_per_seq):
        table[b, :n] = perm[start:start + n]
        start += n
    q = torch.randn(sum(q_lens), 2 * group, dim, generator=gen).to(dtype).cuda()
    skip_unless_runs(backend, q, AttentionParams(True, dim**-0.5))
    out = paged_attention(q, k_pages, v_pages, kt.cu(q_lens).cuda(), table.cuda(),
                          torch.tensor(k_lens, dtype=torch.int32).cuda(), backend=backend)
    slots = torch.cat([table[b].long().repeat_interleave(page_size)[:n] * page_size
                       + torch.arange(n) % page_size for b, n in enumerate(k_lens)])
    flat_k = k_pages.reshape(-1, 2, dim).cpu()[slots]
    flat_v = v_pages.reshape(-1, 2, dim).cpu()[slots]
    ref, _ = kt.dense_attention(q.cpu(), flat_k, flat_v, kt.cu(q_lens), kt.cu(k_lens))
    naive = naive_low_precision(q, flat_k.cuda(), flat_v.cuda(), kt.cu(q_lens).tolist(),
                                kt.cu(k_lens).tolist(), True, (-1, -1), 0.0, kt)
    naive_err = (naive.double().cpu() - ref).abs().max().item()
    assert (out.double().cpu() - ref).abs().max().item() <= 2 * naive_err + 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_cascade_on_cuda(kt, backend):
    dtype, group, dim, workers = torch.float16, 4, 128, 8
    gen = torch.Generator().manual_seed(2)
    rand = lambda *s: torch.randn(*s, generator=gen).to(dtype).cuda()  # noqa: E731
    pk, pv = rand(1024, 2, dim), rand(1024, 2, dim)
    sk, sv = rand(workers * 64, 2, dim), rand(workers * 64, 2, dim)
    q = rand(workers, 2 * group, dim)
    skip_unless_runs(backend, q, AttentionParams(True, dim**-0.5))
    cu_q, cu_s = kt.cu([1] * workers), kt.cu([64] * workers)
    out = cascade_attention(q, pk, pv, sk, sv, cu_q.cuda(), cu_s.cuda(), backend=backend)
    ks = torch.cat([torch.cat([pk, sk[64 * b:64 * (b + 1)]]) for b in range(workers)])
    vs = torch.cat([torch.cat([pv, sv[64 * b:64 * (b + 1)]]) for b in range(workers)])
    cu_k = kt.cu([1024 + 64] * workers)
    ref, _ = kt.dense_attention(q.cpu(), ks.cpu(), vs.cpu(), cu_q, cu_k)
    naive = naive_low_precision(q, ks, vs, cu_q.tolist(), cu_k.tolist(), True, (-1, -1), 0.0,
                                kt)
    naive_err = (naive.double().cpu() - ref).abs().max().item()
    assert (out.double().cpu() - ref).abs().max().item() <= 2 * naive_err + 1e-6


def test_auto_prefers_flash_kernels_for_half_precision():
    q = torch.randn(4, 4, 64, device="cuda", dtype=torch.bfloat16)
    chosen = resolve_backend("auto", q, AttentionParams()).name
    flash_ok = get_backend("flash").unavailable_reason(q.device) is None
    assert chosen == ("flash" if flash_ok else "torch-cuda")
    q32 = q.float()
    assert resolve_backend("auto", q32, AttentionParams()).name == "sdpa"
