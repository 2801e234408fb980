"""The reference (the spec) against dense float64 SDPA, and its mask pictures."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.kernels import AttentionParams, reference_attention
from tim.kernels.reference import visible_mask


def test_causal_mask_pictures_match_flash_attn_docs():
    # flash_attn_varlen_func's docstring: seqlen_q = 2, seqlen_k = 5 and the reverse
    causal = AttentionParams(causal=True)
    assert visible_mask(2, 5, causal).int().tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert visible_mask(5, 2, causal).int().tolist() == [[0, 0], [0, 0], [0, 0], [1, 0], [1, 1]]


def test_window_mask_picture():
    local = AttentionParams(causal=False, window_size=(1, 0))
    assert visible_mask(3, 4, local).int().tolist() == [
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 1],
    ]


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_reference_matches_dense_sdpa(kt, data):
    case = data.draw(kt.attention_cases(max_len=30))
    p = kt.make_problem(case.seed, case.q_lens, case.k_lens, case.num_heads,
                        case.num_kv_heads, case.dim, dtype=torch.float64)
    params = AttentionParams(case.causal, case.dim**-0.5, case.window, case.softcap)
    for got, want in zip(visible_masks(p, params), oracle_masks(kt, p, case), strict=True):
        assert torch.equal(got, want)
    out, lse = reference_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, params)
    ref_out, ref_lse = kt.dense_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, causal=case.causal,
                                          window=case.window, softcap=case.softcap)
    torch.testing.assert_close(out, ref_out, atol=1e-12, rtol=0)
    kt.assert_lse_close(lse, ref_lse, atol=1e-12)


def visible_masks(p, params):
    return [visible_mask(a, b, params) for a, b in zip(p.q_lens, p.k_lens, strict=True)]


def oracle_masks(kt, p, case):
    return [kt.oracle_mask(a, b, case.causal, case.window)
            for a, b in zip(p.q_lens, p.k_lens, strict=True)]
