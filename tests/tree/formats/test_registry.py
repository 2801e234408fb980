"""tim/tree/formats/__init__.py: the format registry."""

from __future__ import annotations

import pytest

from tim.tree import ParallelFormat, Thread2Format, get_format
from tim.tree.formats import FORMAT_NAMES


def test_get_format_by_name():
    assert isinstance(get_format("thread2"), Thread2Format)
    assert isinstance(get_format("parallel"), ParallelFormat)
    assert [get_format(n).name for n in FORMAT_NAMES] == list(FORMAT_NAMES)
    assert (get_format("thread2").forks, get_format("parallel").forks) == (False, True)


@pytest.mark.parametrize("name", ["", "Thread2", "json", None])
def test_unknown_names_are_quoted(name):
    with pytest.raises(ValueError, match=f"unknown format {name!r}"):
        get_format(name)
