"""The docstring examples of tim.tree run, and the package stays free of torch."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import subprocess
import sys

import pytest

import tim.tree

MODULES = sorted(m.name for m in pkgutil.walk_packages(tim.tree.__path__, "tim.tree."))


@pytest.mark.parametrize("name", ["tim.tree", *MODULES])
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0


def test_public_names_exist():
    assert set(tim.tree.__all__) <= set(dir(tim.tree))
    for name in MODULES:
        module = importlib.import_module(name)
        assert set(getattr(module, "__all__", ())) <= set(dir(module)), name


def test_importing_tim_tree_imports_no_torch_and_no_llguidance():
    code = ("import sys, tim.tree, tim.tree.formats; "
            "print('torch' in sys.modules, 'llguidance' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False", "False"]
