"""Plans: made once from the offsets, run on every layer's tensors, each run equal to the dense
float64 oracle (so a plan holds nothing of the tensors it was made with)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.kernels import plan_cascade, plan_paged, plan_varlen


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_one_varlen_plan_serves_every_layer(kt, data):
    case = data.draw(kt.attention_cases(max_len=30))
    layers = [kt.make_problem(case.seed + i, case.q_lens, case.k_lens, case.num_heads,
                              case.num_kv_heads, case.dim) for i in range(3)]
    first = layers[0]
    plan = plan_varlen(first.q, case.num_kv_heads, first.cu_q, first.cu_k, 30, 30,
                       causal=case.causal, window_size=case.window, softcap=case.softcap)
    for p in layers:  # other tensors, same offsets: the plan is only the offsets' work
        out, lse = plan.run(p.q, p.k, p.v)
        ref_out, ref_lse = kt.dense_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, causal=case.causal,
                                              window=case.window, softcap=case.softcap)
        torch.testing.assert_close(out.double(), ref_out, atol=2e-5, rtol=0)
        kt.assert_lse_close(lse, ref_lse, atol=2e-5)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), page_size=st.sampled_from([1, 2, 4]),
       lens=st.lists(st.integers(1, 20), min_size=1, max_size=4))
def test_a_paged_plan_by_block_table_reads_what_its_pages_hold(kt, seed, page_size, lens):
    gen = torch.Generator().manual_seed(seed)
    num_pages = sum(-(-n // page_size) for n in lens) + 3
    order = torch.randperm(num_pages, generator=gen).to(torch.int32)
    table = torch.zeros(len(lens), max(-(-n // page_size) for n in lens), dtype=torch.int32)
    start = 0
    for b, n in enumerate(lens):
        used = -(-n // page_size)
        table[b, :used] = order[start:start + used]
        start += used
    seqlens = torch.tensor(lens, dtype=torch.int32)
    q_lens = [1] * len(lens)
    q = torch.randn(len(lens), 4, 8, generator=gen)
    plan = plan_paged(q, torch.empty(num_pages, page_size, 2, 8), kt.cu(q_lens), table, seqlens)
    for layer in range(2):
        k_pages = torch.randn(num_pages, page_size, 2, 8, generator=gen)
        v_pages = torch.randn(num_pages, page_size, 2, 8, generator=gen)
        out, _ = plan.run(q * (layer + 1), k_pages, v_pages)
        # the keys by hand: token i of sequence b sits in page table[b, i // S] at i % S
        k = torch.stack([k_pages[table[b, i // page_size], i % page_size]
                         for b, n in enumerate(lens) for i in range(n)])
        v = torch.stack([v_pages[table[b, i // page_size], i % page_size]
                         for b, n in enumerate(lens) for i in range(n)])
        ref, _ = kt.dense_attention(q * (layer + 1), k, v, kt.cu(q_lens), kt.cu(lens))
        torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=0)


def test_a_cascade_plan_equals_attention_over_prefix_plus_suffix(kt):
    gen = torch.Generator().manual_seed(3)
    prefix_k, prefix_v = torch.randn(12, 2, 16, generator=gen), torch.randn(12, 2, 16, generator=gen)
    suffix_lens, q_lens = [1, 3, 2], [1, 2, 2]
    suffix_k = torch.randn(sum(suffix_lens), 2, 16, generator=gen)
    suffix_v = torch.randn(sum(suffix_lens), 2, 16, generator=gen)
    q = torch.randn(sum(q_lens), 4, 16, generator=gen)
    plan = plan_cascade(q, 2, kt.cu(q_lens), kt.cu(suffix_lens), 12)
    out, lse = plan.run(q, prefix_k, prefix_v, suffix_k, suffix_v)
    cu_s = kt.cu(suffix_lens).tolist()
    k = torch.cat([torch.cat([prefix_k, suffix_k[cu_s[b]:cu_s[b + 1]]]) for b in range(3)])
    v = torch.cat([torch.cat([prefix_v, suffix_v[cu_s[b]:cu_s[b + 1]]]) for b in range(3)])
    ref_out, ref_lse = kt.dense_attention(q, k, v, kt.cu(q_lens), kt.cu([12 + n for n in suffix_lens]))
    torch.testing.assert_close(out.double(), ref_out, atol=2e-5, rtol=0)
    kt.assert_lse_close(lse, ref_lse, atol=2e-5)
