"""What every task family shares: the :class:`Example` it yields, the seed split, the
question templates.

A family is a pure function ``(size, seed) -> Example``. Its seeds split in two by
construction: training draws from :data:`TRAIN_SEEDS` and evaluation from
:data:`HELD_OUT_SEEDS`, so no held-out question can be trained on. Every family phrases
its question in several templates; the last one is never used for training
(:data:`HELD_OUT_TEMPLATE`), so an evaluation can ask in words the model has not seen.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tim.tree import TaskTree

__all__ = ["Example", "TRAIN_SEEDS", "HELD_OUT_SEEDS", "HELD_OUT_TEMPLATE", "check_split", "check_size",
           "example_rng", "pick_template", "stable_int"]

TRAIN_SEEDS = range(0, 1_000_000)  # questions a model may be trained on
HELD_OUT_SEEDS = range(1_000_000, 2_000_000)  # questions only ever evaluated
HELD_OUT_TEMPLATE = -1  # index of the phrasing kept out of training, in every family


@dataclass(frozen=True)
class Example:
    """One question of a family, with its tools and the gold tree that solves it.

    ``tools`` are the question's callables (they close over its data), ``format`` the tim
    format the gold tree is written for, ``expected`` the answer an exact match needs.
    """

    family: str
    size: int
    seed: int
    question: str
    expected: str
    format: str
    tree: TaskTree = field(compare=False, repr=False)
    tools: tuple[Callable, ...] = field(compare=False, repr=False)
    template: int = 0


def check_split(seed: int, *, held_out: bool) -> None:
    """``ValueError`` unless ``seed`` lies in the split asked for."""
    seeds = HELD_OUT_SEEDS if held_out else TRAIN_SEEDS
    if isinstance(seed, bool) or not isinstance(seed, int) or seed not in seeds:
        name = "HELD_OUT_SEEDS" if held_out else "TRAIN_SEEDS"
        raise ValueError(f"seed must be an int in {name} ({seeds.start}..{seeds.stop - 1}), "
                         f"got {seed!r}")


def check_size(size: int, lo: int, hi: int, family: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not lo <= size <= hi:
        raise ValueError(f"{family}: size must be an int in {lo}..{hi}, got {size!r}")


def example_rng(family: str, size: int, seed: int) -> random.Random:
    """The generator of one question: the same family, size and seed give the same data."""
    return random.Random(stable_int(f"{family}:{size}:{seed}"))


def stable_int(text: str) -> int:
    """A 64-bit integer hash of ``text`` that does not change between processes."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def pick_template(templates: Sequence[str], seed: int, template: int | None) -> int:
    """The template index of a question: ``template`` if given, else one of the training
    phrasings (all but the last) chosen by the seed."""
    if template is None:
        return stable_int(f"template:{seed}") % (len(templates) - 1)
    if not -len(templates) <= template < len(templates):
        raise ValueError(f"template must index one of {len(templates)} phrasings, "
                         f"got {template!r}")
    return template % len(templates)
