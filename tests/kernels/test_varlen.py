"""varlen_attention (the torch backend's CPU fast path) against dense float64 SDPA."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.errors import UnsupportedModelError
from tim.kernels import varlen_attention


def run(p, case, **kw):
    return varlen_attention(
        p.q, p.k, p.v, p.cu_q, p.cu_k, max(p.q_lens), max(p.k_lens),
        causal=case.causal, window_size=case.window, softcap=case.softcap,
        return_lse=True, **kw,
    )


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_matches_dense_sdpa(kt, data):
    case = data.draw(kt.attention_cases())
    p = kt.make_problem(case.seed, case.q_lens, case.k_lens, case.num_heads,
                        case.num_kv_heads, case.dim)
    out, lse = run(p, case)
    ref_out, ref_lse = kt.dense_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, causal=case.causal,
                                          window=case.window, softcap=case.softcap)
    assert out.dtype == torch.float32 and lse.dtype == torch.float32
    assert out.shape == p.q.shape and lse.shape == (case.num_heads, p.q.shape[0])
    torch.testing.assert_close(out.double(), ref_out, atol=2e-5, rtol=0)
    kt.assert_lse_close(lse, ref_lse, atol=2e-5)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_float64_is_exact(kt, data):
    case = data.draw(kt.attention_cases(max_len=24))
    p = kt.make_problem(case.seed, case.q_lens, case.k_lens, case.num_heads,
                        case.num_kv_heads, case.dim, dtype=torch.float64)
    out, lse = run(p, case)
    ref_out, ref_lse = kt.dense_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, causal=case.causal,
                                          window=case.window, softcap=case.softcap)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=0)
    kt.assert_lse_close(lse, ref_lse, atol=1e-10)


@pytest.mark.parametrize(("causal", "window"), [(True, (-1, -1)), (True, (16, -1)), (False, (5, 7))])
@pytest.mark.parametrize("group", [1, 2, 4, 8])
def test_odd_sizes_head_dim_59_seqlen_97(kt, causal, window, group):
    # 97 queries over 97 keys (prefill), 3 over 97 (queries shorter than keys), an empty
    # sequence, 97 over 40 (rows with no visible key under causal)
    q_lens, k_lens = [97, 3, 0, 97], [97, 97, 5, 40]
    p = kt.make_problem(group * 97 + len(window), q_lens, k_lens, 2 * group, 2, 59)
    case = type("C", (), dict(causal=causal, window=window, softcap=0.0))
    out, lse = run(p, case)
    ref_out, ref_lse = kt.dense_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, causal=causal,
                                          window=window)
    torch.testing.assert_close(out.double(), ref_out, atol=2e-5, rtol=0)
    kt.assert_lse_close(lse, ref_lse, atol=2e-5)


@pytest.fixture
def nan_filled_empty_tensors():
    """torch.empty returns NaNs here, so a row the kernel forgets to write shows up."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    yield
    torch.use_deterministic_algorithms(before)


@pytest.mark.parametrize("backend", ["torch", "sdpa"])
@pytest.mark.usefixtures("nan_filled_empty_tensors")
def test_no_visible_key_gives_zero_and_neg_inf(kt, backend):
    # seq 0, causal: rows 0 and 1 see nothing; seq 1 has no keys; seq 2 has no queries
    p = kt.make_problem(0, [4, 3, 0], [2, 0, 5], 2, 1, 8)
    out, lse = varlen_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, 4, 5, return_lse=True,
                                backend=backend)
    empty_rows = torch.tensor([1, 1, 0, 0, 1, 1, 1], dtype=torch.bool)
    assert torch.equal(out[empty_rows], torch.zeros_like(out[empty_rows]))
    assert torch.isneginf(lse[:, empty_rows]).all() and torch.isfinite(lse[:, ~empty_rows]).all()
    assert not out.isnan().any()


def test_default_scale_and_explicit_scale(kt):
    p = kt.make_problem(1, [5], [9], 4, 2, 16)
    out = varlen_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, 5, 9, softmax_scale=0.3)
    ref, _ = kt.dense_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, scale=0.3)
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=0)
    default = varlen_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, 5, 9)
    assert not torch.allclose(default, out)


def test_bad_arguments_raise_value_error(kt):
    p = kt.make_problem(2, [3], [3], 4, 2, 8)
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        varlen_attention(p.q[:, :3], p.k, p.v, p.cu_q, p.cu_k, 3, 3)
    with pytest.raises(ValueError, match="int32"):
        varlen_attention(p.q, p.k, p.v, p.cu_q.long(), p.cu_k, 3, 3)
    with pytest.raises(ValueError, match="window_size"):
        varlen_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, 3, 3, window_size=(-2, 0))
    with pytest.raises(ValueError, match="softcap"):
        varlen_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, 3, 3, softcap=-1.0)
    with pytest.raises(ValueError, match=r"end <= 3"):
        varlen_attention(p.q, p.k, p.v, p.cu_q, kt.cu([4]), 3, 4)
    with pytest.raises(ValueError, match="unknown attention backend 'nope'"):
        varlen_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, 3, 3, backend="nope")


def test_unavailable_backend_names_what_is_missing(kt):
    p = kt.make_problem(3, [3], [3], 2, 1, 8)
    with pytest.raises(UnsupportedModelError, match="'flash'.*CUDA"):
        varlen_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, 3, 3, backend="flash")
    with pytest.raises(UnsupportedModelError, match="softcap"):
        varlen_attention(p.q, p.k, p.v, p.cu_q, p.cu_k, 3, 3, backend="sdpa", softcap=2.0)


@pytest.mark.parametrize("kernel_backend", ["torch", "sdpa"])
def test_strided_inputs_as_hf_hands_them_over(kt, kernel_backend):
    # HF attention layers hold (1, H, T, D); a transpose gives (T, H, D) views, not copies
    p = kt.make_problem(4, [6, 1], [6, 30], 8, 2, 32)
    q = p.q.transpose(0, 1).contiguous().transpose(0, 1)
    k = p.k.transpose(0, 1).contiguous().transpose(0, 1)
    v = p.v.transpose(0, 1).contiguous().transpose(0, 1)
    assert not q.is_contiguous() and not k.is_contiguous()
    out = varlen_attention(q, k, v, p.cu_q, p.cu_k, 6, 30, backend=kernel_backend)
    ref, _ = kt.dense_attention(p.q, p.k, p.v, p.cu_q, p.cu_k)
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=0)
