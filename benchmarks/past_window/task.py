"""The task: the last digit of the sum of a binary tree's leaf values, the leaves read by a tool.

A question names a height ``h`` and a seed. The ``2**h`` leaves are the bit strings of length
``h``, written ``p0110`` (``p`` alone is the root); a leaf's value is a digit that only the
``leaf`` tool knows (a hash of the seed and the path). The solver splits each node in two
halves until it reaches the leaves and calls ``leaf`` at each; on the way back up, a third
subtask of each node calls ``add`` on its two halves' values, and the node concludes with
the sum. The question is one line whatever ``h``; the solution has ``2**h`` leaf calls and
``2**h - 1`` additions.

Why tools: a leaf value stands for work the model cannot do by itself (a look-up), so the
question stays one line; the addition mod 10 is a tool too, because a model of a million
parameters trained here for 1,200 steps (ten minutes on one core) had not learnt it at all:
it got 851 of 984 sum digits wrong on held-out trees, about chance (a 100-entry table to
memorise from about one example per training row), and one wrong sum spoils a whole tree. The model is judged on what the
tree asks of it: splitting, counting the height down, copying a path or two values into a
call, and copying a result into a conclusion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from tim.tree import Task, TaskTree, ToolUse

__all__ = ["Problem", "LEAF_TOOL", "ADD_TOOL", "answer_of", "child_paths", "leaf_value",
           "make_tools", "question_text", "solve", "split_thought", "add_mod10"]

LEAF_TOOL = "leaf"
ADD_TOOL = "add"


@dataclass(frozen=True)
class Problem:
    """One question: a tree of ``height`` levels below the root, leaves keyed by ``seed``.

    Examples
    --------
    >>> Problem(height=3, seed=7).num_leaves
    8
    >>> Problem(height=-1, seed=7)
    Traceback (most recent call last):
    ...
    ValueError: height must be an int in 0..12, got -1
    """

    height: int
    seed: int

    def __post_init__(self) -> None:
        if isinstance(self.height, bool) or not isinstance(self.height, int) \
                or not 0 <= self.height <= 12:
            raise ValueError(f"height must be an int in 0..12, got {self.height!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) \
                or not 0 <= self.seed < 10_000:
            raise ValueError(f"seed must be an int in 0..9999, got {self.seed!r}")

    @property
    def num_leaves(self) -> int:
        return 2**self.height

    @property
    def num_steps(self) -> int:
        """Tasks in the solution tree: every node of the binary tree."""
        return 2 ** (self.height + 1) - 1


def question_text(problem: Problem) -> str:
    """The one-line question both models read.

    >>> question_text(Problem(height=4, seed=12))
    'sum the leaves mod 10, height 4, seed 12'
    """
    return f"sum the leaves mod 10, height {problem.height}, seed {problem.seed}"


def leaf_value(seed: int, path: str) -> int:
    """The digit at leaf ``path`` (e.g. ``"p0110"``) of the tree keyed by ``seed``.

    >>> [leaf_value(1, p) for p in ("p0", "p1")] == [leaf_value(1, "p0"), leaf_value(1, "p1")]
    True
    """
    digest = hashlib.blake2b(f"{seed}:{path}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") % 10


def add_mod10(a: int, b: int) -> int:
    """The ``add`` tool: the last digit of ``a + b``.

    >>> add_mod10(7, 5)
    2
    """
    return (a + b) % 10


def make_tools(problem: Problem) -> tuple[Callable[..., int], Callable[..., int]]:
    """The tools of one problem: ``leaf`` (a leaf's path in, its digit out) and ``add``."""

    def leaf(path: str) -> int:
        """Return the value (a digit) of the leaf at this path."""
        if len(path) != problem.height + 1 or not path.startswith("p") \
                or set(path[1:]) - {"0", "1"}:
            raise ValueError(f"not a leaf path of height {problem.height}: {path!r}")
        return leaf_value(problem.seed, path)

    def add(a: int, b: int) -> int:
        """Return (a + b) mod 10."""
        return add_mod10(a, b)

    leaf.__name__, add.__name__ = LEAF_TOOL, ADD_TOOL
    return leaf, add


def child_paths(path: str) -> tuple[str, str]:
    """The two halves of ``path``.

    >>> child_paths("p01")
    ('p010', 'p011')
    """
    return path + "0", path + "1"


def split_thought(height: int) -> str:
    """The thought of a node ``height`` levels above the leaves."""
    return "leaf" if height == 0 else f"split {height}"


def solve(problem: Problem) -> TaskTree:
    """The solution as a tim task tree: one top-level task for the root, answer its value.

    Every node is a task titled by its path. A leaf calls ``leaf`` (its result filled in) and
    concludes with the digit; an inner node has three subtasks, its two halves and an
    ``add`` of their values (titled ``<path>+``), and concludes with the sum.

    Examples
    --------
    >>> tree = solve(Problem(height=1, seed=0))
    >>> [(t.title, t.thought) for _, t in tree.walk()]
    [('p', 'split 1'), ('p0', 'leaf'), ('p1', 'leaf'), ('p+', 'add')]
    >>> tree.answer == str((leaf_value(0, "p0") + leaf_value(0, "p1")) % 10)
    True
    """
    root = _solve_node(problem, "p", problem.height)
    return TaskTree(reasoning=[root], answer=root.conclusion)


def _solve_node(problem: Problem, path: str, height: int) -> Task:
    if height == 0:
        value = leaf_value(problem.seed, path)
        tooluse = ToolUse(tool_name=LEAF_TOOL, parameters={"path": path}, tool_result=value)
        return Task(title=path, thought=split_thought(0), tooluse=tooluse, conclusion=str(value))
    halves = [_solve_node(problem, child, height - 1) for child in child_paths(path)]
    a, b = (int(half.conclusion) for half in halves)
    total = add_mod10(a, b)
    add = Task(title=path + "+", thought=ADD_TOOL, conclusion=str(total),
               tooluse=ToolUse(tool_name=ADD_TOOL, parameters={"a": a, "b": b},
                               tool_result=total))
    return Task(title=path, thought=split_thought(height), subtasks=[*halves, add],
                conclusion=str(total))


def answer_of(problem: Problem) -> str:
    """The expected answer, computed directly (not through the tree).

    >>> answer_of(Problem(height=0, seed=3)) == str(leaf_value(3, "p"))
    True
    """
    total = sum(leaf_value(problem.seed, "p" + format(i, f"0{problem.height}b"))
                for i in range(problem.num_leaves)) if problem.height else \
        leaf_value(problem.seed, "p")
    return str(total % 10)
