"""``search``: which of ``2**size`` records holds a given word? Dead branches conclude "none".

A search with decisions at every level (``parallel``). A task of one record reads it with
``read_word`` and decides whether it is the word asked for: it concludes the record's
number, or ``none``. A longer range splits in halves and keeps the half that found it::

    reasoning: [ 16-17: split, [ 16: read -> "lamp", none   17: read -> "fig", 17 ], 17
                 18-19: split, [ 18: read -> "oak", none    19: read -> "sun", none ], none ]
                                                                             answer: 17

Exactly one record holds the word; the others hold distinct decoys.
"""

from __future__ import annotations

from tim.tree import Task, TaskTree, ToolUse

from .common import Example, check_size, example_rng, pick_template

__all__ = ["TEMPLATES", "WORDS", "make_search"]

TEMPLATES = (
    "Which record from {lo} to {hi} holds the word '{word}'?",
    "Find the record among {lo}-{hi} that contains '{word}'.",
    "Records {lo} through {hi} each store one word. Which one stores '{word}'?",
    "Search records {lo}..{hi} for '{word}' and give its record number.",
    "The word '{word}' is in exactly one of the records {lo} to {hi}. Which record?",
    "Look through record #{lo} up to record #{hi}; tell me where '{word}' is kept.",
)
WORDS = (
    "apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "candle", "forest",
    "rocket", "garden", "silver", "window", "pepper", "castle", "marble", "dragon", "violin",
    "harbor", "falcon", "copper", "meadow", "lantern", "orange", "planet", "button", "basket",
    "mirror", "pencil", "rabbit", "spider", "summer", "winter", "bridge", "anchor", "carpet",
)
NONE = "none"
MAX_SIZE = 5  # 32 records: the words must stay distinct


def make_search(size: int, seed: int, *, template: int | None = None) -> Example:
    """The ``search`` question over ``2**size`` records for ``seed``.

    Examples
    --------
    >>> ex = make_search(1, 4)
    >>> ex.expected in ex.question or ex.expected.isdigit()
    True
    >>> [t.conclusion for _, t in ex.tree.walk()].count("none")
    1
    """
    check_size(size, 0, MAX_SIZE, "search")
    rng = example_rng("search", size, seed)
    n = 2**size
    lo = rng.randrange(1000 - n)
    words = rng.sample(WORDS, n)
    target = rng.randrange(n)
    word = words[target]

    def read_word(index: int) -> str:
        """Return the word stored in record ``index``."""
        if not lo <= index < lo + n:
            raise ValueError(f"record {index} is not in this question's range "
                             f"{lo}..{lo + n - 1}")
        return words[index - lo]

    root = _task(lo, lo + n - 1, lo, words, word)
    which = pick_template(TEMPLATES, seed, template)
    question = TEMPLATES[which].format(lo=lo, hi=lo + n - 1, word=word)
    tasks = root.subtasks if root.subtasks else [root]
    return Example("search", size, seed, question, root.conclusion, "parallel",
                   TaskTree(reasoning=tasks, answer=root.conclusion), (read_word,), which)


def _task(first: int, last: int, lo: int, words: list[str], word: str) -> Task:
    if first == last:
        found = words[first - lo]
        return Task("read", str(first) if found == word else NONE, title=str(first),
                    tooluse=ToolUse("read_word", {"index": first}, tool_result=found))
    mid = (first + last) // 2
    halves = [_task(first, mid, lo, words, word), _task(mid + 1, last, lo, words, word)]
    hit = [h.conclusion for h in halves if h.conclusion != NONE]
    return Task("split", hit[0] if hit else NONE, title=f"{first}-{last}", subtasks=halves)
