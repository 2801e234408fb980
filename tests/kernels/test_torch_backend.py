"""The torch backend's kernels and block planning, each against dense float64 SDPA."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tim.kernels.torch_backend as tb
import tim.kernels.torch_kernels as tk
from tim.kernels import AttentionParams, varlen_attention


def check(kt, p, *, causal, window=(-1, -1), softcap=0.0, kernel="auto", atol=2e-5):
    params = AttentionParams(causal, p.q.shape[2] ** -0.5, window, softcap)
    out, lse = tb.attend_varlen(p.q, p.k, p.v, p.cu_q.tolist(), p.cu_k.tolist(), params,
                                kernel=kernel)
    ref_out, ref_lse = kt.dense_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, causal=causal,
                                          window=window, softcap=softcap)
    torch.testing.assert_close(out.double(), ref_out, atol=atol, rtol=0)
    kt.assert_lse_close(lse, ref_lse, atol=atol)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_matmul_kernel(kt, data):
    case = data.draw(kt.attention_cases(max_len=30))
    p = kt.make_problem(case.seed, case.q_lens, case.k_lens, case.num_heads,
                        case.num_kv_heads, case.dim)
    check(kt, p, causal=case.causal, window=case.window, softcap=case.softcap, kernel="matmul")


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_sdpa_backend(kt, data):
    case = data.draw(kt.attention_cases(max_len=30, softcap=False))
    p = kt.make_problem(case.seed, case.q_lens, case.k_lens, case.num_heads,
                        case.num_kv_heads, case.dim)
    out, lse = varlen_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, 30, 30, causal=case.causal,
                                window_size=case.window, return_lse=True, backend="sdpa")
    ref_out, ref_lse = kt.dense_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, causal=case.causal,
                                          window=case.window)
    torch.testing.assert_close(out.double(), ref_out, atol=2e-5, rtol=0)
    kt.assert_lse_close(lse, ref_lse, atol=2e-5)


@pytest.mark.parametrize("kernel", ["auto", "matmul", "sdpa"])
@pytest.mark.parametrize(("causal", "window"), [(True, (-1, -1)), (True, (20, -1)),
                                                (False, (-1, -1)), (False, (9, 3))])
def test_many_small_blocks(kt, monkeypatch, kernel, causal, window):
    # tiny budgets cut each sequence into many row blocks with trimmed key ranges
    monkeypatch.setattr(tb, "_MASK_ELEMENTS", 8 * 200)
    monkeypatch.setattr(tb, "_MATMUL_SCORES", 4 * 7 * 200)
    p = kt.make_problem(7, [150, 9, 0, 40], [150, 200, 3, 17], 4, 2, 16)
    check(kt, p, causal=causal, window=window, kernel=kernel)


def test_causal_prefill_takes_the_split_path(kt, monkeypatch):
    calls = []
    real = tk.flash_cpu_causal
    monkeypatch.setattr(tk, "flash_cpu_causal", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(tb, "_MASK_ELEMENTS", 2 * 64 * 300)  # 64-row blocks
    # a prefill (square), and a chunked prefill: 120 new queries after 180 cached keys
    p = kt.make_problem(11, [200, 120], [200, 300], 8, 4, 32)
    check(kt, p, causal=True)
    assert len(calls) >= 4


def test_bfloat16_within_twice_low_precision_error(kt):
    p64 = kt.make_problem(5, [33, 1], [33, 70], 8, 2, 64, dtype=torch.float64)
    ref, _ = kt.dense_attention(p64.q, p64.k, p64.v, p64.cu_q, p64.cu_k)
    bf = [x.to(torch.bfloat16) for x in (p64.q, p64.k, p64.v)]
    out = varlen_attention(*bf, p64.cu_q, p64.cu_k, 33, 70)
    assert out.dtype == torch.bfloat16
    # the same computation done naively in bfloat16: scores, softmax and product in bf16
    naive = []
    cq, ck = p64.cu_q.tolist(), p64.cu_k.tolist()
    for q0, q1, k0, k1 in zip(cq[:-1], cq[1:], ck[:-1], ck[1:], strict=True):
        q, k, v = bf[0][q0:q1], bf[1][k0:k1], bf[2][k0:k1]
        k, v = k.repeat_interleave(4, 1), v.repeat_interleave(4, 1)
        mask = kt.oracle_mask(q.shape[0], k.shape[0], True, (-1, -1))
        s = torch.einsum("qhd,khd->hqk", q, k) * 64**-0.5
        s = s.masked_fill(~mask, float("-inf")).softmax(-1)
        naive.append(torch.einsum("hqk,khd->qhd", s, v))
    naive_err = (torch.cat(naive).double() - ref).abs().max()
    assert (out.double() - ref).abs().max() <= 2 * naive_err


@pytest.mark.parametrize("window", [(-1, -1), (3, -1)])
def test_equal_decode_sequences_share_one_call(kt, monkeypatch, window):
    calls = []
    real = tk.flash_cpu_batch
    monkeypatch.setattr(tk, "flash_cpu_batch", lambda *a: calls.append(a[3]) or real(*a))
    # runs: 3 x (1 query, 20 keys), then (1, 7), then 2 x (2 queries, 9 keys), then empty
    q_lens, k_lens = [1, 1, 1, 1, 2, 2, 0], [20, 20, 20, 7, 9, 9, 4]
    p = kt.make_problem(13, q_lens, k_lens, 8, 2, 16)
    check(kt, p, causal=False, window=window)
    assert calls == ([3, 2] if window == (-1, -1) else [])  # a window needs a mask: per sequence
    calls.clear()
    check(kt, p, causal=True)  # causal: only the 1-query sequences see all their keys
    assert calls == [3]
