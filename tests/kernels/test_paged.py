"""store_kv / gather_kv / block tables, and paged attention in both modes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.kernels import block_table_to_slots, gather_kv, paged_attention, store_kv


def random_pool(gen, num_pages, page_size, num_kv_heads, dim):
    shape = (num_pages, page_size, num_kv_heads, dim)
    return torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)


@settings(max_examples=40, deadline=None)
@given(num_pages=st.integers(1, 12), page_size=st.sampled_from([1, 3, 16]),
       seed=st.integers(0, 2**31 - 1), data=st.data())
def test_store_then_gather_round_trips(num_pages, page_size, seed, data):
    gen = torch.Generator().manual_seed(seed)
    k_pages, v_pages = random_pool(gen, num_pages, page_size, 2, 5)
    before_k, before_v = k_pages.clone(), v_pages.clone()
    num_slots = num_pages * page_size
    slots = torch.tensor(data.draw(st.lists(st.integers(0, num_slots - 1), unique=True,
                                            max_size=num_slots)), dtype=torch.int64)
    k, v = torch.randn(len(slots), 2, 5, generator=gen), torch.randn(len(slots), 2, 5, generator=gen)
    store_kv(k_pages, v_pages, k, v, slots)
    got_k, got_v = gather_kv(k_pages, v_pages, slots)
    assert torch.equal(got_k, k) and torch.equal(got_v, v)
    # every other slot is untouched; each written slot sits at (page, offset)
    for slot in range(num_slots):
        page, offset = divmod(slot, page_size)
        hits = (slots == slot).nonzero()
        want_k = k[hits[0, 0]] if len(hits) else before_k[page, offset]
        want_v = v[hits[0, 0]] if len(hits) else before_v[page, offset]
        assert torch.equal(k_pages[page, offset], want_k)
        assert torch.equal(v_pages[page, offset], want_v)


def test_store_casts_to_pool_dtype_and_rejects_bad_input():
    k_pages, v_pages = torch.zeros(2, 2, 1, 3), torch.zeros(2, 2, 1, 3)
    store_kv(k_pages, v_pages, torch.ones(1, 1, 3, dtype=torch.float64),
             torch.ones(1, 1, 3, dtype=torch.float64), torch.tensor([3]))
    assert k_pages[1, 1].sum().item() == 3.0
    with pytest.raises(ValueError, match="int64"):
        store_kv(k_pages, v_pages, torch.ones(1, 1, 3), torch.ones(1, 1, 3), torch.tensor([3.0]))
    with pytest.raises(ValueError, match="contiguous"):
        gather_kv(k_pages.transpose(0, 1), v_pages, torch.tensor([0]))
    with pytest.raises(ValueError, match=r"\(T, Hkv, D\)"):
        store_kv(k_pages, v_pages, torch.ones(2, 1, 3), torch.ones(2, 1, 3), torch.tensor([0]))


@settings(max_examples=40, deadline=None)
@given(page_size=st.sampled_from([1, 2, 5]), seqlens=st.lists(st.integers(0, 12), min_size=1,
                                                                max_size=4),
       seed=st.integers(0, 2**31 - 1))
def test_block_table_to_slots_matches_a_loop(page_size, seqlens, seed):
    gen = torch.Generator().manual_seed(seed)
    max_pages = max(1, max(-(-n // page_size) for n in seqlens))
    table = torch.randperm(64, generator=gen)[: len(seqlens) * max_pages]
    table = table.reshape(len(seqlens), max_pages).to(torch.int32)
    slots, cu = block_table_to_slots(table, torch.tensor(seqlens, dtype=torch.int32), page_size)
    want = [int(table[b, t // page_size]) * page_size + t % page_size
            for b, n in enumerate(seqlens) for t in range(n)]
    assert slots.dtype == torch.int64 and slots.tolist() == want
    assert cu.dtype == torch.int32 and cu.tolist() == [0, *torch.tensor(seqlens).cumsum(0).tolist()]


@settings(max_examples=30, deadline=None)
@given(data=st.data(), page_size=st.sampled_from([1, 4]))
def test_paged_modes_equal_varlen_over_gathered_keys(kt, data, page_size):
    case = data.draw(kt.attention_cases(max_len=20))
    gen = torch.Generator().manual_seed(case.seed)
    max_pages = max(1, max(-(-n // page_size) for n in case.k_lens))
    num_pages = len(case.k_lens) * max_pages + 2
    k_pages, v_pages = random_pool(gen, num_pages, page_size, case.num_kv_heads, case.dim)
    table = torch.randperm(num_pages, generator=gen)[: len(case.k_lens) * max_pages]
    table = table.reshape(len(case.k_lens), max_pages).to(torch.int32)
    seqlens = torch.tensor(case.k_lens, dtype=torch.int32)
    q = torch.randn(sum(case.q_lens), case.num_heads, case.dim, generator=gen)
    cu_q = kt.cu(case.q_lens)
    opts = dict(causal=case.causal, window_size=case.window, softcap=case.softcap,
                return_lse=True)
    out_t, lse_t = paged_attention(q, k_pages, v_pages, cu_q, table, seqlens, **opts)
    # slot mode, with the slots of the block table listed by hand
    slots = torch.tensor([int(table[b, t // page_size]) * page_size + t % page_size
                          for b, n in enumerate(case.k_lens) for t in range(n)], dtype=torch.int64)
    out_s, lse_s = paged_attention(q, k_pages, v_pages, cu_q, slots=slots,
                                   cu_seqlens_k=kt.cu(case.k_lens), **opts)
    flat_k = k_pages.reshape(-1, case.num_kv_heads, case.dim)
    flat_v = v_pages.reshape(-1, case.num_kv_heads, case.dim)
    ref_out, ref_lse = kt.dense_attention(q, flat_k[slots], flat_v[slots], cu_q,
                                          kt.cu(case.k_lens), causal=case.causal,
                                          window=case.window, softcap=case.softcap)
    for out, lse in ((out_t, lse_t), (out_s, lse_s)):
        torch.testing.assert_close(out.double(), ref_out, atol=2e-5, rtol=0)
        kt.assert_lse_close(lse, ref_lse, atol=2e-5)


def test_paged_needs_exactly_one_mode(kt):
    k_pages = torch.randn(4, 1, 1, 8)
    q, cu_q = torch.randn(1, 2, 8), kt.cu([1])
    table, lens = torch.zeros(1, 1, dtype=torch.int32), torch.ones(1, dtype=torch.int32)
    with pytest.raises(ValueError, match="either"):
        paged_attention(q, k_pages, k_pages, cu_q)
    with pytest.raises(ValueError, match="either"):
        paged_attention(q, k_pages, k_pages, cu_q, table, lens, slots=torch.tensor([0]),
                        cu_seqlens_k=kt.cu([1]))
    with pytest.raises(ValueError, match="either"):
        paged_attention(q, k_pages, k_pages, cu_q, table)
    with pytest.raises(ValueError, match="capacity"):
        paged_attention(q, k_pages, k_pages, cu_q, table, lens + 1)
    with pytest.raises(ValueError, match="int32"):
        paged_attention(q, k_pages, k_pages, cu_q, table.long(), lens)
    with pytest.raises(ValueError, match="dtype"):
        paged_attention(q.double(), k_pages, k_pages, cu_q, table, lens)
