"""tim/eval/redundancy.py: sibling redundancy from a run record's forks and stream texts."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tim.engine.record import ForkRecord, RunRecord, StreamRecord
from tim.eval.redundancy import sibling_redundancy

words = st.lists(st.sampled_from("add three and four then sum it".split()), max_size=12)


def record_of(children: list[tuple[str, str]]) -> RunRecord:
    """A record whose root forked one child per (title, thought), texts as a child writes."""
    paths = tuple((i,) for i in range(len(children)))
    rec = RunRecord("parallel", "none", "shift", [1], forks=[ForkRecord(1, (), paths)])
    for path, (title, thought) in zip(paths, children, strict=True):
        text = json.dumps({"title": title, "thought": thought, "tooluse": None})
        rec.streams[path] = StreamRecord(path, text=text)
    return rec


@given(st.lists(st.tuples(words, words), min_size=2, max_size=5))
def test_a_share_between_zero_and_one(children):
    share, duplicates = sibling_redundancy(record_of([(" ".join(t), " ".join(h))
                                                      for t, h in children]))
    assert share is None or 0.0 <= share <= 1.0
    assert 0 <= duplicates < len(children)


def test_copies_are_fully_redundant_and_strangers_not_at_all():
    same = record_of([("sum", "add three and four then"), ("Sum!", "add three and four then")])
    assert sibling_redundancy(same) == (1.0, 1)
    apart = record_of([("a", "one two three four"), ("b", "five six seven eight")])
    assert sibling_redundancy(apart) == (0.0, 0)
    # the JSON keys are not text: with them, "title x thought" would be shared
    keys = record_of([("x", "thought one two three"), ("x", "thought four five six")])
    assert sibling_redundancy(keys) == (0.0, 1)


def test_a_lone_child_has_no_redundancy():
    assert sibling_redundancy(record_of([("only", "one two three four five")])) == (None, 0)
