"""``records``: the largest of ``2**size`` numbers that only a tool can read, split in halves.

Aggregation over data the question does not hold, with siblings that run concurrently
(``parallel``). Each task covers a range of records: a range of one reads its record with
``read_record`` and concludes the value; a longer range splits into its two halves and
concludes the larger of their conclusions (a comparison it must make itself)::

    reasoning: [ 40-43: split, [ 40-41: split, [ 40: read -> 71, 41: read -> 18 ], 71
                                 42-43: split, [ 42: read -> 35, 43: read -> 96 ], 96 ],
                 96 ]                                                   answer: 96

The top level holds the two halves of the whole range (one record when ``size`` is 0).
"""

from __future__ import annotations

from tim.tree import Task, TaskTree, ToolUse

from .common import Example, check_size, example_rng, pick_template

__all__ = ["TEMPLATES", "make_records", "record_value"]

TEMPLATES = (
    "What is the largest value among records {lo} to {hi}?",
    "Find the maximum of records {lo}-{hi}.",
    "Records {lo} through {hi} each hold a number. Which number is the biggest?",
    "Read records {lo}..{hi} and report the highest value.",
    "Give the max over the records numbered {lo} to {hi}.",
    "Each of the records from #{lo} up to #{hi} stores one value; tell me the greatest.",
)
MAX_SIZE = 10


def record_value(seed: int, index: int) -> int:
    """The number (10..99) in record ``index`` of question ``seed``."""
    return 10 + example_rng("records:value", index, seed).randrange(90)


def make_records(size: int, seed: int, *, template: int | None = None) -> Example:
    """The ``records`` question of ``2**size`` records for ``seed``.

    Examples
    --------
    >>> ex = make_records(2, 7)
    >>> ex.question
    'Records 359 through 362 each hold a number. Which number is the biggest?'
    >>> ex.expected == str(max(record_value(7, i) for i in range(359, 363)))
    True
    >>> [t.title for _, t in ex.tree.walk()][:3]
    ['359-360', '359', '360']
    """
    check_size(size, 0, MAX_SIZE, "records")
    rng = example_rng("records", size, seed)
    lo = rng.randrange(1000 - 2**size)
    hi = lo + 2**size - 1

    def read_record(index: int) -> int:
        """Return the number stored in record ``index``."""
        if not lo <= index <= hi:
            raise ValueError(f"record {index} is not in this question's range {lo}..{hi}")
        return record_value(seed, index)

    root = _task(lo, hi, seed)
    tasks = root.subtasks if root.subtasks else [root]
    which = pick_template(TEMPLATES, seed, template)
    return Example("records", size, seed, TEMPLATES[which].format(lo=lo, hi=hi),
                   root.conclusion, "parallel", TaskTree(reasoning=tasks, answer=root.conclusion),
                   (read_record,), which)


def _task(lo: int, hi: int, seed: int) -> Task:
    if lo == hi:
        value = record_value(seed, lo)
        return Task("read", str(value), title=str(lo),
                    tooluse=ToolUse("read_record", {"index": lo}, tool_result=value))
    mid = (lo + hi) // 2
    halves = [_task(lo, mid, seed), _task(mid + 1, hi, seed)]
    best = max(int(h.conclusion) for h in halves)
    return Task("split", str(best), title=f"{lo}-{hi}", subtasks=halves)
