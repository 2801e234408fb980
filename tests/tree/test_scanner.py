"""tim/tree/scanner.py: the incremental JSON lexer, against Python's json module."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tim.tree.scanner import MAX_NESTING, JsonScanner, TokenKind


def _scan(chunks) -> list:
    scanner = JsonScanner()
    return [t for c in chunks for t in scanner.feed(c)] + scanner.close()


def _rebuild(tokens):
    """Rebuild a value from tokens with a plain stack: the test's own JSON reader."""
    stack, keys, result = [], [], []

    def put(value):
        if not stack:
            result.append(value)
        elif isinstance(stack[-1], list):
            stack[-1].append(value)
        elif keys[-1] is None:
            keys[-1] = value
        else:
            stack[-1][keys[-1]] = value
            keys[-1] = None

    for tok in tokens:
        if tok.kind is TokenKind.PUNCT and tok.value in "{[":
            stack.append({} if tok.value == "{" else [])
            keys.append(None)
        elif tok.kind is TokenKind.PUNCT and tok.value in "}]":
            keys.pop()
            put(stack.pop())
        elif tok.kind in (TokenKind.STRING, TokenKind.NUMBER, TokenKind.LITERAL):
            put(tok.value)
    return result


@st.composite
def json_texts(draw, values):
    value = draw(values)
    indent = draw(st.none() | st.integers(0, 3))
    text = json.dumps(value, indent=indent, ensure_ascii=draw(st.booleans()))
    return draw(st.sampled_from(["", " ", "\n\t"])) + text


@settings(deadline=None)
@given(data=st.data())
def test_tokens_rebuild_what_json_loads_reads(strategies, data):
    text = data.draw(json_texts(strategies.json_values(max_leaves=12)))
    tokens = _scan([text])
    assert [t.kind for t in tokens if t.kind in (TokenKind.ERROR, TokenKind.OTHER)] == []
    assert tokens[-1].kind is TokenKind.EOF and tokens[-1].start == len(text)
    assert _rebuild(tokens) == [json.loads(text)]
    for tok in tokens:  # offsets cover exactly the token's text
        if tok.kind in (TokenKind.STRING, TokenKind.NUMBER, TokenKind.LITERAL):
            assert json.loads(text[tok.start:tok.end]) == tok.value
        elif tok.kind is TokenKind.PUNCT:
            assert text[tok.start:tok.end] == tok.value
    assert _scan(data.draw(strategies.chunkings(text))) == tokens
    assert _scan(list(text)) == tokens


@given(st.text(alphabet=st.characters(codec=None)), st.booleans())
def test_strings_decode_like_json_loads(s, ensure_ascii):
    # includes lone surrogates, escaped as \udXXX, and astral characters as escaped pairs
    text = json.dumps(s, ensure_ascii=ensure_ascii)
    tokens = _scan(list(text))
    assert [t.kind for t in tokens] == [TokenKind.STRING_START, TokenKind.STRING, TokenKind.EOF]
    assert tokens[1].value == json.loads(text)


@pytest.mark.parametrize("text, offset, expected", [
    ('"a\\x"', 3, "an escape"),
    ('"a\\u12G4"', 6, "a hex digit"),
    ('"a\nb"', 2, "control characters must be escaped"),
    ('"abc', 4, "closing the string"),
    ("[1.]", 3, "a digit"),
    ("[-]", 2, "a digit"),
    ("[1e+]", 4, "a digit"),
    ("1e", 2, "a digit"),
    ("[nul]", 4, "'null'"),
    ("[tru", 4, "'true'"),
    ("[" * (MAX_NESTING + 1), MAX_NESTING, f"at most {MAX_NESTING} nested"),
    ("1" * 5000, 0, "at most 4300 digits"),
])
def test_lexical_errors_are_located(text, offset, expected):
    for chunks in ([text], list(text)):
        tokens = _scan(chunks)
        errors = [t for t in tokens if t.kind is TokenKind.ERROR]
        assert len(errors) == 1 and tokens[-1] is errors[0]  # nothing after an error
        assert errors[0].start == offset and expected in errors[0].expected


def test_unknown_character_is_an_other_token_and_stops():
    tokens = _scan(["[1, x, 2]"])
    assert tokens[-1].kind is TokenKind.OTHER and tokens[-1].start == 4
    assert tokens[-1].value == "x"


def test_numbers_end_at_the_next_character_or_at_close():
    scanner = JsonScanner()
    assert [(t.kind, t.value) for t in scanner.feed("[12")] == [(TokenKind.PUNCT, "[")]
    assert scanner.feed("3") == []
    assert [(t.kind, t.value, t.start, t.end) for t in scanner.feed("]")] == [
        (TokenKind.NUMBER, 123, 1, 4), (TokenKind.PUNCT, "]", 4, 5)]
    scanner = JsonScanner()
    assert scanner.feed("-0.5e2") == []
    assert [(t.kind, t.value) for t in scanner.close()] == [
        (TokenKind.NUMBER, -50.0), (TokenKind.EOF, "end of stream")]
    assert scanner.feed("1") == [] and scanner.close() == []
