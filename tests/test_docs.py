"""Doctest examples in docs/api.md and in the engine / API modules run and hold."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
MODULES = ["tim.api", "tim.engine.sampler", "tim.engine.detok", "tim.engine.config",
           "tim.engine.batch"]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0  # a module without examples fails


def test_api_doc_examples():
    result = doctest.testfile(str(ROOT / "docs" / "api.md"), module_relative=False)
    assert result.failed == 0 and result.attempted >= 3


def test_import_tim_is_light():
    import subprocess
    import sys

    code = "import sys, tim; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False False"
