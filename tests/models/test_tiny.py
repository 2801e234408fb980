"""Offline random models and the byte-level tokenizer."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.models import TINY_ARCHS, inspect_model, tiny_model, tiny_tokenizer

TOKENIZER = tiny_tokenizer()


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_round_trips(text):
    ids = TOKENIZER.encode(text, add_special_tokens=False)
    assert TOKENIZER.decode(ids) == text


@settings(max_examples=100, deadline=None)
@given(st.text().filter(lambda s: "<|" not in s))
def test_ids_are_the_utf8_bytes(text):
    assert TOKENIZER.encode(text, add_special_tokens=False) == list(text.encode("utf-8"))


def test_special_tokens():
    tok = TOKENIZER
    assert tok.encode("<|im_start|>a<|im_end|><|endoftext|>", add_special_tokens=False) == [
        256,
        97,
        257,
        258,
    ]
    assert (tok.eos_token, tok.eos_token_id, tok.pad_token_id, len(tok)) == (
        "<|im_end|>",
        257,
        258,
        259,
    )
    assert tok.decode([104, 257, 105], skip_special_tokens=True) == "hi"


def test_chat_template_is_chatml():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    text = TOKENIZER.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_cut_utf8_and_out_of_vocab_ids_still_decode():
    assert TOKENIZER.decode([0xF0, 0x9F]) == "\ufffd"
    assert TOKENIZER.decode([104, 5000, 105]) == "hi"


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_each_arch_builds_in_eval_mode_with_its_own_config(arch):
    loaded = tiny_model(arch, num_layers=1)
    assert loaded.model.config.model_type == arch
    assert not loaded.model.training
    assert loaded.model.config.eos_token_id == 257
    ids = TOKENIZER.encode("hello", return_tensors="pt")
    with torch.inference_mode():
        logits = loaded.model(ids).logits
    assert logits.shape == (1, 5, 259) and torch.isfinite(logits).all()
    # Lively weights: the next-token distribution is far from uniform.
    assert logits.std() > 0.3


def test_same_seed_same_weights_and_the_global_rng_is_untouched():
    state = torch.get_rng_state()
    a = tiny_model("qwen3", seed=3).model.state_dict()
    b = tiny_model("qwen3", seed=3).model.state_dict()
    c = tiny_model("qwen3", seed=4).model.state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(
        a["model.layers.0.self_attn.q_proj.weight"], c["model.layers.0.self_attn.q_proj.weight"]
    )
    assert torch.equal(a["model.norm.weight"], torch.ones(64))


def test_noise_decodes():
    loaded = tiny_model("llama", seed=1)
    prompt = "<|im_start|>user\nhi"
    ids = TOKENIZER.encode(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = loaded.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                                    do_sample=False, pad_token_id=258)
        # greedy generate picks the argmax of a plain forward over what it wrote
        logits = loaded.model(out[:, :-1]).logits[0]  # (T - 1, V)
    new_ids = out[0, ids.shape[1]:]
    assert 1 <= new_ids.numel() <= 12 and (new_ids < 259).all()
    assert torch.equal(logits[ids.shape[1] - 1 :].argmax(-1), new_ids)
    text = loaded.tokenizer.decode(out[0])
    assert text.startswith(prompt) and len(text) > len(prompt)


def test_real_shape_with_a_wider_vocab():
    # Qwen3-0.6B's shape, one layer deep to stay quick.
    loaded = tiny_model(
        "qwen3",
        num_layers=1,
        hidden_size=1024,
        num_heads=16,
        num_kv_heads=8,
        head_dim=128,
        vocab_size=151936,
        intermediate_size=3072,
        tie_word_embeddings=True,
        max_position_embeddings=40960,
    )
    spec = inspect_model(loaded.model)
    assert (spec.num_heads, spec.num_kv_heads, spec.head_dim, spec.vocab_size) == (
        16,
        8,
        128,
        151936,
    )
    assert loaded.model.model.embed_tokens.weight.std().item() == pytest.approx(
        1024**-0.5, rel=0.01
    )
    assert loaded.tokenizer.model_max_length == 40960 and len(loaded.tokenizer) == 259


def test_bad_arguments_quote_the_value():
    with pytest.raises(ValueError, match="'gpt2'"):
        tiny_model("gpt2")
    with pytest.raises(ValueError, match=r"num_heads \(4\).*num_kv_heads \(3\)"):
        tiny_model("llama", num_kv_heads=3)
    with pytest.raises(ValueError, match="got 100"):
        tiny_model("llama", vocab_size=100)
