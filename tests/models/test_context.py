"""The forward context: set only by a `with` block, never nested, always cleared."""

from __future__ import annotations

import threading

import pytest
import torch

from tim.errors import TimError
from tim.models import ForwardBackend, current_backend, forward_context
from tim.models.testing import DenseCausalBackend


def test_sets_and_clears():
    backend = DenseCausalBackend([0, 1])
    with forward_context(backend) as active:
        assert active is backend
        assert current_backend() is backend
    with pytest.raises(TimError, match="outside a forward context"):
        current_backend()


def test_refuses_to_nest_and_keeps_the_outer_backend():
    outer, inner = DenseCausalBackend([0, 1]), DenseCausalBackend([0, 2])
    with forward_context(outer):
        with pytest.raises(TimError, match="do not nest"), forward_context(inner):
            pass  # pragma: no cover - never entered
        assert current_backend() is outer
    with pytest.raises(TimError):
        current_backend()


def test_clears_after_an_exception():
    with pytest.raises(RuntimeError, match="boom"), forward_context(DenseCausalBackend([0, 1])):
        raise RuntimeError("boom")
    with pytest.raises(TimError):
        current_backend()
    with forward_context(DenseCausalBackend([0, 1])):  # usable again
        pass


def test_rejects_objects_without_attend():
    with pytest.raises(TypeError, match="ForwardBackend"), forward_context(object()):
        pass  # pragma: no cover - never entered


def test_is_not_visible_from_another_thread():
    seen = []

    def probe():
        try:
            current_backend()
            seen.append("visible")
        except TimError:
            seen.append("absent")

    with forward_context(DenseCausalBackend([0, 1])):
        worker = threading.Thread(target=probe)
        worker.start()
        worker.join()
    assert seen == ["absent"]


def test_dense_backend_satisfies_the_protocol_and_attends_causally():
    backend = DenseCausalBackend([0, 3, 5])
    assert isinstance(backend, ForwardBackend)
    q, k, v = torch.randn(5, 4, 8), torch.randn(5, 2, 8), torch.randn(5, 2, 8)
    out = backend.attend(0, q, k, v, softmax_scale=0.3, sliding_window=None, softcap=None)
    # Independent oracle: SDPA with an explicit block-diagonal causal mask.
    mask = torch.zeros(5, 5, dtype=torch.bool)
    mask[:3, :3] = torch.ones(3, 3).tril().bool()
    mask[3:, 3:] = torch.ones(2, 2).tril().bool()
    kk, vv = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)  # (T, H, D)
    want = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(0, 1), kk.transpose(0, 1), vv.transpose(0, 1), attn_mask=mask, scale=0.3
    ).transpose(0, 1)  # (T, H, D)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


def test_dense_backend_validates_offsets():
    with pytest.raises(ValueError, match=r"\[1, 3\]"):
        DenseCausalBackend([1, 3])
    with pytest.raises(ValueError, match=r"\[0, 3, 2\]"):
        DenseCausalBackend([0, 3, 2])
