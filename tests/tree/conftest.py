"""Shared fixtures for tests/tree: a byte-level tokenizer for llguidance, and strategies.

Test modules are imported with ``--import-mode=importlib`` and cannot import each other,
so the hypothesis strategies are handed out by the ``strategies`` fixture.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import pytest
from hypothesis import strategies as st

from tim.tree import EventKind, Task, TaskStatus, TaskTree, ToolSpec, ToolUse

# -- a tiny tokenizer: one token per byte, plus <eos> (id 256); built offline -----------


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's printable stand-ins for bytes, which the ByteLevel pre-tokenizer uses.
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


@pytest.fixture(scope="session")
def byte_tokenizer():
    """An ``llguidance.LLTokenizer`` whose token id is the byte value; eos is 256."""
    import llguidance
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {ch: b for b, ch in _bytes_to_unicode().items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<eos>", special=True)])
    lltok = llguidance.LLTokenizer(tok.to_str(), eos_token=256)
    sample = 'é {"a"}\u2028'
    assert lltok.tokenize_str(sample) == list(sample.encode())
    return lltok


@pytest.fixture(scope="session")
def grammar_matcher(byte_tokenizer):
    """``make(grammar) -> LLMatcher``, failing the test if llguidance rejects the grammar."""
    import llguidance

    def make(grammar: str):
        matcher = llguidance.LLMatcher(byte_tokenizer, grammar, log_level=0)
        assert not matcher.is_error(), matcher.get_error()
        return matcher

    return make


@pytest.fixture(scope="session")
def accepts(grammar_matcher):
    """``accepts(grammar, text)``: the grammar takes exactly ``text``, byte by byte."""

    def accepts(grammar: str, text: str) -> bool:
        matcher = grammar_matcher(grammar)
        return matcher.consume_tokens(list(text.encode())) and matcher.is_accepting()

    return accepts


# -- strategies -------------------------------------------------------------------------

HOSTILE = ['"', "\\", '\\"', "</script>", "<!--", "{", "}", "[", "]", ",", ":", "\u2028",
           "\u2029", "\x00", "\n", "\t", "\x7f", "😀", "é", "\ufeff", '", "conclusion": "',
           "\\u0041", "null", "}]}", " ", "\\ud83d"]

ADD = ToolSpec("add", "Add two integers.", {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"], "additionalProperties": False})
SEARCH = ToolSpec("web.search", "Search the web.", {
    "type": "object",
    "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
    "required": ["query"], "additionalProperties": False})
TOOLS = (ADD, SEARCH)


@lru_cache
def hostile_text(max_pieces: int = 5) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=4))
    return st.lists(piece, max_size=max_pieces).map("".join)


@lru_cache
def json_values(max_leaves: int = 6) -> st.SearchStrategy:
    scalars = (st.none() | st.booleans() | st.integers(-(10**20), 10**20)
               | st.floats(allow_nan=False, allow_infinity=False) | hostile_text(3))
    return st.recursive(
        scalars,
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(hostile_text(2), kids,
                                                                  max_size=3),
        max_leaves=max_leaves,
    )


def _params(tool: ToolSpec) -> st.SearchStrategy[dict]:
    ints = st.integers(-(10**12), 10**12)
    if tool is ADD:
        params = st.fixed_dictionaries({"a": ints, "b": ints})
    else:
        params = st.fixed_dictionaries({"query": hostile_text()},
                                       optional={"limit": st.integers(1, 100)})
    # llguidance's JSON schemas take properties in the order the schema declares them
    order = list(tool.parameters["properties"])
    return params.map(lambda d: {k: d[k] for k in order if k in d})


@lru_cache
def tool_uses(tools: tuple[ToolSpec, ...] | None = None) -> st.SearchStrategy[ToolUse]:
    """Calls to ``tools`` with valid parameters, or (None) any name and JSON parameters."""
    if tools is None:
        return st.builds(ToolUse, hostile_text(), st.dictionaries(hostile_text(2), json_values(),
                                                                  max_size=3), json_values())
    return st.one_of([st.builds(ToolUse, st.just(t.name), _params(t), json_values())
                      for t in tools])


@lru_cache
def trees(*, max_depth: int = 3, max_fanout: int = 3, titles: str = "maybe",
          tools: tuple[ToolSpec, ...] | None = None, nonempty: bool = False,
          meta: bool = False) -> st.SearchStrategy[TaskTree]:
    """Task trees within the given depth and fan-out.

    ``titles``: "always", "maybe" or "never"; ``nonempty``: no empty subtask lists (the
    grammars need at least one item); ``meta``: random run metadata instead of defaults.
    """
    title = {"always": hostile_text(), "maybe": st.none() | hostile_text(),
             "never": st.none()}[titles]
    extra = {}
    if meta:
        extra = dict(node_id=st.none() | hostile_text(2), status=st.sampled_from(TaskStatus),
                     num_tokens=st.integers(0, 10**6), pruned=st.booleans(),
                     error=st.none() | hostile_text(2))
    level = st.none()  # the subtasks strategy below the deepest level
    for _ in range(max_depth):
        task = st.builds(Task, thought=hostile_text(), conclusion=hostile_text(), title=title,
                         tooluse=st.none() | tool_uses(tools), subtasks=level, **extra)
        level = st.none() | st.lists(task, min_size=int(nonempty), max_size=max_fanout)
    return st.builds(TaskTree, st.lists(task, min_size=int(nonempty), max_size=max_fanout),
                     hostile_text())


def chunkings(text: str) -> st.SearchStrategy[list[str]]:
    """Random ways to cut ``text`` into chunks (empty chunks included)."""
    cuts = st.lists(st.integers(0, len(text)), max_size=12).map(sorted)
    return cuts.map(lambda cs: [text[a:b] for a, b in zip([0, *cs], [*cs, len(text)],
                                                                  strict=True)])


@pytest.fixture(scope="session")
def strategies() -> SimpleNamespace:
    """The strategies above, for ``data.draw(strategies.trees(...))``."""
    return SimpleNamespace(trees=trees, hostile_text=hostile_text, json_values=json_values,
                           tool_uses=tool_uses, chunkings=chunkings, TOOLS=TOOLS, ADD=ADD,
                           SEARCH=SEARCH)


def check_event_order(events, text_len: int, stream_path=()) -> None:
    """Offsets non-decreasing and in the text; opens and closes properly nested; children
    numbered 0, 1, ... inside their list; MALFORMED only as the last event."""
    assert [e.offset for e in events] == sorted(e.offset for e in events)
    assert all(0 <= e.offset <= text_len for e in events)
    stack: list = []
    counts: list[int] = []
    for i, e in enumerate(events):
        k = e.kind
        if k is EventKind.MALFORMED:
            assert i == len(events) - 1
            return
        if k in (EventKind.TASK_OPENED, EventKind.PLAN_ITEM) and stack:
            assert stack[-1] == ("list", e.path[:-1]) and e.path[-1] == counts[-1]
            counts[-1] += 1
        if k is EventKind.TASK_OPENED:
            if not stack:
                assert e.path == stream_path
            stack.append(("task", e.path))
        elif k is EventKind.FIELD_OPENED:
            stack.append(("field", e.path, e.field))
        elif k in (EventKind.FIELD_CLOSED, EventKind.ANSWER_CLOSED):
            assert stack.pop() == ("field", e.path, e.field)
        elif k is EventKind.SUBTASKS_OPENED:
            assert stack[-1:] in ([("task", e.path)], []) and (stack or e.path == ())
            stack.append(("list", e.path))
            counts.append(0)
        elif k is EventKind.SUBTASKS_CLOSED:
            assert stack.pop() == ("list", e.path)
            counts.pop()
        elif k is EventKind.TASK_CLOSED:
            assert stack.pop() == ("task", e.path)
        elif k is EventKind.TOOLUSE_READY:
            assert stack[-1] == ("task", e.path)
            stack.append(("tool", e.path, e.tool_name))
        elif k is EventKind.TOOL_RESULT_CLOSED:
            assert stack.pop() == ("tool", e.path, e.tool_name)
        elif k is EventKind.DOCUMENT_CLOSED:
            assert stack == [] and e.path == ()
    assert stack == []


@pytest.fixture(scope="session")
def event_order():
    """``check(events, text_len, stream_path=())``: see :func:`check_event_order`."""
    return check_event_order
