"""Read a tool's description and per-parameter descriptions from its docstring.

Two layouts are understood: numpydoc (a ``Parameters`` heading underlined with dashes) and
Google (an ``Args:`` / ``Arguments:`` / ``Parameters:`` heading with indented entries).
"""

from __future__ import annotations

import inspect
import re
from typing import NamedTuple

__all__ = ["Docstring", "parse_docstring"]

_DASHES = re.compile(r"-{3,}")
_GOOGLE_HEADING = re.compile(r"(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments):")
_GOOGLE_ENTRY = re.compile(r"\*{0,2}(\w+)\s*(?:\(.*?\))?\s*:(.*)")


class Docstring(NamedTuple):
    """The parts of a docstring a tool spec uses.

    Attributes
    ----------
    summary : str
        The first paragraph, its lines joined by single spaces.
    params : dict[str, str]
        Parameter name -> description (whitespace collapsed), for the parameters documented.
    """

    summary: str
    params: dict[str, str]


def parse_docstring(doc: str | None) -> Docstring:
    """Split a numpydoc or Google docstring into its summary and parameter descriptions.

    Parameters
    ----------
    doc : str or None
        The raw docstring (``fn.__doc__``); ``None`` gives an empty result.

    Returns
    -------
    Docstring
        The first paragraph and a mapping of documented parameters to their descriptions.

    Examples
    --------
    >>> parse_docstring('''Add two numbers.
    ...
    ...     Parameters
    ...     ----------
    ...     a : int
    ...         The first
    ...         number.
    ...     b : int
    ...     ''')
    Docstring(summary='Add two numbers.', params={'a': 'The first number.', 'b': ''})
    >>> parse_docstring('''Look a word up.
    ...
    ...     Args:
    ...         word (str): The word.
    ...         limit: At most this
    ...             many senses.
    ...     Returns:
    ...         The senses.
    ...     ''').params
    {'word': 'The word.', 'limit': 'At most this many senses.'}
    """
    if not doc:
        return Docstring("", {})
    lines = inspect.cleandoc(doc).splitlines()
    return Docstring(_summary(lines), {**_numpydoc_params(lines), **_google_params(lines)})


def _collapse(parts: list[str]) -> str:
    return " ".join(" ".join(parts).split())


def _is_numpydoc_heading(lines: list[str], i: int) -> bool:
    return (i + 1 < len(lines) and bool(lines[i].strip())
            and _DASHES.fullmatch(lines[i + 1].strip()) is not None)


def _summary(lines: list[str]) -> str:
    paragraph: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip() or _is_numpydoc_heading(lines, i) or _GOOGLE_HEADING.fullmatch(
                line.strip()):
            break
        paragraph.append(line.strip())
    return _collapse(paragraph)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _numpydoc_params(lines: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    starts = [i for i in range(len(lines)) if _is_numpydoc_heading(lines, i)
              and lines[i].strip() in ("Parameters", "Other Parameters")]
    for start in starts:
        base = _indent(lines[start])
        names: list[str] = []
        for i in range(start + 2, len(lines)):
            line = lines[i]
            if _is_numpydoc_heading(lines, i) and _indent(line) <= base:
                break
            if not line.strip():
                continue
            if _indent(line) <= base:  # an entry: "name : type" or "a, b : type" or "name"
                names = [n.strip().lstrip("*") for n in line.split(":", 1)[0].split(",")]
                for name in names:
                    params.setdefault(name, "")
            else:
                for name in names:
                    params[name] = _collapse([params[name], line])
    return params


def _google_params(lines: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for start, heading in enumerate(lines):
        if not _GOOGLE_HEADING.fullmatch(heading.strip()) or _is_numpydoc_heading(lines, start):
            continue
        base, entry_indent, name = _indent(heading), None, None
        for line in lines[start + 1:]:
            if not line.strip():
                continue
            indent = _indent(line)
            if indent <= base:  # the next section ("Returns:") or prose: the list is over
                break
            if entry_indent is None:
                entry_indent = indent
            match = _GOOGLE_ENTRY.fullmatch(line.strip())
            if indent <= entry_indent and match:
                name = match.group(1)
                params[name] = _collapse([match.group(2)])
            elif name is not None:
                params[name] = _collapse([params[name], line])
    return params
