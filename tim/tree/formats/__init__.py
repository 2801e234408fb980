"""Task-tree formats: ``thread2`` (TIM's inline JSON) and ``parallel`` (plans that fork).

Each format owns all the text of a run: the instructions, the llguidance grammar, the
incremental parser and the texts the runtime forces (tool results; for ``parallel``
also the child headers and join texts).
"""

from __future__ import annotations

from tim.tree.formats.base import Format
from tim.tree.formats.parallel import ParallelFormat, ParallelParser
from tim.tree.formats.thread2 import Thread2Format, Thread2Parser

__all__ = ["Format", "get_format", "FORMAT_NAMES", "Thread2Format", "Thread2Parser",
           "ParallelFormat", "ParallelParser"]

FORMAT_NAMES = ("thread2", "parallel")


def get_format(name: str) -> Format:
    """The format called ``name``.

    Raises
    ------
    ValueError
        Quoting an unknown name.

    Examples
    --------
    >>> get_format("parallel").forks
    True
    >>> get_format("json")
    Traceback (most recent call last):
    ...
    ValueError: unknown format 'json'; known formats: 'thread2', 'parallel'
    """
    if name == "thread2":
        return Thread2Format()
    if name == "parallel":
        return ParallelFormat()
    known = ", ".join(map(repr, FORMAT_NAMES))
    raise ValueError(f"unknown format {name!r}; known formats: {known}")
