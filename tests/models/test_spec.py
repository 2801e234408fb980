"""inspect_model reads the model's own facts; check_supported refuses what tim cannot run."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from tim.errors import UnsupportedModelError
from tim.models import check_supported, inspect_model, tiny_model


def default_inv_freq(head_dim, theta=10000.0):
    return 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)


def test_llama_fields():
    model = tiny_model("llama", num_layers=3, hidden_size=64, num_heads=4, num_kv_heads=2,
                       max_position_embeddings=512).model
    spec = inspect_model(model)
    assert (spec.arch, spec.num_layers, spec.num_heads, spec.num_kv_heads) == ("llama", 3, 4, 2)
    assert (spec.head_dim, spec.vocab_size, spec.max_position_embeddings) == (16, 259, 512)
    assert (spec.rope_type, spec.rotary_dim, spec.attention_scaling) == ("default", 16, 1.0)
    assert (spec.sliding_window, spec.softcap, spec.mrope_section) == (None, None, None)
    assert (spec.dtype, spec.device) == (torch.float32, torch.device("cpu"))
    torch.testing.assert_close(spec.inv_freq, default_inv_freq(16), atol=0, rtol=1e-6)
    torch.testing.assert_close(spec.inv_freq, model.model.rotary_emb.inv_freq, atol=0, rtol=0)


def test_inv_freq_is_a_private_fp32_cpu_copy():
    model = tiny_model("qwen3").model.to(torch.float64)
    spec = inspect_model(model)
    assert spec.inv_freq.dtype == torch.float32 and spec.dtype == torch.float64
    spec.inv_freq.zero_()
    assert model.model.rotary_emb.inv_freq.abs().min() > 0


def test_explicit_head_dim_and_vocab():
    spec = inspect_model(tiny_model("qwen3", head_dim=32, vocab_size=300).model)
    assert (spec.head_dim, spec.vocab_size, spec.inv_freq.numel()) == (32, 300, 16)


def test_llama3_rope_comes_from_the_rotary_module():
    params = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    model = tiny_model("llama", rope_parameters=params).model
    spec = inspect_model(model)
    assert spec.rope_type == "llama3"
    torch.testing.assert_close(spec.inv_freq, model.model.rotary_emb.inv_freq, atol=0, rtol=0)
    plain = default_inv_freq(16)
    # llama3 keeps the high frequencies and divides the lowest by `factor`.
    assert spec.inv_freq[0] == plain[0]
    torch.testing.assert_close(spec.inv_freq[-1], plain[-1] / 8.0)
    check_supported(spec, positions="shift")


def test_yarn_attention_scaling():
    params = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128}
    spec = inspect_model(tiny_model("qwen2", rope_parameters=params).model)
    assert spec.rope_type == "yarn"
    assert spec.attention_scaling == pytest.approx(0.1 * math.log(4.0) + 1.0)
    check_supported(spec, positions="shift")


def test_per_layer_sliding_windows():
    model = tiny_model(
        "qwen2", num_layers=3, use_sliding_window=True, sliding_window=8, max_window_layers=1
    ).model
    spec = inspect_model(model)
    assert spec.sliding_window == (None, 8, 8)
    assert [spec.layer_sliding_window(i) for i in range(3)] == [None, 8, 8]


def test_uniform_sliding_window_is_one_int():
    spec = inspect_model(tiny_model("mistral", sliding_window=6).model)
    assert spec.sliding_window == 6 and spec.layer_sliding_window(1) == 6


def test_softcap_and_alternating_windows_on_gemma2():
    from transformers import AutoModelForCausalLM, Gemma2Config

    config = Gemma2Config(
        vocab_size=259,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        attn_logit_softcapping=50.0,
        sliding_window=7,
    )
    spec = inspect_model(AutoModelForCausalLM.from_config(config))
    assert spec.softcap == 50.0 and spec.sliding_window == (7, None)


def test_partial_rotary_dim():
    from transformers import AutoModelForCausalLM, PhiConfig

    config = PhiConfig(
        vocab_size=259,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        partial_rotary_factor=0.5,
    )
    spec = inspect_model(AutoModelForCausalLM.from_config(config))
    assert (spec.head_dim, spec.rotary_dim) == (16, 8)


def test_a_model_without_rope_is_refused_under_every_policy():
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=259, n_embd=32, n_layer=2, n_head=2, n_positions=64)
    spec = inspect_model(GPT2LMHeadModel(config))
    assert spec.rope_type is None and spec.inv_freq is None
    assert (spec.num_layers, spec.num_heads, spec.max_position_embeddings) == (2, 2, 64)
    for positions in ("shift", "reencode", "keep"):
        with pytest.raises(UnsupportedModelError, match="gpt2 has no rotary"):
            check_supported(spec, positions=positions)


@pytest.mark.parametrize(
    "params",
    [
        {"rope_type": "dynamic", "factor": 2.0},
        {
            "rope_type": "longrope",
            "short_factor": [1.0] * 8,
            "long_factor": [2.0] * 8,
            "original_max_position_embeddings": 256,
        },
    ],
)
def test_unshiftable_rope_types_are_refused_only_for_shift(params):
    spec = inspect_model(tiny_model("llama", rope_parameters=params).model)
    assert spec.rope_type == params["rope_type"]
    with pytest.raises(
        UnsupportedModelError, match=rf"'{params['rope_type']}'.*positions='reencode'"
    ):
        check_supported(spec, positions="shift")
    check_supported(spec, positions="reencode")
    check_supported(spec, positions="keep")


def test_mrope_is_refused_for_shift():
    spec = inspect_model(tiny_model("qwen2").model)
    check_supported(spec)
    mrope = dataclasses.replace(spec, mrope_section=(2, 3, 3))
    with pytest.raises(UnsupportedModelError, match=r"M-RoPE.*\[2, 3, 3\].*reencode"):
        check_supported(mrope, positions="shift")
    check_supported(mrope, positions="reencode")


def test_unknown_rope_type_is_refused_for_shift():
    spec = dataclasses.replace(inspect_model(tiny_model("llama").model), rope_type="axial")
    with pytest.raises(UnsupportedModelError, match="'axial'"):
        check_supported(spec, positions="shift")


def test_bad_policy_is_a_value_error_quoting_it():
    spec = inspect_model(tiny_model("llama").model)
    with pytest.raises(ValueError, match="'shfit'"):
        check_supported(spec, positions="shfit")
