"""tim/tree/formats/parallel.py: streams, forks and joins, assembly, grammars per stream."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.errors import FormatError
from tim.tree import EventKind, Task, TaskTree, ToolUse, assemble_tree, get_format
from tim.tree.formats.common import example_tree

FMT = get_format("parallel")


def _events(path, chunks) -> list:
    parser = FMT.parser(path)
    return [e for c in chunks for e in parser.feed(c)] + parser.close()


def _stream_json(task: Task) -> dict:
    """What a child stream holds, by the TIM schema: the task, its subtasks as a plan."""
    plain = TaskTree([task], "").to_json()["reasoning"][0]
    if task.subtasks is not None:
        plain["subtasks"] = [{"title": t.title} for t in task.subtasks]
    return plain


@settings(deadline=None)
@given(data=st.data())
def test_streams_parse_back_to_the_tree_under_any_chunking(strategies, data, event_order):
    tree = data.draw(strategies.trees(titles="always"))
    streams = FMT.render(tree)
    assert list(streams) == [(), *(path for path, _ in tree.walk())]
    assert json.loads(streams[()]) == {"reasoning": [{"title": t.title} for t in tree.reasoning],
                                       "answer": tree.answer}
    all_events = []
    for path, text in streams.items():
        events = _events(path, [text])
        assert _events(path, data.draw(strategies.chunkings(text))) == events
        event_order(events, len(text), path)
        all_events.append(events)
        if path:
            task = tree.task_at(path)
            assert text.startswith(FMT.child_header(task.title))
            assert json.loads(text) == _stream_json(task)
            assert events[-1].kind is EventKind.TASK_CLOSED and events[-1].offset == len(text)
        else:
            assert events[-1].kind is EventKind.DOCUMENT_CLOSED
        for fork in (e for e in events if e.kind is EventKind.SUBTASKS_CLOSED):
            assert fork.path == path  # one plan per stream, and it is the stream's own
            assert text[fork.offset - 1] == "]"
            assert text[fork.offset:].startswith(FMT.join_text(len(path)))
    assert FMT.parse(streams) == tree
    order = data.draw(st.permutations(range(len(all_events))))  # streams finish in any order
    assert assemble_tree(e for i in order for e in all_events[i]) == tree


@settings(deadline=None, max_examples=50)
@given(data=st.data())
def test_plan_items_and_tool_events_are_located(strategies, data):
    tree = data.draw(strategies.trees(titles="always", max_depth=2))
    for path, text in FMT.render(tree).items():
        events = _events(path, [text])
        opened = [e.offset for e in events if e.kind is EventKind.SUBTASKS_OPENED]
        items = [e for e in events if e.kind is EventKind.PLAN_ITEM]
        children = tree.reasoning if not path else tree.task_at(path).subtasks or []
        assert [(e.path, e.value) for e in items] == [
            ((*path, i), t.title) for i, t in enumerate(children)]
        starts = [*opened[:1], *(e.offset for e in items)][:len(items)]
        for start, item in zip(starts, items, strict=True):
            assert json.loads(text[start:item.offset].lstrip(", ")) == {"title": item.value}
        closed = [e.offset for e in events if e.kind is EventKind.SUBTASKS_CLOSED]
        if closed:  # the text strictly inside the brackets is the plan
            assert json.loads("[" + text[opened[0]:closed[0] - 1] + "]") == [
                {"title": t.title} for t in children]
        for e in events:
            if e.kind is EventKind.TOOLUSE_READY:
                result = tree.task_at(path).tooluse.tool_result
                assert text[e.offset:].startswith(FMT.tool_result_text(json.dumps(result)))


@settings(deadline=None, max_examples=40)
@given(data=st.data())
def test_view_text_inserts_children_at_each_fork(strategies, data):
    tree = data.draw(strategies.trees(titles="always", max_depth=2))
    streams = FMT.render(tree)

    def expected(path):  # the stream with its children's views spliced in before the tail
        owner = tree.task_at(path) if path else tree
        children = owner.subtasks if path else owner.reasoning
        if children is None:
            return streams[path]
        key, value = ("conclusion", owner.conclusion) if path else ("answer", owner.answer)
        text = streams[path]  # no raw '"' inside a JSON string, so the last one is the tail
        tail = text[text.rindex(f', "{key}": '):]
        assert json.loads(tail[len(f', "{key}": '):-1]) == value and tail[-1] == "}"
        views = "".join(expected((*path, i)) for i in range(len(children)))
        return streams[path][:-len(tail)] + views + tail

    assert FMT.view_text(streams) == expected(())
    assert len(FMT.view_text(streams)) == sum(map(len, streams.values()))


@st.composite
def _titled(draw, strategies):
    return draw(strategies.trees(titles="always", max_depth=2, nonempty=True))


@settings(deadline=None, max_examples=50)
@given(data=st.data())
def test_truncated_streams_are_malformed_at_their_end(strategies, data):
    streams = FMT.render(data.draw(_titled(strategies)))
    path = data.draw(st.sampled_from(list(streams)))
    cut = data.draw(st.integers(0, len(streams[path]) - 1))
    events = _events(path, list(streams[path][:cut]))
    assert events[-1].kind is EventKind.MALFORMED and events[-1].offset == cut
    with pytest.raises(FormatError, match=f"offset {cut}"):
        FMT.parse({**streams, path: streams[path][:cut]})


_TREE = TaskTree([Task("t", "c", title="A", subtasks=[Task("u", "d", title="A.1")]),
                  Task("v", "e", title="B", tooluse=ToolUse("add", {"a": 1, "b": 2}, 3))],
                 "a")
_STREAMS = FMT.render(_TREE)


@pytest.mark.parametrize("path, text, marker, expected", [
    ((0,), _STREAMS[(0,)].replace('"title": "A", ', ""), '"thought"', "'\"title\"'"),
    ((), _STREAMS[()].replace('{"title": "A"}', '{"title": "A", "thought": "t"}'), ", \"th",
     "'}'"),
    ((), _STREAMS[()].replace('[{"title": "A"}, ', "[{}, "), "}", "'\"title\"'"),
    ((0,), _STREAMS[(0,)].replace('{"title": "A.1"}', '{"title": "A.1", "thought": "u"}'),
     ', "thought": "u"', "'}'"),
    ((0,), _STREAMS[(0,)] + " ,", " ,", "end of stream"),
])
def test_malformed_streams_are_located(path, text, marker, expected):
    events = _events(path, list(text))
    malformed = events[-1]
    assert malformed.kind is EventKind.MALFORMED and expected in malformed.expected
    assert malformed.offset == text.index(marker) + (1 if marker == " ," else 0)
    assert [e for e in events if e.kind is EventKind.MALFORMED] == [malformed]


@pytest.mark.parametrize("streams, message", [
    ({k: v for k, v in _STREAMS.items() if k != (0, 0)}, "missing [(0, 0)]"),
    ({**_STREAMS, (2,): _STREAMS[(1,)].replace('"B"', '"C"')}, "unplanned [(2,)]"),
    ({k: v for k, v in _STREAMS.items() if k != ()}, "root stream given: False"),
    ({**_STREAMS, (1,): _STREAMS[(1,)].replace('"B"', '"b"', 1)}, "differs from its plan"),
])
def test_parse_checks_streams_against_plans(streams, message):
    with pytest.raises(FormatError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        FMT.parse(streams)


def test_forced_texts():
    assert FMT.child_header('say "hi"\n') == '{"title": "say \\"hi\\"\\n", "thought": "'
    assert FMT.join_text(0) == ', "answer": "' and FMT.join_text(3) == ', "conclusion": "'
    for call in (lambda: FMT.join_text(-1), lambda: FMT.child_header(None),
                 lambda: FMT.parser((0, -1)), lambda: FMT.render(TaskTree([Task("t", "c")],
                                                                           "a"))):
        with pytest.raises(ValueError):
            call()


def test_instructions_show_the_example_view(strategies):
    from tim.tree.formats.common import example_tree

    text = FMT.instructions(strategies.TOOLS)
    assert text.endswith(FMT.view_text(FMT.render(example_tree())))
    assert all(tool.name in text for tool in strategies.TOOLS)


# -- grammars per stream ----------------------------------------------------------------


@lru_cache
def _grammar(max_depth: int, max_fanout: int, depth: int, tools: tuple) -> str:
    return FMT.grammar(max_depth=max_depth, max_fanout=max_fanout, tools=tools, depth=depth)


@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_each_stream_grammar_accepts_exactly_the_streams_within_limits(strategies, data,
                                                                      accepts):
    tree = data.draw(strategies.trees(titles="always", max_depth=3, tools=strategies.TOOLS,
                                      nonempty=True))
    max_depth, max_fanout = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    tools = data.draw(st.sampled_from([(strategies.ADD,), strategies.TOOLS]))
    names = {t.name for t in tools}
    for path, text in FMT.render(tree).items():
        if len(path) > max_depth:
            continue
        if not path:
            within = len(tree.reasoning) <= max_fanout
        else:
            task = tree.task_at(path)
            within = (task.tooluse is None or task.tooluse.tool_name in names) and (
                task.subtasks is None or (len(path) < max_depth
                                          and len(task.subtasks) <= max_fanout))
        assert accepts(_grammar(max_depth, max_fanout, len(path), tools), text) == within


@given(st.text(max_size=30))
@settings(deadline=None, max_examples=30)
def test_a_fresh_child_matcher_takes_the_forced_header(grammar_matcher, title):
    matcher = grammar_matcher(_grammar(2, 2, 1, ()))
    assert matcher.consume_tokens(list(FMT.child_header(title).encode()))
    rest = 'x", "tooluse": null, "subtasks": [{"title": "y"}]'
    assert matcher.consume_tokens(list(rest.encode()))
    assert matcher.consume_tokens(list((FMT.join_text(1) + 'done"}').encode()))
    assert matcher.is_accepting()


def test_grammar_depth_must_be_within_max_depth():
    with pytest.raises(ValueError, match=r"depth must be an int in \[0, 2\], got 3"):
        FMT.grammar(max_depth=2, max_fanout=2, depth=3)
    assert "plan" not in FMT.grammar(max_depth=2, max_fanout=2, depth=2)


# -- worked examples: the tool-call example, examples as chat turns (issue 13) ------------


def test_the_tool_example_is_added_only_when_asked_and_tools_are_offered(strategies):
    from tim.tree.formats.common import TOOL_EXAMPLE_NOTE, tool_example_tree

    plain = FMT.instructions(strategies.TOOLS)
    with_example = FMT.instructions(strategies.TOOLS, tool_example=True)
    tool_view = FMT.view_text(FMT.render(tool_example_tree()))
    assert tool_view not in plain and TOOL_EXAMPLE_NOTE not in plain
    assert tool_view in with_example and with_example.endswith(TOOL_EXAMPLE_NOTE)
    assert '"tooluse": null or {"tool_name": "<name>"' in with_example
    assert '"tooluse": null or' not in plain
    # the arithmetic example stays, before the tool one
    assert with_example.index(FMT.view_text(FMT.render(example_tree()))) < with_example.index(
        tool_view)
    # without tools there is nothing to call: the text is the default one
    assert FMT.instructions((), tool_example=True) == FMT.instructions(())
    assert FMT.instructions(strategies.TOOLS, shared=True, tool_example=True) != with_example


def test_example_turns_are_the_examples_left_out_of_the_instructions(strategies):
    turns = FMT.example_turns(strategies.TOOLS, tool_example=True)
    assert [q for q, _ in turns] == ["What is 17 * 23 + 12 * 5?",
                                     "Is it warm enough to swim in Lisbon today?"]
    text = FMT.instructions(strategies.TOOLS, tool_example=True, examples_inline=False)
    assert all(reply not in text for _, reply in turns)
    assert "The earlier turns of this conversation are worked examples" in text
    assert FMT.example_turns(strategies.TOOLS) == turns[:1]
    # each reply is the example's view: parsing its streams back gives the example
    assert turns[0][1] == FMT.view_text(FMT.render(example_tree()))


def test_the_child_grammar_accepts_a_call_and_null_whatever_the_example(accepts, strategies):
    grammar = _grammar(2, 3, 1, strategies.TOOLS)
    head = '{"title": "t", "thought": "x", "tooluse": '
    tail = ', "subtasks": null, "conclusion": "c"}'
    call = '{"tool_name": "add", "parameters": {"a": 1, "b": 2}, "tool_result": 3}'
    assert accepts(grammar, head + "null" + tail) and accepts(grammar, head + call + tail)
    assert not accepts(grammar, head + '{"tool_name": "weather", "parameters": {}, '
                                       '"tool_result": 1}' + tail)  # the example's tool


def test_the_order_of_the_tooluse_alternatives_does_not_change_any_mask(grammar_matcher,
                                                                        strategies):
    grammar = _grammar(2, 3, 1, strategies.TOOLS)
    head = 'tooluse: "null" | '
    rule = next(line for line in grammar.splitlines() if line.startswith(head))
    swapped = grammar.replace(rule, "tooluse: " + rule[len(head):] + ' | "null"')
    assert swapped != grammar
    text = ('{"title": "t", "thought": "x", "tooluse": {"tool_name": "add", "parameters": '
            '{"a": 1, "b": 2}')
    matchers = [grammar_matcher(grammar), grammar_matcher(swapped)]
    for byte in text.encode():
        first, second = (bytes(m.compute_bitmask()) for m in matchers)
        assert first == second
        assert all(m.consume_tokens([byte]) for m in matchers)
