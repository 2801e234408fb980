"""What the model sees under ``buffer:k`` pruning, and training windows made of it.

tim prunes a ``thread2`` stream by subtask lists: a list's inner tokens lie strictly between
the token carrying its ``[`` and the token carrying its ``]``. The list completes when the
``]`` token is fed; then the view's stack of completed lists is cut to its newest ``k`` and
the older lists' inner tokens leave the view, before the next token is fed::

    token index   ... 17 [ 18 19 20 ... 41 ] 42 | 43 ...
                          └─ inner tokens ─┘      ^ evictions caused by this close
                                                    take effect from token 43 on

Between two evictions (an **epoch**) the view only grows, so one forward over the view at
the end of an epoch gives every prediction made during it, each from exactly the tokens
the runtime kept. That is one training window: positions contiguous, as ``reencode`` gives
them (``shift`` keeps retained keys computed before the eviction; see docs/evaluation.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tim.tree import EventKind, TaskPath, get_format

__all__ = ["ListSpan", "Eviction", "Window", "list_spans", "plan_evictions", "tree_windows",
           "flat_window", "IGNORE"]

IGNORE = -100  # target of a position with no loss (torch's cross_entropy ignore_index)


@dataclass(frozen=True)
class ListSpan:
    """A subtask list in a stream: the tokens carrying its ``[`` and its ``]``."""

    owner: TaskPath
    open_token: int
    close_token: int


@dataclass(frozen=True)
class Eviction:
    """Stream tokens ``start:end`` leave the view once token ``after`` has been fed."""

    owner: TaskPath
    after: int
    start: int
    end: int


@dataclass(frozen=True)
class Window:
    """One training row: ``input_ids`` (L,) and ``targets`` (L,), the token each position
    must predict or :data:`IGNORE`."""

    input_ids: tuple[int, ...]
    targets: tuple[int, ...]

    @property
    def num_targets(self) -> int:
        return sum(t != IGNORE for t in self.targets)


def list_spans(tokenizer: Any, stream_ids: Sequence[int]) -> list[ListSpan]:
    """Every task's subtask list in a ``thread2`` stream, in closing order.

    The top-level ``reasoning`` list is left out: tim keeps it open until the document
    ends, so it never completes and never pushes a list out.
    """
    ends, text = [], ""
    for token in stream_ids:
        text += tokenizer.decode([token])
        ends.append(len(text))
    parser = get_format("thread2").parser()
    events = parser.feed(text) + parser.close()
    opened: dict[TaskPath, int] = {}
    spans = []
    for event in events:
        if event.kind is EventKind.SUBTASKS_OPENED:
            opened[event.path] = _token_at(ends, event.offset - 1)
        elif event.kind is EventKind.SUBTASKS_CLOSED and event.path:
            spans.append(ListSpan(event.path, opened.pop(event.path),
                                  _token_at(ends, event.offset - 1)))
        elif event.kind is EventKind.MALFORMED:
            raise ValueError(f"not a thread2 stream: {event}")
    return spans


def _token_at(ends: list[int], char: int) -> int:
    """Index of the token holding character ``char`` (``ends``: each token's end offset)."""
    lo, hi = 0, len(ends) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if ends[mid] > char:
            hi = mid
        else:
            lo = mid + 1
    return lo


def plan_evictions(spans: Sequence[ListSpan], k: int) -> list[Eviction]:
    """The ``buffer:k`` rule on one view: at each close keep the newest ``k`` completed lists.

    A list nested in one already evicted is gone with it and takes no slot.

    >>> spans = [ListSpan((0, 0), 5, 9), ListSpan((0, 1), 11, 15), ListSpan((0,), 3, 16)]
    >>> [(e.owner, e.after, e.start, e.end) for e in plan_evictions(spans, 1)]
    [((0, 0), 15, 6, 9), ((0, 1), 16, 12, 15)]
    >>> [e.owner for e in plan_evictions(spans, 0)]
    [(0, 0), (0, 1), (0,)]
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be an int >= 0, got {k!r}")
    stack: list[ListSpan] = []
    gone: list[ListSpan] = []
    out = []
    for span in spans:
        stack.append(span)
        while len(stack) > k:
            old = stack.pop(0)
            if any(g.open_token < old.open_token and old.close_token < g.close_token
                   for g in gone):
                continue
            gone.append(old)
            out.append(Eviction(old.owner, span.close_token, old.open_token + 1,
                                old.close_token))
    return out


def tree_windows(prompt_ids: Sequence[int], stream_ids: Sequence[int],
                 forced: Sequence[bool], evictions: Sequence[Eviction]) -> list[Window]:
    """One window per epoch: the view at its end, with targets on the tokens fed in it.

    Targets skip forced tokens (the runtime writes them) and the prompt.
    """
    offset = len(prompt_ids)
    ids = list(prompt_ids) + list(stream_ids)
    is_target = [False] * offset + [not f for f in forced]
    cuts = sorted({offset + e.after for e in evictions}) + [len(ids) - 1]
    live = [True] * len(ids)
    windows, first = [], 0
    for cut in cuts:
        kept = [i for i in range(cut + 1) if live[i]]
        targets = [ids[i + 1] if first <= i < len(ids) - 1 and is_target[i + 1] else IGNORE
                   for i in kept]
        windows.append(Window(tuple(ids[i] for i in kept), tuple(targets)))
        for e in evictions:
            if offset + e.after == cut:
                for i in range(offset + e.start, offset + e.end):
                    live[i] = False
        first = cut + 1
    return [w for w in windows if w.num_targets]


def flat_window(prompt_ids: Sequence[int], stream_ids: Sequence[int], forced: Sequence[bool],
                *, start: int, end: int) -> Window:
    """The prompt, then stream tokens ``start:end`` at contiguous positions (what a sliding
    window that keeps the prompt shows), with targets on every model-written token after."""
    ids = list(prompt_ids) + list(stream_ids[start:end])
    nxt = list(stream_ids[start:end + 1])
    flags = list(forced[start:end + 1])
    targets = [IGNORE] * (len(prompt_ids) - 1)
    targets.append(nxt[0] if start == 0 and not flags[0] else IGNORE)
    targets += [nxt[j + 1] if j + 1 < len(nxt) and not flags[j + 1] else IGNORE
                for j in range(end - start)]
    return Window(tuple(ids), tuple(targets))
