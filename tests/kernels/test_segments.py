"""segment_attention equals dense float64 attention over keys placed at their layout positions.

The oracle never calls tim's RoPE: it draws raw (un-rotated) query and key vectors, applies
RoPE in float64 through complex multiplication (written here), stores keys rotated at their
*written* positions, and attends each worker's query over keys rotated directly to their
*layout* positions (written + delta), with its own keys causal (bottom-right).
"""

from __future__ import annotations

import doctest
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tim.kernels.segments as segments_module
from tim.kernels import (
    SharedSegment,
    merge_attention_states,
    plan_segments,
    rope_shift,
    segment_attention,
    varlen_attention,
)
from tim.kernels.merge import merge_rows

NEG_INF = float("-inf")


def inv_freq_for(d_rot: int, base: float = 10000.0) -> torch.Tensor:
    return 1.0 / base ** (torch.arange(0, d_rot, 2, dtype=torch.float32) / d_rot)  # (D_rot/2,)


def rope64(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor,
           interleaved: bool) -> torch.Tensor:
    """RoPE in float64 as complex multiplication: pair (a, b) -> (a + ib) * e^(i p f).
    ``x (N, heads, D)``, ``positions (N,)``; dims past ``D_rot`` are left alone."""
    x = x.double().clone()
    half = inv_freq.shape[0]
    if interleaved:
        a, b = x[..., 0:2 * half:2], x[..., 1:2 * half:2]
    else:
        a, b = x[..., :half], x[..., half:2 * half]
    angle = positions.double()[:, None, None] * inv_freq.double()  # (N, 1, D_rot/2)
    z = torch.complex(a, b) * torch.polar(torch.ones_like(angle), angle)
    if interleaved:
        x[..., 0:2 * half:2], x[..., 1:2 * half:2] = z.real, z.imag
    else:
        x[..., :half], x[..., half:2 * half] = z.real, z.imag
    return x


