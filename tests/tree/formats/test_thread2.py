"""tim/tree/formats/thread2.py: render, incremental parse, events, malformed input."""

from __future__ import annotations

import json
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.errors import FormatError
from tim.tree import EventKind, Task, TaskTree, ToolUse, assemble_tree, get_format

FMT = get_format("thread2")


def _events(chunks) -> list:
    parser = FMT.parser()
    return [e for c in chunks for e in parser.feed(c)] + parser.close()


def _task_json(task: Task) -> dict:
    return TaskTree([task], "").to_json()["reasoning"][0]


@settings(deadline=None)
@given(data=st.data())
def test_render_then_parse_is_identity_under_any_chunking(strategies, data, event_order):
    tree = data.draw(strategies.trees())
    text = FMT.render(tree)
    assert json.loads(text) == tree.to_json()  # the text is the TIM JSON itself
    events = _events([text])
    assert assemble_tree(events) == tree == FMT.parse(text)
    assert _events(data.draw(strategies.chunkings(text))) == events
    assert _events(list(text)) == events
    event_order(events, len(text))
    assert events[-1].kind is EventKind.DOCUMENT_CLOSED and events[-1].offset == len(text)


@settings(deadline=None, max_examples=50)
@given(data=st.data())
def test_event_offsets_delimit_exactly_the_json_they_announce(strategies, data):
    tree = data.draw(strategies.trees())
    text = FMT.render(tree)
    events = _events([text])
    opened = {}
    for e in events:
        if e.kind in (EventKind.TASK_OPENED, EventKind.SUBTASKS_OPENED, EventKind.FIELD_OPENED):
            opened[e.kind, e.path, e.field] = e.offset
        elif e.kind is EventKind.TASK_CLOSED:
            span = text[opened[EventKind.TASK_OPENED, e.path, None] - 1:e.offset]
            assert json.loads(span) == _task_json(tree.task_at(e.path))
        elif e.kind is EventKind.SUBTASKS_CLOSED:
            start = opened[EventKind.SUBTASKS_OPENED, e.path, None]
            tasks = tree.task_at(e.path).subtasks if e.path else tree.reasoning
            # the prunable span: strictly inside the brackets
            assert json.loads("[" + text[start:e.offset - 1] + "]") == [
                _task_json(t) for t in tasks]
        elif e.kind in (EventKind.FIELD_CLOSED, EventKind.ANSWER_CLOSED):
            start = opened[EventKind.FIELD_OPENED, e.path, e.field]
            assert json.loads(text[start - 1:e.offset]) == e.value
            owner = tree if e.field == "answer" else tree.task_at(e.path)
            assert getattr(owner, e.field) == e.value
        elif e.kind is EventKind.TOOLUSE_READY:
            tooluse = tree.task_at(e.path).tooluse
            assert (e.tool_name, e.value) == (tooluse.tool_name, tooluse.parameters)
            # the runtime forces the result exactly here
            forced = FMT.tool_result_text(json.dumps(tooluse.tool_result))
            assert text[e.offset:].startswith(forced)
        elif e.kind is EventKind.TOOL_RESULT_CLOSED:
            assert text[e.offset - 1] == "}"
            assert e.value == tree.task_at(e.path).tooluse.tool_result


@settings(deadline=None, max_examples=40)
@given(data=st.data())
def test_any_whitespace_between_tokens_parses_to_the_same_tree(strategies, data):
    tree = data.draw(strategies.trees(max_depth=2))
    indent = data.draw(st.sampled_from([0, 1, 2, "\t", " \r\n "]))
    text = " \n" + json.dumps(tree.to_json(), indent=indent, ensure_ascii=data.draw(
        st.booleans())) + "\n\t "
    assert FMT.parse(text) == tree


@settings(deadline=None, max_examples=50)
@given(data=st.data())
def test_a_truncated_stream_is_malformed_exactly_where_it_ends(strategies, data):
    text = FMT.render(data.draw(strategies.trees(max_depth=2)))
    full = _events([text])
    cut = data.draw(st.integers(0, len(text) - 1))
    events = _events(data.draw(strategies.chunkings(text[:cut])))
    *before, last = events
    assert last.kind is EventKind.MALFORMED and last.offset == cut
    assert last.value == "end of stream"
    assert before == [e for e in full if e.offset <= cut]


