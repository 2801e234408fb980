"""rope_shift(rope(k, p), Δ) == rope(k, p + Δ) for the RoPE types transformers configs name,
with RoPE applied by the model's own rotary module (built offline from a LlamaConfig)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from tim.errors import UnsupportedModelError
from tim.kernels import check_rope_shiftable, rope_shift

MAX_POS = 512
ROPE_PARAMETERS = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    "dynamic": {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
    "llama3": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
               "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 128},
    "yarn": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
             "original_max_position_embeddings": 128},
    "longrope": {"rope_type": "longrope", "rope_theta": 10000.0, "factor": 4.0,
                 "short_factor": [1.0 + i / 16 for i in range(16)],
                 "long_factor": [2.0 + i / 8 for i in range(16)],
                 "original_max_position_embeddings": MAX_POS},
}


def rotary_module(rope_type: str) -> LlamaRotaryEmbedding:
    config = LlamaConfig(hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=MAX_POS,
                         rope_parameters=dict(ROPE_PARAMETERS[rope_type]))
    return LlamaRotaryEmbedding(config)


def model_rope(module: LlamaRotaryEmbedding, k: torch.Tensor, positions: torch.Tensor):
    """The model's RoPE on keys (T, Hkv, D): the module's inv_freq and attention_scaling, HF's
    apply_rotary_pos_emb, with the angle p * inv_freq taken in float64 (the module's forward
    rounds it to fp32, an error of up to ulp(p * inv_freq) / 2 that is not ours)."""
    freqs = positions.double()[:, None] * module.inv_freq.double()[None, :]  # (T, D/2)
    emb = torch.cat([freqs, freqs], dim=-1)[None]  # (1, T, D)
    cos, sin = emb.cos() * module.attention_scaling, emb.sin() * module.attention_scaling
    k4 = k.double().transpose(0, 1)[None]  # (1, Hkv, T, D)
    _, rotated = apply_rotary_pos_emb(k4, k4, cos, sin)
    return rotated[0].transpose(0, 1)  # (T, Hkv, D) float64


@pytest.mark.parametrize("rope_type", ["default", "linear", "dynamic", "llama3", "yarn"])
def test_float64_angles_match_the_modules_own_forward(rope_type):
    module = rotary_module(rope_type)
    positions = torch.arange(MAX_POS)
    cos, sin = module(torch.zeros(1, dtype=torch.float32), positions[None])
    freqs = positions.double()[:, None] * module.inv_freq.double()[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    # fp32 rounding of p * inv_freq in the module: at most ulp(512) / 2 = 3e-5 rad
    torch.testing.assert_close(cos[0].double(), emb.cos() * module.attention_scaling,
                               atol=6e-5, rtol=0)
    torch.testing.assert_close(sin[0].double(), emb.sin() * module.attention_scaling,
                               atol=6e-5, rtol=0)


@pytest.mark.parametrize("rope_type", ["default", "linear", "dynamic", "llama3", "yarn", "longrope"])
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), num_tokens=st.integers(1, 40),
       per_token=st.booleans(), data=st.data())
def test_shift_equals_rope_at_the_new_position(rope_type, seed, num_tokens, per_token, data):
    module = rotary_module(rope_type)
    check_rope_shiftable(rope_type, max_position=MAX_POS - 1,
                         original_max_position=MAX_POS)
    gen = torch.Generator().manual_seed(seed)
    k = torch.randn(num_tokens, 2, 32, generator=gen, dtype=torch.float64)
    positions = torch.randint(0, MAX_POS, (num_tokens,), generator=gen)
    if per_token:
        new = torch.randint(0, MAX_POS, (num_tokens,), generator=gen)
        delta = new - positions
    else:
        shift = data.draw(st.integers(-int(positions.min()), MAX_POS - 1 - int(positions.max())))
        new, delta = positions + shift, shift
    stored = model_rope(module, k, positions).float()  # what the KV cache holds
    shifted = rope_shift(stored, delta, module.inv_freq)
    assert shifted.dtype == torch.float32
    torch.testing.assert_close(shifted.double(), model_rope(module, k, new), atol=1e-5, rtol=0)


def test_shift_matches_the_modules_fp32_forward_at_small_positions():
    module = rotary_module("yarn")  # attention_scaling != 1: no extra scale on the shift
    assert module.attention_scaling != 1.0
    k = torch.randn(1, 2, 12, 32)
    positions, new = torch.tensor([[40]]), torch.tensor([[9]])
    cos, sin = module(k, positions)
    _, at_40 = apply_rotary_pos_emb(k, k, cos, sin)
    cos, sin = module(k, new)
    _, at_9 = apply_rotary_pos_emb(k, k, cos, sin)
    shifted = rope_shift(at_40[0].transpose(0, 1), -31, module.inv_freq).transpose(0, 1)
    torch.testing.assert_close(shifted, at_9[0], atol=2e-5, rtol=0)  # fp32 module angles


def test_partial_rotary_leaves_the_tail_alone():
    inv_freq = 1.0 / 10000 ** (torch.arange(0, 16, 2, dtype=torch.float32) / 16)  # D_rot = 16
    k = torch.randn(5, 2, 24, dtype=torch.float64)
    out = rope_shift(k, torch.tensor([3, -2, 0, 7, 100]), inv_freq)
    assert torch.equal(out[..., 16:], k[..., 16:])
    assert torch.equal(out[2], k[2])  # delta 0
    angle = 3 * inv_freq.double()
    x1, x2 = k[0, :, :8], k[0, :, 8:16]
    torch.testing.assert_close(out[0, :, :8], x1 * angle.cos() - x2 * angle.sin())
    torch.testing.assert_close(out[0, :, 8:16], x2 * angle.cos() + x1 * angle.sin())


def test_dtypes_and_composition():
    inv_freq = 1.0 / 10000 ** (torch.arange(0, 64, 2, dtype=torch.float32) / 64)
    k = torch.randn(7, 2, 64)
    assert rope_shift(k.bfloat16(), -5, inv_freq).dtype == torch.bfloat16
    twice = rope_shift(rope_shift(k.double(), 1000, inv_freq), -1000, inv_freq)
    torch.testing.assert_close(twice, k.double(), atol=1e-12, rtol=0)


def test_bad_shapes_raise():
    inv_freq = torch.ones(8)
    with pytest.raises(ValueError, match="D_rot"):
        rope_shift(torch.randn(3, 1, 8), 1, inv_freq)
    with pytest.raises(ValueError, match="delta"):
        rope_shift(torch.randn(3, 1, 16), torch.tensor([1, 2]), inv_freq)


@pytest.mark.parametrize("rope_type", ["default", "linear", "llama3", "yarn", "proportional"])
def test_static_types_are_shiftable(rope_type):
    check_rope_shiftable(rope_type)


def test_dynamic_frequencies_change_past_max_position():
    module = rotary_module("dynamic")
    before = module.inv_freq.clone()
    module(torch.zeros(1), torch.arange(MAX_POS)[None])
    assert torch.equal(module.inv_freq, before)  # below the max: plain RoPE, shift is exact
    module(torch.zeros(1), torch.arange(MAX_POS + 1)[None])
    assert not torch.equal(module.inv_freq, before)  # past it: every key would move
    check_rope_shiftable("dynamic")
    check_rope_shiftable("dynamic", max_position=MAX_POS - 1, original_max_position=MAX_POS)
    with pytest.raises(UnsupportedModelError, match="'dynamic'"):
        check_rope_shiftable("dynamic", max_position=MAX_POS, original_max_position=MAX_POS)


@pytest.mark.parametrize(("rope_type", "kwargs", "match"), [
    ("mrope", {}, "multimodal"),
    ("default", {"mrope_section": [16, 24, 24]}, "multimodal"),
    ("longrope", {}, "long factors"),
    ("longrope", {"max_position": 4096, "original_max_position": 4096}, "long factors"),
    ("su", {}, "unknown"),
])
def test_unshiftable_types_raise_naming_the_type(rope_type, kwargs, match):
    with pytest.raises(UnsupportedModelError, match=f"'{rope_type}'.*{match}"):
        check_rope_shiftable(rope_type, **kwargs)


def test_interleaved_shift_matches_cohere_rope():
    """Cohere's RoPE rotates pairs (x[2i], x[2i+1]); the interleaved shift follows it, and
    the halves rotation does not."""
    from transformers import CohereConfig
    from transformers.models.cohere.modeling_cohere import (
        CohereRotaryEmbedding,
    )
    from transformers.models.cohere.modeling_cohere import (
        apply_rotary_pos_emb as cohere_rope,
    )

    module = CohereRotaryEmbedding(CohereConfig(hidden_size=64, num_attention_heads=2))
    k = torch.randn(1, 2, 12, 32, dtype=torch.float64)
    at = {}
    for p in (40, 9):
        cos, sin = module(k.float(), torch.tensor([[p]]))
        at[p] = cohere_rope(k, k, cos.double(), sin.double())[1][0].transpose(0, 1)  # (T, H, D)
    shifted = rope_shift(at[40], -31, module.inv_freq, interleaved=True)
    torch.testing.assert_close(shifted, at[9], atol=1e-5, rtol=0)
    halves = rope_shift(at[40], -31, module.inv_freq)
    assert (halves - at[9]).abs().max() > 0.1
