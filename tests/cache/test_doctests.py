"""The numpydoc examples in tim.cache run and pass."""

import doctest
import importlib

import pytest

MODULES = ["budget", "cascade", "config", "pool", "positions", "span", "store", "view"]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    module = importlib.import_module(f"tim.cache.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_doctests_exist():
    found = sum(
        doctest.testmod(importlib.import_module(f"tim.cache.{n}")).attempted for n in MODULES
    )
    assert found >= 10
