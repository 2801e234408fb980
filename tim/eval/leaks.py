"""Answers that copy the instructions' worked examples instead of answering.

A small model may end its tree with the worked example's conclusion (``391 + 60 = 451``)
whatever it was asked. An answer **copies an example** when it contains one of the
examples' conclusions or answer (3+ characters with a digit, or 8+ characters) or a number
of 3+ digits from an example's answer, that neither the question nor its expected answer
contains. ``cot`` never sees the examples, so its rate is the check for false alarms.
"""

from __future__ import annotations

import re
from functools import lru_cache

from tim.eval.tasks import Question, make_question
from tim.tree.formats.common import worked_examples
from tim.tree.toolspec import ToolSpec

__all__ = ["example_markers", "copies_example", "copied_example"]


@lru_cache(maxsize=1)
def example_markers() -> tuple[str, ...]:
    """Every worked example's conclusions and answer (the generic tool example's too),
    longest first.

    >>> "391 + 60 = 451" in example_markers()
    True
    """
    any_tool = (ToolSpec("f", "F.", {"type": "object"}),)  # to include the tool example
    markers: set[str] = set()
    for _, tree in worked_examples(any_tool, tool_example=True):
        texts = [tree.answer] + [task.conclusion for _, task in tree.walk()]
        # a digit or 8+ characters: "yes" alone is no sign of copying
        markers |= {t for t in texts if len(t) >= 3 and (re.search(r"\d", t) or len(t) >= 8)}
        markers |= set(re.findall(r"\d{3,}", tree.answer))
    return tuple(sorted(markers, key=len, reverse=True))


def copies_example(answer: str | None, question: Question) -> bool:
    """Whether ``answer`` copies a worked example (a marker absent from the question, with or
    without tools, and from its expected answer).

    >>> q = make_question("arithmetic", size=2, seed=0)
    >>> copies_example("391 + 60 = 451", q), copies_example(q.expected, q), copies_example(None, q)
    (True, False, False)
    """
    if not answer:
        return False
    context = " ".join((question.text, question.text_no_tools, question.expected))
    return any(m in answer and m not in context for m in example_markers())


def copied_example(task: str, size: int, seed: int, answer: str | None) -> bool:
    """:func:`copies_example` for a saved outcome: its question is made again from its seed."""
    return copies_example(answer, make_question(task, size=size, seed=seed))
