"""``chain``: follow ``2**size`` look-ups, each key leading to the next (``thread2``).

A long sequential chain: every hop needs the key the hop before it reached. The hops are
grouped in halves, recursively, so each task concludes the key its group reached and the
next task starts from it::

    hops 1-4 from 318: [ hops 1-2 from 318: [ hop 1 from 318: lookup -> 902, 902
                                              hop 2 from 902: lookup -> 475, 475 ], 475
                         hops 3-4 from 475: [ ... ], 160 ], 160            answer: 160

A key is a three-digit number; ``lookup`` knows the question's table. The siblings depend
on each other, so they run one after another.
"""

from __future__ import annotations

from tim.tree import Task, TaskTree, ToolUse

from .common import Example, check_size, example_rng, pick_template

__all__ = ["TEMPLATES", "make_chain"]

TEMPLATES = (
    "Start at key {start} and follow the lookup chain {n} times. Which key do you reach?",
    "From {start}, apply lookup {n} times in a row. What is the final key?",
    "Key {start} points to another key, which points to another. Where are you after {n} hops?",
    "Follow {n} links starting from {start}; give the last key.",
    "Chase the chain of keys beginning at {start} for {n} steps and report where it ends.",
    "Beginning with {start}, look up the next key, then the next, {n} times over. Final key?",
)
MAX_SIZE = 9


def make_chain(size: int, seed: int, *, template: int | None = None) -> Example:
    """The ``chain`` question of ``2**size`` hops for ``seed``.

    Examples
    --------
    >>> ex = make_chain(1, 3)
    >>> [(t.title, t.thought) for _, t in ex.tree.walk()]
    [('hops 1-2', 'from 180'), ('hop 1', 'from 180'), ('hop 2', 'from 839')]
    >>> ex.tools[0]("180"), ex.tools[0]("839") == ex.expected
    ('839', True)
    """
    check_size(size, 0, MAX_SIZE, "chain")
    rng = example_rng("chain", size, seed)
    n = 2**size
    keys = rng.sample(range(100, 1000), n + 1)  # distinct: no cycles to shortcut
    table = {str(a): str(b) for a, b in zip(keys, keys[1:], strict=False)}
    # decoys: keys off the chain, so a table read never tells the chain's length
    for key in rng.sample([k for k in range(100, 1000) if k not in keys], n):
        table[str(key)] = str(rng.randrange(100, 1000))

    def lookup(key: str) -> str:
        """Return the key that ``key`` points to."""
        key = str(key).strip()
        if key not in table:
            raise ValueError(f"unknown key {key!r}")
        return table[key]

    root = _task(1, n, [str(k) for k in keys])
    which = pick_template(TEMPLATES, seed, template)
    question = TEMPLATES[which].format(start=keys[0], n=n)
    return Example("chain", size, seed, question, root.conclusion, "thread2",
                   TaskTree(reasoning=[root], answer=root.conclusion), (lookup,), which)


def _task(first: int, last: int, keys: list[str]) -> Task:
    start = keys[first - 1]
    if first == last:
        return Task(f"from {start}", keys[first], title=f"hop {first}",
                    tooluse=ToolUse("lookup", {"key": start}, tool_result=keys[first]))
    mid = (first + last) // 2
    halves = [_task(first, mid, keys), _task(mid + 1, last, keys)]
    return Task(f"from {start}", halves[-1].conclusion, title=f"hops {first}-{last}",
                subtasks=halves)
