"""The segments a stress stream is cut into, and the text they spell. Pure Python: no torch.

A stream's text is a list of segments, each written by a different hand::

    Literal  structural text the chooser writes token by token      {"title": "t1", "thought": "
    Content  a string field's body, sampled from the model, N tokens  <sampled>
    Forced   text the runtime writes itself: a child header, a join text, a tool result

This module owns that vocabulary: the three kinds, the ``§key§`` placeholder a sampled
field stands for, and :func:`spell`. Which segments a shape gives is
:func:`tim.stress.shape.stream_segments`'s job.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Content", "Forced", "Literal", "Segment", "merge_literals", "placeholder", "spell"]


class Literal(NamedTuple):
    text: str  # the chooser writes it


class Forced(NamedTuple):
    text: str  # the runtime writes it; the chooser only checks it is there


class Content(NamedTuple):
    key: str  # "thought 1.2", "conclusion 1", "answer"
    num_tokens: int  # sampled tokens in the field


Segment = Literal | Forced | Content


def placeholder(key: str) -> str:
    """The text a sampled field stands as in a skeleton tree: ``§key§``."""
    return f"§{key}§"  # renders verbatim (no escapes), cannot occur in a structural text


def merge_literals(segs: list[Segment]) -> list[Segment]:
    """Join neighbouring literals, so structural text tokenizes as the format's text would."""
    merged: list[Segment] = []
    for seg in segs:
        if isinstance(seg, Literal) and merged and isinstance(merged[-1], Literal):
            merged[-1] = Literal(merged[-1].text + seg.text)
        else:
            merged.append(seg)
    return merged


def spell(segs: list[Segment]) -> str:
    """A stream's text with ``§key§`` for each sampled field.

    Examples
    --------
    >>> spell([Literal('{"answer": "'), Content("answer", 8), Literal('"}')])
    '{"answer": "§answer§"}'
    """
    return "".join(placeholder(s.key) if isinstance(s, Content) else s.text for s in segs)
