"""The incremental parser both formats share: tokens in, :class:`Event`\\ s out.

:class:`StreamParser` drives a recursive-descent reader written as Python generators:
each ``tok = yield`` waits for the next token from :class:`~tim.tree.scanner.JsonScanner`,
so parsing resumes exactly where a chunk ended. A subclass says what a whole stream is
(:meth:`StreamParser._document`) and what a subtask list holds
(:meth:`StreamParser._subtask_item`); the task object itself is shared.

A task object has its keys in a fixed order: ``"title"`` (optional unless the format
requires it), ``"thought"``, ``"tooluse"``, ``"subtasks"``, ``"conclusion"``.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

from tim.tree.events import Event, EventKind
from tim.tree.scanner import JsonScanner, Token, TokenKind
from tim.tree.task import TaskPath

__all__ = ["StreamParser"]

Reader = Generator[None, Token, Any]


class _Malformed(Exception):
    def __init__(self, offset: int, expected: str, found: str) -> None:
        super().__init__(offset, expected, found)
        self.offset, self.expected, self.found = offset, expected, found


def _describe(tok: Token) -> str:
    if tok.kind is TokenKind.PUNCT:
        return repr(tok.value)
    if tok.kind is TokenKind.STRING_START:
        return "'\"' (a string)"
    if tok.kind is TokenKind.STRING:
        text = json.dumps(tok.value, ensure_ascii=False)
        return repr(text if len(text) <= 40 else text[:37] + "...")
    if tok.kind in (TokenKind.NUMBER, TokenKind.LITERAL):
        return repr(json.dumps(tok.value))
    if tok.kind is TokenKind.OTHER:
        return repr(tok.value)
    return str(tok.value)


def _is(tok: Token, char: str) -> bool:
    return tok.kind is TokenKind.PUNCT and tok.value == char


def _bad(tok: Token, expected: str) -> _Malformed:
    return _Malformed(tok.start, expected, _describe(tok))


class StreamParser:
    """Parse one stream incrementally; see :mod:`tim.tree.events` for what comes out.

    ``feed`` and ``close`` never raise. After a ``MALFORMED`` event, or after ``close``,
    both return ``[]``. Whitespace between JSON tokens is ignored, before and after the
    document too. The events are the same however the text is cut into chunks.
    """

    title_required = False

    def __init__(self, path: TaskPath = ()) -> None:
        self.path = tuple(path)
        self._scanner = JsonScanner()
        self._out: list[Event] = []
        self._open: list[TaskPath] = []
        self._finished = False  # the document is complete; only whitespace may follow
        self._stopped = False  # MALFORMED was emitted or close() was called
        self._reader = self._document()
        next(self._reader)

    @property
    def finished(self) -> bool:
        """Whether a whole, valid document has been read."""
        return self._finished

    def feed(self, chunk: str) -> list[Event]:
        """Read the next chunk of text; return the events it completes."""
        if self._stopped:
            return []
        return self._run(lambda: self._scanner.feed(chunk))

    def close(self) -> list[Event]:
        """Say the stream has ended; returns ``MALFORMED`` if it ended too early."""
        if self._stopped:
            return []
        events = self._run(self._scanner.close)
        self._stopped = True
        return events

    def _run(self, scan) -> list[Event]:
        self._out = []
        try:
            for tok in scan():
                self._send(tok)
                if self._stopped:
                    break
        except Exception as e:  # a bug here must not take the run down: report it located
            self._malformed(self._scanner.pos, "a parsable stream", f"internal error {e!r}")
        return self._out

    def _send(self, tok: Token) -> None:
        if tok.kind is TokenKind.ERROR:
            self._malformed(tok.start, tok.expected or "", tok.value)
        elif self._finished:
            if tok.kind is not TokenKind.EOF:
                self._malformed(tok.start, "end of stream", _describe(tok))
        else:
            try:
                self._reader.send(tok)
            except StopIteration:
                self._finished = True
            except _Malformed as m:
                self._malformed(m.offset, m.expected, m.found)

    def _malformed(self, offset: int, expected: str, found: str) -> None:
        path = self._open[-1] if self._open else self.path
        self._out.append(Event(EventKind.MALFORMED, offset, path, value=found, expected=expected))
        self._stopped = True

    def _emit(self, kind: EventKind, offset: int, path: TaskPath, **payload: Any) -> None:
        self._out.append(Event(kind, offset, path, **payload))

    # -- the readers: generators that take tokens with `tok = yield` -------------------

    def _document(self) -> Reader:
        raise NotImplementedError

    def _subtask_item(self, path: TaskPath, tok: Token) -> Reader:
        raise NotImplementedError

    def _expect(self, char: str, tok: Token | None = None) -> Reader:
        if tok is None:
            tok = yield
        if not _is(tok, char):
            raise _bad(tok, repr(char))
        return tok

    def _key(self, *names: str) -> Reader:
        want = " or ".join(repr(json.dumps(n)) for n in names)
        tok = yield
        if tok.kind is not TokenKind.STRING_START:
            raise _bad(tok, want)
        tok = yield
        if tok.value not in names:
            raise _bad(tok, want)
        yield from self._expect(":")
        return tok.value

    def _string(self, path: TaskPath, field: str | None = None) -> Reader:
        """A string value; with ``field`` set, emit FIELD_OPENED/FIELD_CLOSED for it."""
        tok = yield
        if tok.kind is not TokenKind.STRING_START:
            raise _bad(tok, "a string")
        if field is not None:
            self._emit(EventKind.FIELD_OPENED, tok.end, path, field=field)
        tok = yield
        if field == "answer":
            self._emit(EventKind.ANSWER_CLOSED, tok.end, path, field=field, value=tok.value)
        elif field is not None:
            self._emit(EventKind.FIELD_CLOSED, tok.end, path, field=field, value=tok.value)
        return tok.value

    def _value(self, tok: Token) -> Reader:
        """Any JSON value starting with ``tok``; returns ``(value, end offset)``."""
        if tok.kind is TokenKind.STRING_START:
            tok = yield
            return tok.value, tok.end
        if tok.kind in (TokenKind.NUMBER, TokenKind.LITERAL):
            return tok.value, tok.end
        if _is(tok, "["):
            items: list = []
            tok = yield
            while not (_is(tok, "]") and not items):
                value, _ = yield from self._value(tok)
                items.append(value)
                tok = yield
                if _is(tok, "]"):
                    break
                yield from self._expect(",", tok)
                tok = yield
            return items, tok.end
        if _is(tok, "{"):
            obj: dict = {}
            tok = yield
            while not (_is(tok, "}") and not obj):
                if tok.kind is not TokenKind.STRING_START:
                    raise _bad(tok, "a string key" if obj else "a string key or '}'")
                key = (yield).value
                yield from self._expect(":")
                obj[key], _ = yield from self._value((yield))
                tok = yield
                if _is(tok, "}"):
                    break
                yield from self._expect(",", tok)
                tok = yield
            return obj, tok.end
        raise _bad(tok, "a JSON value")

    def _root(self) -> Reader:
        """``{"reasoning": [item, ...], "answer": "..."}``; the items are the subclass's."""
        yield from self._expect("{")
        yield from self._key("reasoning")
        yield from self._subtasks((), (yield), nullable=False)
        yield from self._expect(",")
        yield from self._key("answer")
        yield from self._string((), "answer")
        tok = yield from self._expect("}")
        self._emit(EventKind.DOCUMENT_CLOSED, tok.end, ())

    def _subtasks(self, path: TaskPath, tok: Token, *, nullable: bool = True) -> Reader:
        if nullable and tok.kind is TokenKind.LITERAL and tok.value is None:
            return
        if not _is(tok, "["):
            raise _bad(tok, "null or '['" if nullable else "'['")
        self._emit(EventKind.SUBTASKS_OPENED, tok.end, path)
        tok = yield
        index = 0
        while not (_is(tok, "]") and index == 0):
            yield from self._subtask_item((*path, index), tok)
            index += 1
            tok = yield
            if _is(tok, "]"):
                break
            if not _is(tok, ","):
                raise _bad(tok, "',' or ']'")
            tok = yield
        self._emit(EventKind.SUBTASKS_CLOSED, tok.end, path)

    def _task(self, path: TaskPath, tok: Token) -> Reader:
        yield from self._expect("{", tok)
        self._emit(EventKind.TASK_OPENED, tok.end, path)
        self._open.append(path)
        first = ("title",) if self.title_required else ("title", "thought")
        if (yield from self._key(*first)) == "title":
            yield from self._string(path, "title")
            yield from self._expect(",")
            yield from self._key("thought")
        yield from self._string(path, "thought")
        yield from self._expect(",")
        yield from self._key("tooluse")
        yield from self._tooluse(path, (yield))
        yield from self._expect(",")
        yield from self._key("subtasks")
        yield from self._subtasks(path, (yield))
        yield from self._expect(",")
        yield from self._key("conclusion")
        yield from self._string(path, "conclusion")
        tok = yield from self._expect("}")
        self._open.pop()
        self._emit(EventKind.TASK_CLOSED, tok.end, path)

    def _tooluse(self, path: TaskPath, tok: Token) -> Reader:
        if tok.kind is TokenKind.LITERAL and tok.value is None:
            return
        yield from self._expect("{", tok)
        yield from self._key("tool_name")
        name = yield from self._string(path)
        yield from self._expect(",")
        yield from self._key("parameters")
        tok = yield
        if not _is(tok, "{"):
            raise _bad(tok, "'{' (the parameters object)")
        params, end = yield from self._value(tok)
        self._emit(EventKind.TOOLUSE_READY, end, path, tool_name=name, value=params)
        yield from self._expect(",")
        yield from self._key("tool_result")
        result, _ = yield from self._value((yield))
        tok = yield from self._expect("}")
        self._emit(EventKind.TOOL_RESULT_CLOSED, tok.end, path, tool_name=name, value=result)