@st.composite
def _mutants(draw, strategies):
    text = FMT.render(draw(strategies.trees(max_depth=2, tools=strategies.TOOLS)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        ch = draw(st.sampled_from(list('{}[],:"\\ a0-nu')) | st.characters())
        text = {"insert": text[:i] + ch + text[i:], "delete": text[:i] + text[i + 1:],
                "replace": text[:i] + ch + text[i + 1:]}[op]
    return text


@settings(deadline=None)
@given(data=st.data())
def test_mutated_text_never_raises_and_agrees_with_json(strategies, data, event_order):
    text = data.draw(_mutants(strategies))
    events = _events([text])
    assert _events(list(text)) == events
    event_order(events, len(text))
    malformed = [e for e in events if e.kind is EventKind.MALFORMED]
    if malformed:
        assert "internal" not in malformed[0].value
        with pytest.raises(FormatError):
            assemble_tree(events)
        prefix = FMT.parser()  # the prefix before the offset is still a valid start
        assert all(e.kind is not EventKind.MALFORMED for e in prefix.feed(
            text[:malformed[0].offset]))
    else:  # accepted: then it is JSON, and exactly the tree the events describe
        assert assemble_tree(events).to_json() == json.loads(text)


_GOOD = FMT.render(TaskTree([
    Task("t", "c", title="x", tooluse=ToolUse("add", {"a": 1}, [2]),
         subtasks=[Task("t2", "c2")])], "a"))


def _case(old: str, new: str, marker: str, expected: str | None):
    """``_GOOD`` with ``old`` replaced by ``new``; malformed where ``marker`` first occurs."""
    text = _GOOD.replace(old, new, 1)
    return text, text.index(marker), expected


@pytest.mark.parametrize("text, offset, expected", [
    _case('"thought"', '"thougt"', '"thougt"', "'\"thought\"'"),
    _case('"conclusion": "c2"', '"conclusion": "c\\x"', 'x"}]', "an escape"),
    (_GOOD + " x", len(_GOOD) + 1, "end of stream"),
    (_GOOD + "}", len(_GOOD), "end of stream"),
    _case('"title": "x", ', "", '"thought"', None),  # title is optional: no error
    _case('"tooluse": {', '"tooluse": {"bad": 1, ', '"bad"', "'\"tool_name\"'"),
    _case('"parameters": {"a": 1}', '"parameters": [1]', "[1]", "parameters"),
    _case(', "tooluse"', ' "tooluse"', '"tooluse"', "','"),
    _case('"tooluse"', '"subtasks"', '"subtasks"', "'\"tooluse\"'"),
    _case('"subtasks": [', '"subtasks": {', '{{"thought": "t2"', "null or '['"),
    _case('"a"}', "5}", "5}", "a string"),
    (_GOOD.replace('"c2"}]', '"c2"},]'), _GOOD.index('"c2"}]') + 6, "'{'"),
    ('["reasoning"]', 0, "'{'"),
    ("", 0, "'{'"),
    ('{"reasoning": [], "answer": "a"} {}', 33, "end of stream"),
])
def test_malformed_inputs_are_located(text, offset, expected):
    for chunks in ([text], list(text)):
        events = _events(chunks)
        malformed = [e for e in events if e.kind is EventKind.MALFORMED]
        if expected is None:
            assert malformed == []
            continue
        assert len(malformed) == 1 and events[-1] is malformed[0]
        assert malformed[0].offset == offset and expected in malformed[0].expected


def test_parser_is_silent_after_malformed_and_after_close():
    parser = FMT.parser()
    assert parser.feed('{"reasoning": x')[-1].kind is EventKind.MALFORMED
    assert parser.feed('[], "answer": "a"}') == [] and parser.close() == []
    parser = FMT.parser()
    assert parser.feed(' {"reasoning": [], "answer": "a"} ')[-1].kind is (
        EventKind.DOCUMENT_CLOSED)
    assert parser.finished and parser.close() == [] and parser.feed("x") == []


def test_deep_nesting_is_reported_not_recursed():
    deep = '{"reasoning": [{"thought": "t", "tooluse": {"tool_name": "f", "parameters": '
    events = _events([deep + '{"a": ' * 400])
    assert events[-1].kind is EventKind.MALFORMED and "nested" in events[-1].expected


def test_instructions_teach_the_tools_and_show_a_valid_example(strategies):
    text = FMT.instructions(strategies.TOOLS)
    for tool in strategies.TOOLS:
        assert tool.name in text and tool.description in text
        assert json.dumps(tool.parameters, ensure_ascii=False) in text
    example = text[text.rindex("\n") + 1:]
    assert FMT.parse(example).num_tasks == 4
    assert "tooluse\": null" in FMT.instructions(())


@pytest.mark.parametrize("call", [
    lambda: FMT.parser(path=(0,)),
    lambda: FMT.render(TaskTree([], None)),
    lambda: FMT.tool_result_text("{'a': 1}"),
    lambda: FMT.tool_result_text("NaN"),
    lambda: FMT.tool_result_text("1e999"),
])
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


@given(st.recursive(st.none() | st.integers() | st.text(),
                    lambda k: st.lists(k, max_size=3) | st.dictionaries(st.text(), k,
                                                                        max_size=3)))
def test_tool_result_text_keeps_the_value(value):
    forced = FMT.tool_result_text(json.dumps(value, indent=2))
    assert forced.startswith(', "tool_result": ') and forced.endswith("}")
    assert json.loads(forced[len(', "tool_result": '):-1]) == value


# -- the grammar, checked with llguidance over a byte-level tokenizer ---------------------


def _depth(tasks) -> int:
    return max((1 + _depth(t.subtasks or []) for t in tasks), default=0)


def _widest(tasks) -> int:
    return max([len(tasks), *(_widest(t.subtasks or []) for t in tasks)])


def _tool_names(tasks) -> set[str]:
    return {n for t in tasks for n in ({t.tooluse.tool_name} if t.tooluse else set())
            | _tool_names(t.subtasks or [])}


@lru_cache
def _grammar(max_depth: int, max_fanout: int, tools: tuple = ()) -> str:
    return FMT.grammar(max_depth=max_depth, max_fanout=max_fanout, tools=tools)


@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_grammar_accepts_exactly_the_trees_within_its_limits(strategies, data, accepts):
    tree = data.draw(strategies.trees(max_depth=4, tools=strategies.TOOLS, nonempty=True))
    max_depth, max_fanout = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    tools = data.draw(st.sampled_from([(), (strategies.ADD,), (strategies.SEARCH,),
                                       strategies.TOOLS]))
    within = (_depth(tree.reasoning) <= max_depth and _widest(tree.reasoning) <= max_fanout
              and _tool_names(tree.reasoning) <= {t.name for t in tools})
    grammar = _grammar(max_depth, max_fanout, tools)
    assert accepts(grammar, FMT.render(tree)) == within
    # other whitespace too (llguidance's JSON strings refuse a raw DEL, so escape it)
    pretty = json.dumps(tree.to_json(), indent=data.draw(st.sampled_from([1, "\t"])),
                        ensure_ascii=False).replace("\x7f", "\\u007f")
    assert accepts(grammar, pretty) == within


@pytest.mark.parametrize("tool_name, parameters, valid", [
    ("add", {"a": 1, "b": 2}, True),
    ("add", {"a": 10**15, "b": -2}, True),
    ("add", {"b": 2, "a": 1}, False),  # llguidance wants the schema's property order
    ("add", {"a": "1", "b": 2}, False),
    ("add", {"a": 1}, False),
    ("add", {"a": 1, "b": 2, "c": 3}, False),
    ("add", {"a": 1.5, "b": 2}, False),
    ("web.search", {"query": "x"}, True),
    ("web.search", {"query": "x", "limit": 1}, True),
    ("web.search", {"query": "x", "limit": 0}, False),
    ("web.search", {"query": 3}, False),
    ("web", {"query": "x"}, False),
    ("subtract", {"a": 1, "b": 2}, False),
])
def test_grammar_enforces_tool_names_and_parameter_schemas(strategies, accepts, tool_name,
                                                           parameters, valid):
    task = Task("t", "c", tooluse=ToolUse(tool_name, parameters, {"ok": [True, None]}))
    text = FMT.render(TaskTree([task], "a"))
    assert accepts(_grammar(1, 1, strategies.TOOLS), text) == valid
    assert FMT.parse(text).reasoning[0] == task  # the parser itself checks no schema


def test_grammar_takes_the_forced_tool_result_for_any_json(strategies, grammar_matcher):
    matcher = grammar_matcher(_grammar(1, 1, strategies.TOOLS))
    model = '{"reasoning": [{"thought": "t", "tooluse": {"tool_name": "add", "parameters": {"a": 1, "b": 2}'
    assert matcher.consume_tokens(list(model.encode()))
    result = {"x": ["\u2028\x7f", -0.5e-3, {"y": None}], "</script>": "\\\"", "😀": 10**30}
    forced = FMT.tool_result_text(json.dumps(result, indent=1))
    assert matcher.consume_tokens(list(forced.encode()))
    rest = ', "subtasks": null, "conclusion": "c"}], "answer": "a"}'
    assert matcher.consume_tokens(list(rest.encode())) and matcher.is_accepting()


@pytest.mark.parametrize("kwargs, bad", [
    (dict(max_depth=0, max_fanout=1), "max_depth must be an int >= 1, got 0"),
    (dict(max_depth=2, max_fanout=True), "max_fanout must be an int >= 1, got True"),
    (dict(max_depth=2, max_fanout=2, depth=1), "depth must be an int in [0, 0], got 1"),
    (dict(max_depth=2, max_fanout=2, tools=["add"]), "tools must be ToolSpec"),
])
def test_grammar_rejects_bad_parameters(kwargs, bad):
    with pytest.raises(ValueError) as info:
        FMT.grammar(**kwargs)
    assert bad in str(info.value)


def test_the_tool_example_and_example_turns(strategies):
    from tim.tree.formats.common import TOOL_EXAMPLE_NOTE, example_tree, tool_example_tree

    tool_doc = FMT.render(tool_example_tree())
    with_example = FMT.instructions(strategies.TOOLS, tool_example=True)
    assert tool_doc in with_example and with_example.endswith(TOOL_EXAMPLE_NOTE)
    assert tool_doc not in FMT.instructions(strategies.TOOLS)
    assert FMT.instructions((), tool_example=True) == FMT.instructions(())
    assert FMT.parse(tool_doc).reasoning[0].tooluse.tool_name == "weather"
    turns = FMT.example_turns(strategies.TOOLS, tool_example=True)
    assert [FMT.parse(reply) for _, reply in turns] == [example_tree(), tool_example_tree()]
    inline_off = FMT.instructions(strategies.TOOLS, tool_example=True, examples_inline=False)
    assert all(reply not in inline_off for _, reply in turns)
    assert FMT.example_turns(()) == turns[:1]
