"""The doctests of tim.serve's modules."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["tim.serve.config", "tim.serve.protocol", "tim.serve.prompt", "tim.serve.responses",
           "tim.serve.jobs", "tim.serve.engines"]


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
