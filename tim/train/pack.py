"""Packing training views into rows: a trie per row, each token attending to its ancestors.

The views of one tree share long prefixes: every view of a ``parallel`` run starts with the
prompt and its ancestors' tokens, and every epoch of a stream repeats the last one's kept
tokens. A causal forward's output at a token depends only on the tokens before it and
their positions, so views that agree on a prefix of ``(token, position)`` pairs can share
that prefix's computation. A row is the trie of several views, laid out depth-first; each
node attends to itself and its ancestors only (the ThreadWeaver packing)::

    view A  p p p a1 a2          row  p p p a1 a2 b1 b2      mask (1 = attends)
    view B  p p p b1 b2                                       p  1
                                                              p  1 1
    (b1's parent is the last p)                               p  1 1 1
                                                              a1 1 1 1 1
                                                              a2 1 1 1 1 1
                                                              b1 1 1 1 . . 1
                                                              b2 1 1 1 . . 1 1

Views that share nothing sit side by side in the same row as separate roots, which is
plain sequence packing. With ``share_prefixes=False`` every view is its own branch (the
same rows a packer without the trie would make), to measure what sharing saves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .views import IGNORE, TrainingView

__all__ = ["PackedRow", "pack_views", "attention_mask", "collate"]


@dataclass(frozen=True)
class PackedRow:
    """One row: ``input_ids``, ``position_ids``, ``labels`` and ``parents`` are (L,); a
    node's parent is the index of the token before it in its views (-1: a root)."""

    input_ids: tuple[int, ...]
    position_ids: tuple[int, ...]
    labels: tuple[int, ...]
    parents: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_labels(self) -> int:
        return sum(label != IGNORE for label in self.labels)


class _RowBuilder:
    def __init__(self) -> None:
        self.ids: list[int] = []
        self.positions: list[int] = []
        self.labels: list[int] = []
        self.parents: list[int] = []
        self.children: dict[tuple[int, int, int], int] = {}  # (parent, token, pos) -> node

    def cost(self, view: TrainingView, share: bool) -> int:
        """Nodes ``view`` would add to this row."""
        if not share:
            return len(view)
        node, k = -1, 0
        for k, (token, pos, label) in enumerate(zip(view.input_ids, view.position_ids,
                                                    view.labels, strict=True)):
            child = self.children.get((node, token, pos))
            if child is None or _conflict(self.labels[child], label):
                return len(view) - k
            node = child
        return 0

    def add(self, view: TrainingView, share: bool) -> None:
        node = -1
        for token, pos, label in zip(view.input_ids, view.position_ids, view.labels,
                                     strict=True):
            child = self.children.get((node, token, pos)) if share else None
            if child is None or _conflict(self.labels[child], label):
                child = len(self.ids)
                self.ids.append(token)
                self.positions.append(pos)
                self.labels.append(label)
                self.parents.append(node)
                if share:
                    self.children[(node, token, pos)] = child
            elif label != IGNORE:
                self.labels[child] = label
            node = child

    def row(self) -> PackedRow:
        return PackedRow(tuple(self.ids), tuple(self.positions), tuple(self.labels),
                         tuple(self.parents))


def _conflict(a: int, b: int) -> bool:
    return a != IGNORE and b != IGNORE and a != b


def pack_views(views: Sequence[TrainingView], max_len: int, *,
               share_prefixes: bool = True) -> list[PackedRow]:
    """Pack ``views`` in order into rows of at most ``max_len`` tokens.

    A view goes into the current row if what it adds fits, else it starts the next row.
    Every label of every view is in exactly one row, at a node whose ancestors are exactly
    the tokens the view had before it.

    Examples
    --------
    >>> a = TrainingView((), (5, 6, 7), (0, 1, 2), (IGNORE, 7, 8))
    >>> b = TrainingView((), (5, 6, 9), (0, 1, 2), (IGNORE, IGNORE, 4))
    >>> [len(r) for r in pack_views([a, b], 8)], [len(r) for r in pack_views([a, b], 3)]
    ([4], [3, 3])
    >>> pack_views([a, b], 8)[0].parents
    (-1, 0, 1, 1)
    >>> [len(r) for r in pack_views([a, b], 8, share_prefixes=False)]
    [6]
    """
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be an int >= 1, got {max_len!r}")
    rows: list[PackedRow] = []
    builder = _RowBuilder()
    for view in views:
        if len(view) > max_len:
            raise ValueError(f"a training view of stream {list(view.stream)} has {len(view)} "
                             f"tokens, more than max_len={max_len}: raise max_len (it must "
                             f"hold the longest view the pruning rule leaves)")
        if builder.ids and len(builder.ids) + builder.cost(view, share_prefixes) > max_len:
            rows.append(builder.row())
            builder = _RowBuilder()
        builder.add(view, share_prefixes)
    if builder.ids:
        rows.append(builder.row())
    return rows


def attention_mask(parents: Sequence[int], length: int | None = None) -> torch.Tensor:
    """(L, L) bool, True where node i may attend to node j: j is i or an ancestor of i.

    Rows past ``len(parents)`` (padding up to ``length``) attend to themselves only.

    >>> attention_mask([-1, 0, 0]).int().tolist()
    [[1, 0, 0], [1, 1, 0], [1, 0, 1]]
    """
    n = len(parents)
    length = n if length is None else length
    mask = torch.zeros(length, length, dtype=torch.bool)
    for i, parent in enumerate(parents):
        if parent >= 0:
            mask[i] = mask[parent]  # parents come before their children
        mask[i, i] = True
    for i in range(n, length):
        mask[i, i] = True
    return mask


def collate(rows: Sequence[PackedRow]) -> dict[str, torch.Tensor]:
    """A batch of rows, padded to the longest: ``input_ids``, ``position_ids``, ``labels``
    (B, L) int64 and ``attention_mask`` (B, 1, L, L) bool, as a transformers model takes
    them (a 4D mask is used as given)."""
    length = max(len(r) for r in rows)
    pad = [length - len(r) for r in rows]
    return {
        "input_ids": torch.tensor([list(r.input_ids) + [0] * p for r, p in zip(rows, pad, strict=True)]),
        "position_ids": torch.tensor([list(r.position_ids) + [0] * p
                                      for r, p in zip(rows, pad, strict=True)]),
        "labels": torch.tensor([list(r.labels) + [IGNORE] * p for r, p in zip(rows, pad, strict=True)]),
        "attention_mask": torch.stack([attention_mask(r.parents, length)
                                       for r in rows]).unsqueeze(1),
    }
