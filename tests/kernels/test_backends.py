"""The backend registry: names, auto choice, describe(), lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import tim.kernels as kernels
from tim.errors import UnsupportedModelError
from tim.kernels import AttentionParams
from tim.kernels.backends import AUTO_ORDER, get_backend, resolve_backend


def test_names_and_auto_order():
    assert set(kernels.backend_names()) == {"torch", "flash", "torch-cuda", "sdpa"}
    assert AUTO_ORDER["cpu"] == ("torch",)
    assert AUTO_ORDER["cuda"][-1] == "torch"


def test_auto_on_cpu_is_torch_even_with_softcap():
    q = torch.randn(2, 2, 8)
    assert resolve_backend("auto", q, AttentionParams(softcap=5.0)).name == "torch"


def test_explicit_backend_lacking_a_feature_raises():
    q = torch.randn(2, 2, 8)
    with pytest.raises(UnsupportedModelError, match="'sdpa'.*softcap"):
        resolve_backend("sdpa", q, AttentionParams(softcap=5.0))
    with pytest.raises(UnsupportedModelError, match="'torch-cuda'.*CUDA"):
        resolve_backend("torch-cuda", q, AttentionParams())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA report")
def test_describe_without_cuda():
    text = kernels.describe("cpu")
    assert text.splitlines()[0] == "auto on cpu -> torch"
    assert "flash      unavailable: needs a CUDA device" in text
    assert "torch-cuda unavailable: needs a CUDA device" in text
    assert kernels.describe("cuda").splitlines()[0] == "auto on cuda -> none"
    assert kernels.describe().splitlines()[0] == "auto on cpu -> torch"


def test_backend_objects_are_cached():
    assert get_backend("torch") is get_backend("torch")


def test_importing_and_using_kernels_never_imports_flash_attn():
    code = (
        "import sys, torch, tim.kernels as K\n"
        "q = torch.randn(3, 2, 8)\n"
        "cu = torch.tensor([0, 3], dtype=torch.int32)\n"
        "K.varlen_attention(q, q, q, cu, cu, 3, 3)\n"
        "K.describe('cpu')\n"
        "print('flash_attn' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
