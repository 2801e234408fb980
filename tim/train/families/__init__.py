"""Task families for training and evaluating tree models: generators ``(size, seed) ->
Example`` with a gold tree, tools and several phrasings (:mod:`.common`).

- ``records`` (:mod:`.records`): the largest of ``2**size`` tool-read numbers, split in
  halves, siblings concurrent (``parallel``): aggregation and comparison;
- ``chain`` (:mod:`.chain`): ``2**size`` look-ups in a row, each from the key the last one
  reached (``thread2``): a long sequential chain;
- ``search`` (:mod:`.search`): which of ``2**size`` records holds a word; dead branches
  conclude ``none`` (``parallel``): a decision at every level.
"""

from __future__ import annotations

from collections.abc import Callable

from .chain import make_chain
from .common import HELD_OUT_SEEDS, HELD_OUT_TEMPLATE, TRAIN_SEEDS, Example, check_split
from .records import make_records
from .search import make_search

__all__ = ["FAMILIES", "Example", "make_example", "TRAIN_SEEDS", "HELD_OUT_SEEDS",
           "HELD_OUT_TEMPLATE"]

FAMILIES: dict[str, Callable[..., Example]] = {
    "records": make_records,
    "chain": make_chain,
    "search": make_search,
}


def make_example(family: str, size: int, seed: int, *, held_out: bool = False,
                 template: int | None = None) -> Example:
    """One question of ``family``; ``seed`` must lie in the split ``held_out`` names.

    Examples
    --------
    >>> make_example("chain", 2, 5).family
    'chain'
    >>> make_example("chain", 2, 5, held_out=True)
    Traceback (most recent call last):
    ...
    ValueError: seed must be an int in HELD_OUT_SEEDS (1000000..1999999), got 5
    >>> make_example("cahin", 2, 5)
    Traceback (most recent call last):
    ...
    ValueError: unknown task family 'cahin': choose one of 'records', 'chain', 'search'
    """
    if family not in FAMILIES:
        names = ", ".join(repr(f) for f in FAMILIES)
        raise ValueError(f"unknown task family {family!r}: choose one of {names}")
    check_split(seed, held_out=held_out)
    return FAMILIES[family](size, seed, template=template)
