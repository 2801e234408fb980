"""An incremental JSON lexer: characters in, tokens out, whatever the chunking.

The lexer is a character-at-a-time state machine (runs of plain string characters are
taken in one regex step, which gives the same tokens). A token is emitted as soon as its
last character is seen; a number is emitted when the first character after it arrives
(or at :meth:`JsonScanner.close`). Offsets are Python ``str`` indices in the whole stream.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, NamedTuple

__all__ = ["TokenKind", "Token", "JsonScanner", "MAX_NESTING"]

MAX_NESTING = 128  # deeper JSON is reported, never recursed into

_WHITESPACE = frozenset(" \t\n\r")
_PUNCT = frozenset("{}[]:,")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")
_LITERALS = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}
_PLAIN = re.compile(r'[^"\\\x00-\x1f]+')
# number states -> {character class: next state}; accepting states end a number.
_NUMBER = {
    "sign": {"0": "zero", "1-9": "int"},
    "zero": {".": "dot", "e": "e"},
    "int": {"0": "int", "1-9": "int", ".": "dot", "e": "e"},
    "dot": {"0": "frac", "1-9": "frac"},
    "frac": {"0": "frac", "1-9": "frac", "e": "e"},
    "e": {"0": "exp", "1-9": "exp", "+": "esign"},
    "esign": {"0": "exp", "1-9": "exp"},
    "exp": {"0": "exp", "1-9": "exp"},
}
_NUMBER_DONE = frozenset({"zero", "int", "frac", "exp"})


def _char_class(ch: str) -> str:
    if ch == "0":
        return "0"
    if "1" <= ch <= "9":
        return "1-9"
    if ch in "eE":
        return "e"
    return "+" if ch in "+-" else ch


class TokenKind(Enum):
    PUNCT = "punct"  # value: one of { } [ ] : ,
    STRING_START = "string_start"  # the opening quote
    STRING = "string"  # start: the opening quote; value: the decoded string
    NUMBER = "number"
    LITERAL = "literal"  # value: True, False or None
    OTHER = "other"  # a character that starts no JSON token; value: the character
    ERROR = "error"  # a lexical error; value: what was found, expected: what was expected
    EOF = "eof"


class Token(NamedTuple):
    kind: TokenKind
    start: int
    end: int
    value: Any = None
    expected: str | None = None


class JsonScanner:
    """Turn JSON text into :class:`Token`\\ s incrementally.

    After an ``ERROR`` or ``OTHER`` token, or after :meth:`close`, the scanner emits
    nothing more.

    Examples
    --------
    >>> s = JsonScanner()
    >>> [(t.kind.value, t.value) for t in s.feed('{"a": [1')]
    [('punct', '{'), ('string_start', None), ('string', 'a'), ('punct', ':'), ('punct', '[')]
    >>> [(t.kind.value, t.value) for t in s.feed('2.5]}')]
    [('number', 12.5), ('punct', ']'), ('punct', '}')]
    """

    def __init__(self) -> None:
        self.pos = 0  # characters consumed so far
        self._state = "between"
        self._nesting = 0
        self._start = 0
        self._buf: list[str] = []
        self._high = False  # the last piece of _buf is a high surrogate from a \u escape
        self._hex = ""
        self._word = ("", None)
        self._matched = 0
        self._num_state = ""

    def feed(self, chunk: str) -> list[Token]:
        out: list[Token] = []
        i, n = 0, len(chunk)
        while i < n and self._state != "dead":
            if self._state == "string":
                m = _PLAIN.match(chunk, i)
                if m:
                    self._buf.append(m.group())
                    self._high = False
                    i = m.end()
                    continue
            if self._step(chunk[i], self.pos + i, out):
                i += 1
        self.pos += n
        return out

    def close(self) -> list[Token]:
        """Flush a pending number, report an unfinished token, then emit ``EOF``."""
        out: list[Token] = []
        state, end = self._state, self.pos
        if state == "number":
            if self._num_state in _NUMBER_DONE:
                self._emit_number(end, out)
            else:
                out.append(Token(TokenKind.ERROR, end, end, "end of stream", "a digit"))
        elif state in ("string", "escape", "unicode"):
            out.append(Token(TokenKind.ERROR, end, end, "end of stream", "'\"' closing the string"))
        elif state == "literal":
            out.append(Token(TokenKind.ERROR, end, end, "end of stream", repr(self._word[0])))
        if state != "dead" and not (out and out[-1].kind is TokenKind.ERROR):
            out.append(Token(TokenKind.EOF, end, end, "end of stream"))
        self._state = "dead"
        return out

    def _error(self, out: list[Token], offset: int, found: str, expected: str) -> None:
        out.append(Token(TokenKind.ERROR, offset, offset + 1, found, expected))
        self._state = "dead"

    def _step(self, ch: str, off: int, out: list[Token]) -> bool:
        """Consume ``ch`` at ``off``; return False when ``ch`` must be looked at again."""
        state = self._state
        if state == "between":
            self._between(ch, off, out)
        elif state == "string":
            if ch == '"':
                out.append(Token(TokenKind.STRING, self._start, off + 1, "".join(self._buf)))
                self._state = "between"
            elif ch == "\\":
                self._state = "escape"
            else:  # a raw control character: _PLAIN took everything else
                self._error(out, off, repr(ch), "a string character (control characters "
                            "must be escaped)")
        elif state == "escape":
            if ch in _ESCAPES:
                self._buf.append(_ESCAPES[ch])
                self._high = False
                self._state = "string"
            elif ch == "u":
                self._hex = ""
                self._state = "unicode"
            else:
                self._error(out, off, repr(ch), 'an escape (one of " \\ / b f n r t u)')
        elif state == "unicode":
            if ch not in _HEX:
                self._error(out, off, repr(ch), "a hex digit")
            else:
                self._hex += ch
                if len(self._hex) == 4:
                    self._add_code_unit(int(self._hex, 16))
                    self._state = "string"
        elif state == "number":
            nxt = _NUMBER[self._num_state].get(_char_class(ch))
            if nxt is not None:
                self._num_state = nxt
                self._buf.append(ch)
            elif self._num_state in _NUMBER_DONE:
                self._emit_number(off, out)
                return False
            else:
                self._error(out, off, repr(ch), "a digit")
        elif state == "literal":
            word, value = self._word
            if ch != word[self._matched]:
                self._error(out, off, repr(ch), repr(word))
            else:
                self._matched += 1
                if self._matched == len(word):
                    out.append(Token(TokenKind.LITERAL, self._start, off + 1, value))
                    self._state = "between"
        return True

    def _between(self, ch: str, off: int, out: list[Token]) -> None:
        if ch in _WHITESPACE:
            return
        self._start = off
        if ch in _PUNCT:
            if ch in "{[":
                self._nesting += 1
                if self._nesting > MAX_NESTING:
                    self._error(out, off, repr(ch), f"at most {MAX_NESTING} nested containers")
                    return
            elif ch in "}]":
                self._nesting = max(0, self._nesting - 1)
            out.append(Token(TokenKind.PUNCT, off, off + 1, ch))
        elif ch == '"':
            self._buf, self._high = [], False
            self._state = "string"
            out.append(Token(TokenKind.STRING_START, off, off + 1))
        elif ch == "-" or "0" <= ch <= "9":
            self._buf = [ch]
            self._num_state = "sign" if ch == "-" else ("zero" if ch == "0" else "int")
            self._state = "number"
        elif ch in _LITERALS:
            self._word, self._matched = _LITERALS[ch], 1
            self._state = "literal"
        else:
            out.append(Token(TokenKind.OTHER, off, off + 1, ch))
            self._state = "dead"

    def _add_code_unit(self, code: int) -> None:
        # \ud83d\ude00 is one character, as in json.loads; a lone surrogate stays itself.
        if 0xDC00 <= code <= 0xDFFF and self._high:
            high = ord(self._buf[-1])
            self._buf[-1] = chr(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
            self._high = False
        else:
            self._buf.append(chr(code))
            self._high = 0xD800 <= code <= 0xDBFF

    def _emit_number(self, end: int, out: list[Token]) -> None:
        text = "".join(self._buf)
        self._state = "between"
        try:
            value = int(text) if self._num_state in ("zero", "int") else float(text)
        except ValueError:  # more digits than int() converts (sys.int_info)
            self._error(out, self._start, text[:20] + "...", "a number of at most 4300 digits")
            return
        out.append(Token(TokenKind.NUMBER, self._start, end, value))