def build(case, layers: int = 1):
    """Raw vectors, the pool(s) holding keys rotated at written positions, and tim's inputs.

    ``case``: ``own`` [(Lown, written start)], ``q_lens``, ``segments`` [(L, written start,
    {worker: delta})], heads, dims, ``page_size``, ``seed``.
    """
    gen = torch.Generator().manual_seed(case.seed)
    hkv, heads, dim = case.num_kv_heads, case.num_heads, case.dim
    inv_freq = inv_freq_for(case.d_rot)
    pieces, sources = list(case.own), piece_of(case)
    pieces += [(seg[0], seg[1]) for seg in case.segments if len(seg) == 3]
    lens, starts = [n for n, _ in pieces], [w for _, w in pieces]
    total = sum(lens)
    num_slots = -(-(total + 5) // case.page_size) * case.page_size
    slots = torch.randperm(num_slots, generator=gen)[:total]  # scattered, as in use
    cut = torch.tensor([0, *lens]).cumsum(0).tolist()
    runs = [slots[cut[i]:cut[i + 1]] for i in range(len(lens))]
    written = [torch.arange(w, w + n) for n, w in zip(lens, starts, strict=True)]
    q_pos = torch.cat([torch.arange(w + n - lq, w + n)
                       for (n, w), lq in zip(case.own, case.q_lens, strict=True)])
    out = []
    for _ in range(layers):
        raw_q = torch.randn(sum(case.q_lens), heads, dim, generator=gen, dtype=torch.float64)
        raw_k = [torch.randn(n, hkv, dim, generator=gen, dtype=torch.float64) for n in lens]
        raw_v = [torch.randn(n, hkv, dim, generator=gen, dtype=torch.float64) for n in lens]
        k_pages = torch.randn(num_slots // case.page_size, case.page_size, hkv, dim,
                              generator=gen)
        v_pages = torch.randn_like(k_pages)
        for run, pos, k, v in zip(runs, written, raw_k, raw_v, strict=True):
            k_pages.view(-1, hkv, dim)[run] = rope64(k, pos, inv_freq, case.interleaved).float()
            v_pages.view(-1, hkv, dim)[run] = v.float()
        q = rope64(raw_q, q_pos, inv_freq, case.interleaved).float()
        out.append(SimpleNamespace(raw_q=raw_q, raw_k=raw_k, raw_v=raw_v, q=q,
                                   k_pages=k_pages, v_pages=v_pages))
    num_workers = len(case.own)
    inputs = dict(
        cu_seqlens_q=cu(case.q_lens),
        own_slots=torch.cat([*runs[:num_workers], torch.zeros(0, dtype=torch.int64)]),
        cu_seqlens_own=cu([n for n, _ in case.own]),
        segments=[SharedSegment(runs[sources[i]], seg[2]) for i, seg in enumerate(case.segments)],
        inv_freq=inv_freq, interleaved=case.interleaved,
    )
    return out, inputs, written, q_pos


def piece_of(case) -> list[int]:
    """Where each segment's tokens live among the written pieces (own segments first): a
    segment given as ``(L, start, deltas, owner)`` is worker ``owner``'s own tokens, as the
    siblings see them; ``(L, start, deltas)`` is a piece of its own."""
    sources, extra = [], len(case.own)
    for seg in case.segments:
        if len(seg) == 4:
            sources.append(seg[3])
        else:
            sources.append(extra)
            extra += 1
    return sources


def cu(lengths) -> torch.Tensor:
    return torch.tensor([0, *torch.tensor(list(lengths), dtype=torch.int64).cumsum(0).tolist()],
                        dtype=torch.int32)


def oracle(case, layer, written, q_pos):
    """Dense float64 attention of each worker over keys rotated to their layout positions."""
    inv_freq, num_workers, sources = inv_freq_for(case.d_rot), len(case.own), piece_of(case)
    group, scale = case.num_heads // case.num_kv_heads, case.dim**-0.5
    q = rope64(layer.raw_q, q_pos, inv_freq, case.interleaved)
    out = torch.zeros(q.shape, dtype=torch.float64)
    lse = torch.full((case.num_heads, q.shape[0]), NEG_INF, dtype=torch.float64)
    q0 = 0
    for b in range(num_workers):
        lq, (lown, _) = case.q_lens[b], case.own[b]
        keys, values, visible = [], [], []
        for i, seg in enumerate(case.segments):
            deltas, s = seg[2], sources[i]
            if b in deltas:  # all keys of a shared segment are visible, moved by delta
                keys.append(rope64(layer.raw_k[s], written[s] + deltas[b], inv_freq,
                                   case.interleaved))
                values.append(layer.raw_v[s])
                visible.append(torch.ones(lq, len(written[s]), dtype=torch.bool))
        keys.append(rope64(layer.raw_k[b], written[b], inv_freq, case.interleaved))
        values.append(layer.raw_v[b])
        i, j = torch.arange(lq)[:, None], torch.arange(lown)[None, :]
        visible.append(j <= i + lown - lq if case.causal else torch.ones(lq, lown, dtype=bool))
        k = torch.cat(keys).repeat_interleave(group, 1)  # (Lk, H, D)
        v = torch.cat(values).repeat_interleave(group, 1)
        mask = torch.cat(visible, 1)  # (Lq, Lk)
        scores = torch.einsum("qhd,khd->hqk", q[q0:q0 + lq], k) * scale
        if case.softcap:
            scores = case.softcap * torch.tanh(scores / case.softcap)
        scores = scores.masked_fill(~mask, NEG_INF)
        row_lse = torch.logsumexp(scores, -1)  # (H, Lq); -inf where no key is visible
        probs = torch.exp(scores - row_lse[..., None]).nan_to_num(0.0)
        out[q0:q0 + lq] = torch.einsum("hqk,khd->qhd", probs, v)
        lse[:, q0:q0 + lq] = row_lse
        q0 += lq
    return out, lse


def naive(case, layer, inputs):
    """Re-rotate each segment's stored keys by +delta per worker (tim's rope_shift), gather
    every worker's full view, and run varlen attention."""
    flat_k = layer.k_pages.view(-1, case.num_kv_heads, case.dim)
    flat_v = layer.v_pages.view(-1, case.num_kv_heads, case.dim)
    own, cu_own = inputs["own_slots"], inputs["cu_seqlens_own"].tolist()
    keys, values, view_lens = [], [], []
    for b in range(len(case.own)):
        view_k, view_v = [], []
        for seg in inputs["segments"]:
            if b in seg.deltas:
                view_k.append(rope_shift(flat_k[seg.slots], seg.deltas[b], inputs["inv_freq"],
                                         interleaved=case.interleaved))
                view_v.append(flat_v[seg.slots])
        view_k.append(flat_k[own[cu_own[b]:cu_own[b + 1]]])
        view_v.append(flat_v[own[cu_own[b]:cu_own[b + 1]]])
        keys += view_k
        values += view_v
        view_lens.append(sum(len(x) for x in view_k))
    return varlen_attention(layer.q, torch.cat(keys), torch.cat(values), inputs["cu_seqlens_q"],
                            cu(view_lens), max(case.q_lens), max(view_lens, default=0),
                            causal=case.causal, softcap=case.softcap, return_lse=True)


def options(case, inputs):
    return dict(inv_freq=inputs["inv_freq"], interleaved=inputs["interleaved"],
                causal=case.causal, softcap=case.softcap)


def run_tim(case, layer, inputs):
    return segment_attention(layer.q, layer.k_pages, layer.v_pages, inputs["cu_seqlens_q"],
                             inputs["own_slots"], inputs["cu_seqlens_own"], inputs["segments"],
                             return_lse=True, **options(case, inputs))


def assert_matches(kt, got, want):
    torch.testing.assert_close(got[0].double(), want[0], atol=2e-5, rtol=0)
    kt.assert_lse_close(got[1], want[1], atol=2e-5)


@st.composite
def segment_cases(draw):
    num_workers = draw(st.integers(1, 4))
    own_lens = draw(st.lists(st.integers(0, 6), min_size=num_workers, max_size=num_workers))
    dim = draw(st.sampled_from([8, 16, 20]))
    num_kv_heads = draw(st.integers(1, 2))
    segments = []
    for _ in range(draw(st.integers(0, 4))):
        viewers = draw(st.lists(st.integers(0, num_workers - 1), unique=True, max_size=4))
        still = draw(st.booleans())  # e.g. the parent prefix: delta 0 for everyone
        deltas = {b: 0 if still else draw(st.integers(-120, 120)) for b in viewers}
        segments.append((draw(st.integers(0, 9)), draw(st.integers(0, 100)), deltas))
    return SimpleNamespace(
        seed=draw(st.integers(0, 2**31 - 1)),
        own=[(n, draw(st.integers(0, 100))) for n in own_lens],
        q_lens=[draw(st.integers(0, n + 1)) for n in own_lens],
        segments=segments,
        num_kv_heads=num_kv_heads,
        num_heads=num_kv_heads * draw(st.sampled_from([1, 2, 4])),
        dim=dim,
        d_rot=2 * draw(st.integers(1, dim // 2)),  # partial rotary when < dim
        interleaved=draw(st.booleans()),
        causal=draw(st.booleans()),
        softcap=draw(st.sampled_from([0.0, 0.0, 3.0])),
        page_size=draw(st.sampled_from([1, 3])),
    )


@settings(max_examples=80, deadline=None)
@given(case=segment_cases())
def test_matches_dense_oracle_at_layout_positions(kt, case):
    (layer,), inputs, written, q_pos = build(case)
    assert_matches(kt, run_tim(case, layer, inputs), oracle(case, layer, written, q_pos))


@settings(max_examples=40, deadline=None)
@given(case=segment_cases())
def test_equals_naive_key_rerotation(kt, case):
    (layer,), inputs, _, _ = build(case)
    out, lse = run_tim(case, layer, inputs)
    want_out, want_lse = naive(case, layer, inputs)
    torch.testing.assert_close(out, want_out, atol=2e-5, rtol=0)
    kt.assert_lse_close(lse, want_lse, atol=2e-5)


@settings(max_examples=25, deadline=None)
@given(case=segment_cases())
def test_plan_serves_two_layers(kt, case):
    layers, inputs, written, q_pos = build(case, layers=2)
    plan = plan_segments(layers[0].q, layers[0].k_pages, inputs["cu_seqlens_q"],
                         inputs["own_slots"], inputs["cu_seqlens_own"], inputs["segments"],
                         **options(case, inputs))
    for layer in layers:  # different q and pool, same plan
        assert_matches(kt, plan.run(layer.q, layer.k_pages, layer.v_pages),
                       oracle(case, layer, written, q_pos))


def picture_case(interleaved: bool, d_rot: int, q_lens=(2, 3, 1)):
    """The module docstring's layout: prefix written at 0..3, three children each writing from
    4 on, every worker seeing the prefix, the other children in plan order, its own last.
    Deltas are in each worker's own frame, so the prefix moves too; every child's tokens are
    stored once, as its own segment, and read by its siblings from the same slots."""
    prefix_len, child_lens = 4, [3, 2, 4]
    segments = [(prefix_len, 0, {}), *[(n, prefix_len, {}, c) for c, n in enumerate(child_lens)]]
    for b in range(3):  # layout: prefix, other children in plan order, own last
        layout = [0] + [0] * 3
        at = prefix_len
        for c in range(3):
            if c != b:
                layout[1 + c] = at
                at += child_lens[c]
        own_shift = at - prefix_len  # own tokens sit at `at..`, written at 4..
        segments[0][2][b] = 0 - own_shift
        for c in range(3):
            if c != b:
                segments[1 + c][2][b] = (layout[1 + c] - prefix_len) - own_shift
    own = [(n, prefix_len) for n in child_lens]
    return SimpleNamespace(seed=5, own=own, q_lens=list(q_lens), segments=segments,
                           num_kv_heads=2, num_heads=6, dim=16, d_rot=d_rot,
                           interleaved=interleaved, causal=True, softcap=0.0, page_size=1)


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize("d_rot", [16, 8])
def test_picture_layout(kt, interleaved, d_rot):
    case = picture_case(interleaved, d_rot)
    assert case.segments[0][2] == {0: -6, 1: -7, 2: -5}  # the picture: worker 1's prefix -7
    assert case.segments[3][2][1] == -4  # worker 1 sees child 2 four back
    assert case.segments[1][2][2] == -5 and case.segments[2][2][0] == -6
    (layer,), inputs, written, q_pos = build(case)
    assert_matches(kt, run_tim(case, layer, inputs), oracle(case, layer, written, q_pos))


def test_positive_and_negative_deltas_and_empty_pieces(kt):
    case = SimpleNamespace(
        seed=11, own=[(5, 40), (0, 0), (3, 7), (2, 90)], q_lens=[4, 1, 0, 2],
        segments=[(6, 0, {0: 0, 1: 0, 2: 0, 3: 0}),   # a prefix nobody rotates
                  (0, 50, {0: 3, 1: -3}),              # an empty segment
                  (4, 60, {0: 37, 1: -55, 2: 9}),      # seen by three, three deltas
                  (7, 20, {})],                        # seen by none
        num_kv_heads=1, num_heads=4, dim=16, d_rot=12, interleaved=False, causal=True,
        softcap=0.0, page_size=2)
    (layer,), inputs, written, q_pos = build(case)
    out, lse = run_tim(case, layer, inputs)
    assert_matches(kt, (out, lse), oracle(case, layer, written, q_pos))
    plan = plan_segments(layer.q, layer.k_pages, inputs["cu_seqlens_q"], inputs["own_slots"],
                         inputs["cu_seqlens_own"], inputs["segments"], **options(case, inputs))
    # the prefix (all rows, unrotated) and segment 2 (workers 0 and 1; worker 2 has no
    # query) are planned; the empty segment and the unseen one are dropped
    assert plan.rows.tolist() == [0, 1, 2, 3, 4, 5, 6] + [0, 1, 2, 3, 4]
    assert plan.shift.tolist() == [0] * 7 + [-37] * 4 + [55]
    assert plan.slots.slots.numel() == 6 + 4


def test_worker_without_shared_segments_and_rows_seeing_nothing(kt):
    case = SimpleNamespace(
        seed=3, own=[(0, 0), (3, 10), (2, 30)], q_lens=[1, 2, 3],
        segments=[(5, 0, {1: -2})], num_kv_heads=2, num_heads=4, dim=8, d_rot=8,
        interleaved=True, causal=True, softcap=0.0, page_size=1)
    (layer,), inputs, written, q_pos = build(case)
    out, lse = run_tim(case, layer, inputs)
    assert_matches(kt, (out, lse), oracle(case, layer, written, q_pos))
    # worker 0 sees no key at all; worker 2's first query sees none of its 2 own keys
    for row in (0, 3):
        assert torch.all(out[row] == 0) and torch.all(torch.isneginf(lse[:, row]))
    assert torch.isfinite(lse[:, 4:]).all()


@settings(max_examples=40, deadline=None)
@given(num_rows=st.integers(1, 5), rows=st.lists(st.integers(0, 4), max_size=12),
       empty=st.lists(st.booleans(), min_size=17, max_size=17), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_merge_rows_equals_pairwise_merges(num_rows, rows, empty, seed, dtype):
    rows = [r % num_rows for r in rows]
    gen = torch.Generator().manual_seed(seed)
    o = torch.randn(num_rows, 3, 4, generator=gen, dtype=dtype)
    lse = torch.randn(3, num_rows, generator=gen, dtype=dtype) * 5
    o_parts = torch.randn(len(rows), 3, 4, generator=gen, dtype=dtype)
    lse_parts = torch.randn(3, len(rows), generator=gen, dtype=dtype) * 5
    lse[:, torch.tensor(empty[:num_rows])] = NEG_INF  # rows and parts that saw no key
    lse_parts[:, torch.tensor(empty[5:5 + len(rows)], dtype=torch.bool)] = NEG_INF
    o[torch.isneginf(lse[0])] = 0
    got_o, got_lse = merge_rows(o, lse, o_parts, lse_parts, torch.tensor(rows, dtype=torch.int64))
    want_o, want_lse = o.clone(), lse.clone()
    for i, r in enumerate(rows):
        m_o, m_lse = merge_attention_states(want_o[r:r + 1], want_lse[:, r:r + 1],
                                            o_parts[i:i + 1], lse_parts[:, i:i + 1])
        want_o[r:r + 1], want_lse[:, r:r + 1] = m_o, m_lse
    torch.testing.assert_close(got_o, want_o, atol=1e-6, rtol=1e-6)
    assert torch.equal(torch.isneginf(got_lse), torch.isneginf(want_lse))
    finite = torch.isfinite(want_lse)
    torch.testing.assert_close(got_lse[finite], want_lse[finite].to(got_lse.dtype))
    assert not got_o.isnan().any()


def test_errors_name_the_problem():
    q, pool = torch.randn(2, 2, 8), torch.randn(10, 1, 1, 8)
    cu_q = torch.tensor([0, 1, 2], dtype=torch.int32)
    own, cu_own = torch.tensor([0, 1]), torch.tensor([0, 1, 2], dtype=torch.int32)
    call = lambda segments, **kw: plan_segments(q, pool, cu_q, own, cu_own, segments, **kw)  # noqa: E731
    with pytest.raises(ValueError, match="pass inv_freq"):
        call([SharedSegment(torch.tensor([5]), {0: 2})])
    call([SharedSegment(torch.tensor([5]), {0: 0, 1: 0})])  # delta 0 needs no inv_freq
    with pytest.raises(ValueError, match=r"names workers \[2\]"):
        call([SharedSegment(torch.tensor([5]), {2: 0})])
    with pytest.raises(ValueError, match="D_rot <= D = 8"):
        call([SharedSegment(torch.tensor([5]), {0: 1})], inv_freq=torch.ones(5))
    with pytest.raises(ValueError, match="int64"):
        call([SharedSegment(torch.tensor([5], dtype=torch.int32), {0: 0})])
    with pytest.raises(ValueError, match=r"Lq <= Lown \+ 1"):
        plan_segments(q, pool, torch.tensor([0, 0, 2], dtype=torch.int32), own[:1],
                      torch.tensor([0, 1, 1], dtype=torch.int32), [])


def test_docstring_examples():
    result = doctest.testmod(segments_module,
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
