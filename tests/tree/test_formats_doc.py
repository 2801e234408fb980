"""docs/formats.md: its worked examples are what the code does."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tim.errors import FormatError
from tim.tree import EventKind, TaskTree, get_format

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _blocks(doc: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)\n```", doc, re.S)


def _table_after(doc: str, heading: str) -> list[tuple]:
    """(offset, kind, path) of each row of the first table after ``heading``."""
    rest = doc[doc.index(heading):]
    table = rest[rest.index("\n|"):]
    table = table[:table.index("\n\n")]
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| `(\(.*?\))` \|", table, re.M)
    return [(int(o), EventKind[k], ast.literal_eval(p)) for o, k, p in rows]


def _events(fmt, path, text):
    parser = fmt.parser(path)
    return [(e.offset, e.kind, e.path) for e in parser.feed(text) + parser.close()]


def test_thread2_example(doc):
    fmt = get_format("thread2")
    text, tree_json = _blocks(doc, "json")[:2]
    tree = fmt.parse(text)
    assert tree == TaskTree.from_json(tree_json) and fmt.render(tree) == text
    assert _table_after(doc, "The events, from") == _events(fmt, (), text)


def test_parallel_example(doc):
    fmt = get_format("parallel")
    streams_block, view = _blocks(doc, "text")[:2]
    streams = {}
    for line in streams_block.splitlines():
        path, text = line.split(" ", 1) if line.startswith("()") else line.split(") ", 1)
        streams[ast.literal_eval(path if path == "()" else path + ")")] = text.lstrip()
    tree = fmt.parse(streams)
    assert tree == TaskTree.from_json(_blocks(doc, "json")[1])
    assert fmt.render(tree) == streams and fmt.view_text(streams) == view
    assert _table_after(doc, "Events of the root stream") == _events(fmt, (), streams[()])
    assert _table_after(doc, "Events of the stream `(1,)`") == _events(fmt, (1,),
                                                                       streams[(1,)])


def test_malformed_example(doc):
    fmt = get_format("thread2")
    bad = _blocks(doc, "json")[0].replace('"conclusion": "401"', '"conclusion": 401')
    assert _table_after(doc, "locating the error") == _events(fmt, (), bad)[-1:]
    message = re.search(r'FormatError\("(.*?)"\)', doc).group(1)
    with pytest.raises(FormatError) as info:
        fmt.parse(bad)
    assert str(info.value) == message
