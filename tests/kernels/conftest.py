"""The independent oracle for the kernel tests, and random problem builders.

The oracle is dense ``scaled_dot_product_attention`` in float64 with an explicit boolean mask,
built from flash-attn's documented rule (not from tim's code). SDPA has no softcap and returns
no LSE, so for those a plain float64 softmax is used. Test modules are imported with
``--import-mode=importlib`` and cannot import each other; helpers come from the ``kt`` fixture.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import strategies as st

NEG_INF = float("-inf")


def oracle_mask(q_len: int, k_len: int, causal: bool, window: tuple[int, int]) -> torch.Tensor:
    """flash-attn docstring: query i sees keys in
    [i + Lk - Lq - left, i + Lk - Lq + right]; causal caps the right end at i + Lk - Lq."""
    left, right = window
    rows = []
    for i in range(q_len):
        lo = i + k_len - q_len - left if left >= 0 else -math.inf
        hi = i + k_len - q_len + right if right >= 0 else math.inf
        if causal:
            hi = min(hi, i + k_len - q_len)
        rows.append([lo <= j <= hi for j in range(k_len)])
    return torch.tensor(rows, dtype=torch.bool).reshape(q_len, k_len)


def dense_attention(q, k, v, cu_q, cu_k, *, causal=True, window=(-1, -1), softcap=0.0,
                    scale=None):
    """(out (total_q, H, D) float64, lse (H, total_q) float64); empty rows give 0 / -inf."""
    num_heads, num_kv_heads, dim = q.shape[1], k.shape[1], q.shape[2]
    scale = dim**-0.5 if scale is None else scale
    group = num_heads // num_kv_heads
    out = torch.zeros(q.shape, dtype=torch.float64)
    lse = torch.full((num_heads, q.shape[0]), NEG_INF, dtype=torch.float64)
    cu_q, cu_k = [int(x) for x in cu_q], [int(x) for x in cu_k]
    for b in range(len(cu_q) - 1):
        qb = q[cu_q[b]:cu_q[b + 1]].double().cpu().transpose(0, 1)  # (H, Lq, D)
        kb = k[cu_k[b]:cu_k[b + 1]].double().cpu().repeat_interleave(group, 1).transpose(0, 1)
        vb = v[cu_k[b]:cu_k[b + 1]].double().cpu().repeat_interleave(group, 1).transpose(0, 1)
        if qb.shape[1] == 0:
            continue
        mask = oracle_mask(qb.shape[1], kb.shape[1], causal, window)
        scores = torch.einsum("hqd,hkd->hqk", qb, kb) * scale
        if softcap > 0:
            scores = softcap * torch.tanh(scores / softcap)
        scores = scores.masked_fill(~mask, NEG_INF)
        row_lse = torch.logsumexp(scores, -1) if kb.shape[1] else torch.full(
            scores.shape[:2], NEG_INF, dtype=torch.float64)
        lse[:, cu_q[b]:cu_q[b + 1]] = row_lse
        if kb.shape[1] == 0:
            continue
        if softcap == 0:
            ob = torch.nn.functional.scaled_dot_product_attention(
                qb[None], kb[None], vb[None], attn_mask=mask, scale=scale)[0]
        else:
            probs = torch.softmax(scores, -1).nan_to_num(0.0)
            ob = probs @ vb
        ob = ob.masked_fill(~mask.any(-1)[None, :, None], 0.0)
        out[cu_q[b]:cu_q[b + 1]] = ob.transpose(0, 1)
    return out, lse


def cu(lengths) -> torch.Tensor:
    """(B + 1,) int32 offsets from a list of lengths."""
    offsets = [0]
    for n in lengths:
        offsets.append(offsets[-1] + int(n))
    return torch.tensor(offsets, dtype=torch.int32)


def make_problem(seed, q_lens, k_lens, num_heads, num_kv_heads, dim, dtype=torch.float32):
    """Fresh random q (total_q, H, D), k, v (total_k, Hkv, D) and their offsets."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(sum(q_lens), num_heads, dim, generator=gen, dtype=torch.float64)
    k = torch.randn(sum(k_lens), num_kv_heads, dim, generator=gen, dtype=torch.float64)
    v = torch.randn(sum(k_lens), num_kv_heads, dim, generator=gen, dtype=torch.float64)
    return SimpleNamespace(q=q.to(dtype), k=k.to(dtype), v=v.to(dtype),
                           cu_q=cu(q_lens), cu_k=cu(k_lens), q_lens=list(q_lens),
                           k_lens=list(k_lens))


def assert_lse_close(actual, expected, atol):
    """Equal -inf pattern, close finite values."""
    actual, expected = actual.double().cpu(), expected.double().cpu()
    assert torch.equal(torch.isneginf(actual), torch.isneginf(expected))
    assert not torch.isnan(actual).any()
    finite = torch.isfinite(expected)
    torch.testing.assert_close(actual[finite], expected[finite], atol=atol, rtol=0)


@st.composite
def attention_cases(draw, max_len=40, max_seqs=4, softcap=True):
    """Shapes and options of one varlen call: odd head dims, GQA groups, empty sequences,
    windows, queries shorter and longer than keys."""
    group = draw(st.sampled_from([1, 2, 4, 8]))
    num_kv_heads = draw(st.integers(1, 2))
    lens = draw(st.lists(st.tuples(st.integers(0, max_len), st.integers(0, max_len)),
                         min_size=1, max_size=max_seqs))
    window = draw(st.one_of(st.just((-1, -1)),
                            st.tuples(st.integers(-1, 12), st.integers(-1, 12))))
    return SimpleNamespace(
        seed=draw(st.integers(0, 2**31 - 1)),
        q_lens=[a for a, _ in lens],
        k_lens=[b for _, b in lens],
        num_heads=group * num_kv_heads,
        num_kv_heads=num_kv_heads,
        dim=draw(st.sampled_from([8, 16, 59])),
        causal=draw(st.booleans()),
        window=window,
        softcap=draw(st.sampled_from([0.0, 0.0, 3.0])) if softcap else 0.0,
    )


KT = SimpleNamespace(
    oracle_mask=oracle_mask,
    dense_attention=dense_attention,
    cu=cu,
    make_problem=make_problem,
    assert_lse_close=assert_lse_close,
    attention_cases=attention_cases,
)


@pytest.fixture(scope="session")
def kt() -> SimpleNamespace:
    return KT


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tensors are tiny: with other processes on the two cores, OpenMP's spinning
    thread team makes each small op cost milliseconds. One thread keeps the suite fast."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
