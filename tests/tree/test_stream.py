"""tim/tree/stream.py: the shared incremental parser, on arbitrary input."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tim.tree import EventKind, get_format

_JSONISH = st.lists(st.sampled_from(list('{}[],:" \\tnrufale0123-.e') + [
    '"reasoning"', '"answer"', '"thought"', '"tooluse"', '"subtasks"', '"conclusion"',
    '"title"', "null", "é", "\n"]), max_size=60).map("".join)


def _run(fmt, path, chunks):
    parser = fmt.parser(path)
    return [e for c in chunks for e in parser.feed(c)] + parser.close()


@settings(deadline=None)
@given(st.lists(_JSONISH, max_size=4).map("".join), st.sampled_from(
    [("thread2", ()), ("parallel", ()), ("parallel", (0,)), ("parallel", (2, 1))]))
def test_arbitrary_text_never_raises_and_ends_in_one_verdict(text, where):
    fmt = get_format(where[0])
    events = _run(fmt, where[1], [text])
    assert _run(fmt, where[1], list(text)) == events
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.MALFORMED) <= 1
    if EventKind.MALFORMED in kinds:
        assert kinds[-1] is EventKind.MALFORMED and "internal" not in events[-1].value
    else:  # a complete document: then Python's json reads it too
        json.loads(text)
        assert kinds[-1] in (EventKind.DOCUMENT_CLOSED, EventKind.TASK_CLOSED)
    try:
        json.loads(text)
    except ValueError:
        assert EventKind.MALFORMED in kinds


def test_a_bug_inside_the_reader_becomes_a_located_malformed_event():
    parser = get_format("thread2").parser()
    parser.feed('{"reasoning": [')

    def broken(tok):
        raise RuntimeError("boom")

    parser._reader = type("R", (), {"send": staticmethod(broken)})()
    events = parser.feed("{")
    assert [e.kind for e in events] == [EventKind.MALFORMED]
    assert "internal error RuntimeError('boom')" in events[0].value
    assert events[0].offset == 16 and events[0].path == ()
    assert parser.feed("}") == []


def test_tool_parameters_decode_like_json_loads():
    text = ('{"reasoning": [{"thought": "", "tooluse": {"tool_name": "f", "parameters": '
            '{"a": 1, "a": [1.5e3, {"b": "\\ud83d\\ude00\\u0041"}], "c": -0}')
    ready = [e for e in _run(get_format("thread2"), (), [text]) if e.kind is
             EventKind.TOOLUSE_READY]
    assert ready[0].value == json.loads(text[text.index('{"a"'):])
    assert ready[0].offset == len(text)
