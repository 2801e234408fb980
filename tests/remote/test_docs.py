"""The examples in tim.remote's docstrings run and hold."""

from __future__ import annotations

import doctest

import pytest

import tim.remote.client
import tim.remote.executor
import tim.remote.wire


@pytest.mark.parametrize("module", [tim.remote.client, tim.remote.executor, tim.remote.wire])
def test_module_examples(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0
