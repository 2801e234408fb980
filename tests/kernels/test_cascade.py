"""cascade_attention equals varlen attention over (prefix + suffix) per worker."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.kernels import cascade_attention, paged_cascade_attention, varlen_attention


@st.composite
def cascade_cases(draw):
    num_workers = draw(st.integers(1, 5))
    suffix = draw(st.lists(st.integers(0, 12), min_size=num_workers, max_size=num_workers))
    queries = [draw(st.integers(0, s + 1)) for s in suffix]  # a worker's newest tokens
    return dict(
        seed=draw(st.integers(0, 2**31 - 1)),
        prefix_len=draw(st.sampled_from([0, 1, 7, 33])),
        suffix=suffix,
        queries=queries,
        group=draw(st.sampled_from([1, 2, 4, 8])),
        dim=draw(st.sampled_from([16, 59])),
        causal=draw(st.booleans()),
        softcap=draw(st.sampled_from([0.0, 4.0])),
    )


def build(case):
    gen = torch.Generator().manual_seed(case["seed"])
    hkv, dim = 2, case["dim"]
    rand = lambda *shape: torch.randn(*shape, generator=gen)  # noqa: E731
    return (rand(sum(case["queries"]), hkv * case["group"], dim),
            rand(case["prefix_len"], hkv, dim), rand(case["prefix_len"], hkv, dim),
            rand(sum(case["suffix"]), hkv, dim), rand(sum(case["suffix"]), hkv, dim))


def per_worker_views(kt, case, pk, pv, sk, sv):
    """(k, v, cu_k) of varlen over cat(prefix, suffix_b) for every worker b."""
    cu_s = kt.cu(case["suffix"]).tolist()
    ks = [torch.cat([pk, sk[cu_s[b]:cu_s[b + 1]]]) for b in range(len(case["suffix"]))]
    vs = [torch.cat([pv, sv[cu_s[b]:cu_s[b + 1]]]) for b in range(len(case["suffix"]))]
    return torch.cat(ks), torch.cat(vs), kt.cu([len(x) for x in ks])


@settings(max_examples=50, deadline=None)
@given(case=cascade_cases())
def test_cascade_equals_varlen_over_full_views(kt, case):
    q, pk, pv, sk, sv = build(case)
    cu_q, cu_s = kt.cu(case["queries"]), kt.cu(case["suffix"])
    opts = dict(causal=case["causal"], softcap=case["softcap"], return_lse=True)
    out, lse = cascade_attention(q, pk, pv, sk, sv, cu_q, cu_s, **opts)
    k, v, cu_k = per_worker_views(kt, case, pk, pv, sk, sv)
    ref_out, ref_lse = kt.dense_attention(q, k, v, cu_q, cu_k, causal=case["causal"],
                                          softcap=case["softcap"])
    torch.testing.assert_close(out.double(), ref_out, atol=2e-5, rtol=0)
    kt.assert_lse_close(lse, ref_lse, atol=2e-5)
    plain = varlen_attention(q, k, v, cu_q, cu_k, 13, 50, causal=case["causal"],
                             softcap=case["softcap"])
    torch.testing.assert_close(out, plain, atol=2e-5, rtol=0)


@settings(max_examples=20, deadline=None)
@given(case=cascade_cases())
def test_paged_cascade_gathers_by_slots(kt, case):
    q, pk, pv, sk, sv = build(case)
    num_slots = len(pk) + len(sk)
    gen = torch.Generator().manual_seed(case["seed"] + 1)
    order = torch.randperm(num_slots + 5, generator=gen)[:num_slots]  # scattered slots
    k_pages = torch.randn(num_slots + 5, 1, pk.shape[1], pk.shape[2], generator=gen)
    v_pages = torch.randn_like(k_pages)
    k_pages[order, 0] = torch.cat([pk, sk])
    v_pages[order, 0] = torch.cat([pv, sv])
    cu_q, cu_s = kt.cu(case["queries"]), kt.cu(case["suffix"])
    out = paged_cascade_attention(q, k_pages, v_pages, cu_q, order[: len(pk)],
                                  order[len(pk):], cu_s, causal=case["causal"],
                                  softcap=case["softcap"])
    want = cascade_attention(q, pk, pv, sk, sv, cu_q, cu_s, causal=case["causal"],
                             softcap=case["softcap"])
    # the same keys; a run of slots is read in place, where the pool's alignment may change
    # the kernel's summation order in the last bits, so not bitwise
    torch.testing.assert_close(out, want, atol=1e-6, rtol=0)


def test_decode_of_many_workers_on_a_long_prefix(kt):
    # the benchmark's shape, scaled down: 8 workers, 1 query each, GQA 4
    case = dict(seed=3, prefix_len=300, suffix=[20] * 8, queries=[1] * 8, group=4, dim=64,
                causal=True, softcap=0.0)
    q, pk, pv, sk, sv = build(case)
    out = cascade_attention(q, pk, pv, sk, sv, kt.cu([1] * 8), kt.cu([20] * 8))
    k, v, cu_k = per_worker_views(kt, case, pk, pv, sk, sv)
    ref, _ = kt.dense_attention(q, k, v, kt.cu([1] * 8), cu_k)
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=0)


def test_queries_older_than_the_suffix_are_refused(kt):
    q, pk, pv, sk, sv = build(dict(seed=0, prefix_len=4, suffix=[1], queries=[3], group=1,
                                   dim=16))
    with pytest.raises(ValueError, match="newest tokens"):
        cascade_attention(q, pk, pv, sk, sv, kt.cu([3]), kt.cu([1]))
