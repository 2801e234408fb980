"""Redundancy between sibling workers: how much of what each wrote another also wrote.

For every list of two or more siblings (the children of one fork), the string values of each
sibling's JSON text (its title, thought, subtask titles and conclusion; not the keys) are cut
into word 4-grams (lower-cased, punctuation dropped). Its redundancy is the share of its
4-grams that also occur in a sibling's text; a run's redundancy is the mean over siblings
with at least one 4-gram. Duplicate titles count siblings whose title (normalised the same
way) equals an earlier sibling's in the same list. Shared visibility is meant to push both
down: a worker that sees the others should not rewrite their work.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["ngrams", "sibling_redundancy"]

_WORD = re.compile(r"[a-z0-9]+")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?')  # a JSON string; group 2: it is a key


def ngrams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    """Word ``n``-grams of ``text``, lower-cased, punctuation dropped.

    >>> sorted(ngrams("Add 3 and 4, then add 3 and 4.", n=4))[:2]
    [('3', 'and', '4', 'then'), ('4', 'then', 'add', '3')]
    """
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def sibling_redundancy(record: Any, *, n: int = 4) -> tuple[float | None, int]:
    """(mean share of a sibling's ``n``-grams found in another sibling's text, or None when
    no list had two siblings with text; duplicate titles) over a run's forks.

    ``record`` is a :class:`~tim.engine.record.RunRecord`; a sibling's text is its stream's
    text (its header, thought, subtask titles and conclusion).

    >>> from tim.engine.record import ForkRecord, RunRecord, StreamRecord
    >>> rec = RunRecord("parallel", "none", "shift", [1], forks=[ForkRecord(1, (), ((0,), (1,)))])
    >>> rec.streams = {(0,): StreamRecord((0,), text='{"title": "sum", "thought": "add 3 and 4"'),
    ...                (1,): StreamRecord((1,), text='{"title": "Sum", "thought": "add 3 and 5"')}
    >>> sibling_redundancy(rec)
    (0.5, 1)
    """
    shares, duplicates = [], 0
    for fork in record.forks:
        texts = [record.streams[c].text for c in fork.children if c in record.streams]
        grams = [ngrams(_values(t), n) for t in texts]
        for i, mine in enumerate(grams):
            others = set().union(*(g for j, g in enumerate(grams) if j != i))
            if mine and len(grams) > 1:
                shares.append(len(mine & others) / len(mine))
        titles = [_title(t) for t in texts]
        duplicates += sum(1 for i, t in enumerate(titles) if t and t in titles[:i])
    return (sum(shares) / len(shares) if shares else None), duplicates


def _values(text: str) -> str:
    """The string values of a (maybe unfinished) JSON text, keys left out."""
    return " ".join(m.group(1) for m in _STRING.finditer(text) if not m.group(2))


def _title(text: str) -> str:
    """The normalised title of a child stream's text (its header's title field)."""
    match = re.search(r'"title":\s*"((?:[^"\\]|\\.)*)"', text)
    return " ".join(_WORD.findall(match.group(1).lower())) if match else ""
