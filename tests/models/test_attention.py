"""The tim attention function, checked against transformers' own eager attention."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tim.errors import TimError, UnsupportedModelError
from tim.models import forward_context, tiny_model, use_tim_attention
from tim.models.testing import DenseCausalBackend, forward_packed

ATOL = 1e-4
ARCHS = ["llama", "qwen2", "qwen3", "mistral"]


def eager_logits(model, input_ids, position_ids=None, attention_mask=None):
    """Plain transformers forward with eager attention: the oracle."""
    model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            out = model(
                input_ids=input_ids[None],
                position_ids=None if position_ids is None else position_ids[None],
                attention_mask=attention_mask,
                use_cache=False,
            )
    finally:
        use_tim_attention(model)
    return out.logits[0]


def random_ids(n, seed):
    return torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=ARCHS)
def model(request):
    return use_tim_attention(tiny_model(request.param, num_layers=2, seed=7).model)


def test_single_sequence_matches_eager(model):
    ids = random_ids(19, seed=1)
    got = forward_packed(model, ids, torch.arange(19), DenseCausalBackend([0, 19]))
    want = eager_logits(model, ids)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_packed_sequences_with_restarting_positions_match_separate_forwards(model):
    a, b = random_ids(13, seed=2), random_ids(7, seed=3)
    ids = torch.cat([a, b])
    pos = torch.cat([torch.arange(13), torch.arange(7)])
    got = forward_packed(model, ids, pos, DenseCausalBackend([0, 13, 20]))
    want = torch.cat([eager_logits(model, a), eager_logits(model, b)])
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    # The oracle is sensitive: letting the second sequence see the first changes it.
    leaky = forward_packed(model, ids, pos, DenseCausalBackend([0, 20]))
    assert (leaky[13:] - want[13:]).abs().max() > 1e-2


def test_gapped_positions_follow_our_metadata_not_packed_sequence_detection(model):
    ids = random_ids(16, seed=4)
    pos = torch.cat([torch.arange(8), torch.arange(20, 28)])  # one sequence, a gap of 12
    got = forward_packed(model, ids, pos, DenseCausalBackend([0, 16]))
    # An explicit all-ones 2D mask stops transformers treating the gap as a new sequence.
    want = eager_logits(model, ids, pos, attention_mask=torch.ones(1, 16, dtype=torch.long))
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    # The trap is real: without a mask, eager masks the gap block-diagonally.
    trapped = eager_logits(model, ids, pos)
    assert (trapped[8:] - want[8:]).abs().max() > 1e-2


def test_every_layer_calls_the_backend_once_in_order(model):
    backend = DenseCausalBackend([0, 5])
    forward_packed(model, random_ids(5, seed=5), torch.arange(5), backend)
    assert backend.layers_called == list(range(model.config.num_hidden_layers))


def test_sliding_window_per_layer_matches_eager():
    # Qwen2: layers >= max_window_layers slide, the others attend fully.
    model = tiny_model(
        "qwen2", num_layers=2, use_sliding_window=True, sliding_window=4, max_window_layers=1
    ).model
    use_tim_attention(model)
    ids = random_ids(15, seed=6)
    got = forward_packed(model, ids, torch.arange(15), DenseCausalBackend([0, 15]))
    torch.testing.assert_close(got, eager_logits(model, ids), atol=ATOL, rtol=0)


def test_mistral_sliding_window_reaches_the_backend():
    model = use_tim_attention(tiny_model("mistral", sliding_window=3).model)
    ids = random_ids(12, seed=7)
    want = eager_logits(model, ids)
    got = forward_packed(model, ids, torch.arange(12), DenseCausalBackend([0, 12]))
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)

    class NoWindow(DenseCausalBackend):
        def attend(self, layer_idx, q, k, v, *, softmax_scale, sliding_window, softcap):
            assert sliding_window == 3
            return super().attend(
                layer_idx,
                q,
                k,
                v,
                softmax_scale=softmax_scale,
                sliding_window=None,
                softcap=softcap,
            )

    ignored = forward_packed(model, ids, torch.arange(12), NoWindow([0, 12]))
    assert (ignored - want).abs().max() > 1e-2


def test_softcap_and_custom_scaling_match_eager_on_gemma2():
    from transformers import AutoModelForCausalLM, Gemma2Config

    config = Gemma2Config(
        vocab_size=259,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=8,
        attn_logit_softcapping=2.0,
        sliding_window=5,
        initializer_range=0.3,
    )
    torch.manual_seed(0)
    model = use_tim_attention(AutoModelForCausalLM.from_config(config).eval())
    ids = random_ids(11, seed=8)
    want = eager_logits(model, ids)
    got = forward_packed(model, ids, torch.arange(11), DenseCausalBackend([0, 11]))
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)

    seen = []

    class NoSoftcap(DenseCausalBackend):
        def attend(self, layer_idx, q, k, v, *, softmax_scale, sliding_window, softcap):
            seen.append((softmax_scale, sliding_window, softcap))
            return super().attend(
                layer_idx,
                q,
                k,
                v,
                softmax_scale=softmax_scale,
                sliding_window=sliding_window,
                softcap=None,
            )

    uncapped = forward_packed(model, ids, torch.arange(11), NoSoftcap([0, 11]))
    assert (uncapped - want).abs().max() > 1e-3
    # Gemma2 alternates sliding and full layers, and scales by query_pre_attn_scalar.
    assert seen == [(8**-0.5, 5, 2.0), (8**-0.5, None, 2.0)]


def test_call_outside_a_forward_context_raises():
    model = use_tim_attention(tiny_model("llama").model)
    with pytest.raises(TimError, match="outside a forward context"), torch.inference_mode():
        model(input_ids=random_ids(4, seed=9)[None], use_cache=False)


def test_attention_mask_is_refused_not_ignored():
    model = use_tim_attention(tiny_model("llama").model)
    with (
        forward_context(DenseCausalBackend([0, 4])),
        pytest.raises(TimError, match="attention_mask"),
    ):
        model(input_ids=random_ids(4, seed=10)[None], attention_mask=torch.ones(1, 1, 4, 4))


def test_forward_packed_requires_tim_attention():
    model = tiny_model("llama").model  # still sdpa
    with pytest.raises(TimError, match="use_tim_attention"):
        forward_packed(model, random_ids(3, seed=0), torch.arange(3), DenseCausalBackend([0, 3]))


def test_backend_checks_the_token_count():
    model = use_tim_attention(tiny_model("llama").model)
    with pytest.raises(TimError, match="cu_seqlens covers 5"):
        forward_packed(model, random_ids(4, seed=0), torch.arange(4), DenseCausalBackend([0, 5]))


def test_use_tim_attention_refuses_non_transformers_models():
    with pytest.raises(UnsupportedModelError, match="Linear"):
        use_tim_attention(torch.nn.Linear(2, 2))


class _LargestOutput(TorchDispatchMode):
    """Records the largest tensor any op produces."""

    def __init__(self):
        super().__init__()
        self.max_bytes = 0
        self.max_shape = ()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.numel() * t.element_size() > self.max_bytes:
                self.max_bytes, self.max_shape = t.numel() * t.element_size(), tuple(t.shape)
        return out


def test_no_cache_and_no_token_by_token_mask_is_built(monkeypatch):
    from transformers import cache_utils

    def refuse(*args, **kwargs):
        raise AssertionError("a DynamicCache was built")

    monkeypatch.setattr(cache_utils.DynamicCache, "__init__", refuse)
    model = use_tim_attention(tiny_model("qwen3", num_layers=1).model)
    num_seqs, seq_len = 48, 32
    total = num_seqs * seq_len
    ids = random_ids(total, seed=11)
    pos = torch.arange(seq_len).repeat(num_seqs)  # 48 restarts: looks packed to transformers
    recorder = _LargestOutput()
    with recorder:
        logits = forward_packed(model, ids, pos, DenseCausalBackend(range(0, total + 1, seq_len)))
    assert logits.shape == (total, 259)
    # A (T, T) mask would take at least T * T bytes even as bool; the largest tensor
    # actually built is the logits (T, V) fp32.
    assert recorder.max_bytes < total * total, recorder.max_shape
    assert recorder.max_shape == (1, total, 259)
