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


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_every_format_reads_a_run_from_its_streams(name):
    """``parser(path)`` and ``parse_streams`` work the same for both formats, so callers do
    not branch on ``forks``."""
    from tim.tree import Task, TaskTree

    tree = TaskTree([Task("t", "c", title="A", subtasks=[Task("u", "d", title="a")])],
                    answer="x")
    fmt = get_format(name)
    rendered = fmt.render(tree)
    texts = rendered if isinstance(rendered, dict) else {(): rendered}
    assert fmt.parse_streams(texts) == tree
    for path, text in texts.items():  # each stream's parser reads its text to the end
        parser = fmt.parser(path)
        events = parser.feed(text) + parser.close()
        assert not [e for e in events if e.kind.name == "MALFORMED"]
