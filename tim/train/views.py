"""Training views: what the engine showed the model when it wrote each token, read from a
run record.

A run's record says, for every stream, which tokens it wrote (sampled or forced), where
each was placed, and every change to its view (a child started, a child joined, a list was
evicted) with the number of the stream's own tokens fed before it. Replaying those changes
gives the view behind every sampled token. Between two changes a view only grows at its
end (an **epoch**), so one causal forward over the view at the end of an epoch predicts
every token written during it, each from exactly the tokens the runtime kept::

    stream tokens     t0 t1 t2 ] t4 t5 | t6 t7 ...        (| : an eviction after ']' is fed)
    epoch 1 window    prompt ... t0 t1 t2 ] t4 t5          labels: t1 t2 ] t4 t5 t6
    epoch 2 window    prompt ... t0 ] t4 t5 t6 t7 ...      (t1 t2 gone)  labels: t7 ...

``t6`` is predicted by the forward that fed ``t5``, before the eviction, so its label sits
in epoch 1's window. Labels go on sampled tokens only: the prompt, forced headers, tool
results and join text carry none.

Positions are the view's own (``position_ids``), as the record's policy left them. A
window is one fresh forward over the view, so every kept token's K/V is computed in the
view's present context, as ``reencode`` computes it. ``shift`` keeps the keys a moved token
had (computed before the eviction) and an isolated sibling's tokens joined into its parent
were computed without its siblings, so under those a window is close to, not exactly, what
the engine computed (docs/training.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tim.errors import TimError

__all__ = ["IGNORE", "TrainingView", "record_views"]

IGNORE = -100  # the label of a position with no loss (torch's cross_entropy ignore_index)
PROMPT = "prompt"


@dataclass(frozen=True)
class TrainingView:
    """One training window.

    ``input_ids``, ``position_ids`` and ``labels`` are (L,): the view's tokens, their
    positions, and at each position the token the model wrote next, or :data:`IGNORE`.
    ``stream`` is the task path of the stream whose view it is.
    """

    stream: tuple[int, ...]
    input_ids: tuple[int, ...]
    position_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def num_labels(self) -> int:
        return sum(label != IGNORE for label in self.labels)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class _Entry:
    source: Any  # PROMPT or the writer stream's path
    index: int  # the token's index in its source
    token: int
    position: int


def record_views(record: Any) -> list[TrainingView]:
    """Every training window of a run, stream by stream (each stream's windows in order).

    ``record`` is a :class:`tim.engine.record.RunRecord` of a finished run with isolated
    siblings. Raises :class:`tim.TimError` when the record contradicts itself (a token's
    recorded position is not where its view puts it, an eviction is not one run of the
    view).

    Examples
    --------
    >>> from tim.engine.record import RunRecord, StreamRecord
    >>> record = RunRecord(format="thread2", pruning="none", positions="shift",
    ...                    prompt_ids=[7, 8])
    >>> record.streams[()] = StreamRecord((), token_ids=[1, 2, 3], position_ids=[2, 3],
    ...                                   forced=[False, True, False])
    >>> [(v.input_ids, v.labels) for v in record_views(record)]
    [((7, 8, 1, 2), (-100, 1, -100, 3))]
    """
    if getattr(record, "siblings", "isolated") != "isolated":
        raise TimError(f"training views need isolated siblings; this run has siblings="
                       f"{record.siblings!r}")
    prompt = [_Entry(PROMPT, i, t, i) for i, t in enumerate(record.prompt_ids)]
    views: list[TrainingView] = []
    _Replay(record, views).stream((), prompt)
    return views


class _Replay:
    """Walks the record's streams depth-first, as the reference oracle does."""

    def __init__(self, record: Any, out: list[TrainingView]) -> None:
        self.record, self.out = record, out

    def stream(self, path: tuple[int, ...], view: list[_Entry]) -> list[_Entry]:
        """Replay stream ``path`` from ``view`` (the view it started on); return its view at
        the end, having emitted its windows."""
        stream = self.record.streams[path]
        changes = self._changes_of(path)
        starts: dict[tuple[int, ...], list[_Entry]] = {}
        num_fed = len(stream.position_ids)
        labels: dict[int, int] = {}  # view index -> label, in the current epoch
        labelled = set()  # token indices whose label is placed
        f = 0
        while True:
            now = [c for c in changes if c[0] == f]
            if now:
                self._label(stream, f, view, labels, labelled)
                self._emit(path, view, labels)
                for _, _, change in now:
                    view = self._apply(view, change, starts)
            if f >= num_fed:
                break
            end = min([c[0] for c in changes if c[0] > f] + [num_fed])
            top = max((e.position for e in view), default=-1)
            for i in range(f, end):
                if stream.position_ids[i] != top + 1 + i - f:
                    raise TimError(f"stream {list(path)} token {i}: the record places it at "
                                   f"position {stream.position_ids[i]}, its view at "
                                   f"{top + 1 + i - f}")
                self._label(stream, i, view, labels, labelled)
                view = view + [_Entry(path, i, stream.token_ids[i], stream.position_ids[i])]
            f = end
        self._label(stream, num_fed, view, labels, labelled)  # sampled last, never fed
        self._emit(path, view, labels)
        for child, start in starts.items():  # children that never joined (the run ended)
            if not any(j.child == child for j in self.record.joins):
                self.stream(child, start)
        return view

    @staticmethod
    def _label(stream: Any, index: int, view: list[_Entry], labels: dict[int, int],
               labelled: set[int]) -> None:
        """Token ``index`` of ``stream`` was predicted at the view's last entry (before
        any change made after the token before it was fed)."""
        if index < len(stream.token_ids) and not stream.forced[index] and view \
                and index not in labelled:
            labels[len(view) - 1] = stream.token_ids[index]
            labelled.add(index)

    def _emit(self, path: tuple[int, ...], view: list[_Entry], labels: dict[int, int]) -> None:
        if labels:
            self.out.append(TrainingView(
                path, tuple(e.token for e in view), tuple(e.position for e in view),
                tuple(labels.get(k, IGNORE) for k in range(len(view)))))
            labels.clear()

    def _changes_of(self, path: tuple[int, ...]) -> list[tuple[int, int, tuple[str, Any]]]:
        """This stream's view changes as (fed, seq, change), in the order they happened."""
        rec = self.record
        changes = [(s.parent_fed, s.start_seq, ("start", p)) for p, s in rec.streams.items()
                   if p[:-1] == path and len(p) == len(path) + 1 and s.token_ids]
        changes += [(j.fed, j.seq, ("join", j)) for j in rec.joins if j.parent == path]
        changes += [(e.fed, e.seq, ("evict", e)) for e in rec.evictions
                    if e.stream == path and not e.deferred]
        return sorted(changes, key=lambda c: (c[0], c[1]))

    def _apply(self, view: list[_Entry], change: tuple[str, Any],
               starts: dict[tuple[int, ...], list[_Entry]]) -> list[_Entry]:
        kind, what = change
        if kind == "start":
            starts[what] = list(view)
            return view
        if kind == "join":
            start = starts[what.child]
            final = self.stream(what.child, start)
            own = final[len(start):]
            if what.dropped or not own:
                return view
            top = max((e.position for e in view), default=-1)
            delta = top + 1 - own[0].position
            return view + [_moved(e, delta) for e in own]
        return self._evict(view, what)

    def _evict(self, view: list[_Entry], eviction: Any) -> list[_Entry]:
        gone = {(src, i) for src, a, b in eviction.ranges for i in range(a, b)}
        hit = [k for k, e in enumerate(view) if (e.source, e.index) in gone]
        if not hit or len(hit) != len(gone) or hit != list(range(hit[0], hit[0] + len(hit))):
            raise TimError(f"eviction {eviction.ranges} is not one run of stream "
                           f"{list(eviction.stream)}'s view")
        first, n = hit[0], len(hit)
        tail = view[first + n:]
        if self.record.positions != "keep":  # shift and reencode both close the gap
            tail = [_moved(e, -n) for e in tail]
        return view[:first] + tail


def _moved(entry: _Entry, delta: int) -> _Entry:
    return _Entry(entry.source, entry.index, entry.token, entry.position + delta)

