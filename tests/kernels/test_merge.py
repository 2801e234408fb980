"""merge_attention_states: attention over A and over B merges into attention over A ∪ B."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.kernels import merge_attention_states

NEG_INF = float("-inf")


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), num_q=st.integers(1, 6), num_k=st.integers(0, 20),
       group=st.sampled_from([1, 2, 4]), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_merging_disjoint_key_sets_equals_attention_over_the_union(kt, seed, num_q, num_k,
                                                                   group, dtype):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(num_q, 2 * group, 16, generator=gen, dtype=dtype)
    k = torch.randn(num_k, 2, 16, generator=gen, dtype=dtype) * 2
    v = torch.randn(num_k, 2, 16, generator=gen, dtype=dtype)
    in_a = torch.rand(num_k, generator=gen) < 0.5
    cu_q = kt.cu([num_q])
    parts = []
    for keep in (in_a, ~in_a):
        n = int(keep.sum())
        out, lse = kt.dense_attention(q, k[keep], v[keep], cu_q, kt.cu([n]), causal=False)
        parts.append((out.to(dtype), lse.to(dtype)))
    (o1, l1), (o2, l2) = parts
    o, lse = merge_attention_states(o1, l1, o2, l2)
    ref_o, ref_lse = kt.dense_attention(q, k, v, cu_q, kt.cu([num_k]), causal=False)
    atol = 1e-12 if dtype == torch.float64 else 1e-5
    assert o.dtype == dtype
    torch.testing.assert_close(o.double(), ref_o, atol=atol, rtol=0)
    kt.assert_lse_close(lse, ref_lse, atol=atol)


def test_one_empty_side_passes_the_other_through():
    o2, lse2 = torch.randn(3, 2, 4), torch.randn(2, 3)
    empty = torch.full((2, 3), NEG_INF)
    o, lse = merge_attention_states(torch.randn(3, 2, 4), empty, o2, lse2)
    torch.testing.assert_close(o, o2, atol=1e-6, rtol=0)
    torch.testing.assert_close(lse, lse2, atol=1e-6, rtol=0)
    o, lse = merge_attention_states(o2, lse2, torch.randn(3, 2, 4), empty)
    torch.testing.assert_close(o, o2, atol=1e-6, rtol=0)


def test_both_sides_empty_gives_zero_and_neg_inf_without_nan():
    empty = torch.full((2, 3), NEG_INF)
    o, lse = merge_attention_states(torch.randn(3, 2, 4), empty, torch.randn(3, 2, 4), empty)
    assert torch.equal(o, torch.zeros(3, 2, 4))
    assert torch.isneginf(lse).all()


def test_mixed_rows_and_large_lse_stay_finite():
    # row 0: both empty; row 1: only left; row 2: lse values that overflow exp() naively
    lse1 = torch.tensor([[NEG_INF, 1.0, 1000.0]])
    lse2 = torch.tensor([[NEG_INF, NEG_INF, 1000.0]])
    o1, o2 = torch.ones(3, 1, 2), 3 * torch.ones(3, 1, 2)
    o, lse = merge_attention_states(o1, lse1, o2, lse2)
    assert o[:, 0, 0].tolist() == [0.0, 1.0, 2.0]
    assert lse[0, 0].item() == NEG_INF and lse[0, 1].item() == 1.0
    assert abs(lse[0, 2].item() - (1000.0 + torch.log(torch.tensor(2.0)).item())) < 1e-4


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shapes differ"):
        merge_attention_states(torch.zeros(2, 1, 4), torch.zeros(1, 2), torch.zeros(3, 1, 4),
                               torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"lse \(H, T\)"):
        merge_attention_states(torch.zeros(2, 1, 4), torch.zeros(2, 1), torch.zeros(2, 1, 4),
                               torch.zeros(2, 1))
