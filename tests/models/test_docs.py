"""The examples in tim.models' docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["attention", "bundled", "context", "hf_folder", "loading", "parts", "spec", "testing",
           "tiny"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"tim.models.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_every_public_name_has_a_docstring():
    import tim.models

    missing = [
        n
        for n in tim.models.__all__
        if callable(getattr(tim.models, n)) and not getattr(tim.models, n).__doc__
    ]
    assert missing == []


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, tim.models; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
