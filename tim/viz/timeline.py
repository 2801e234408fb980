"""Which worker ran when: segments of steps per stream, and the run's events.

The record keeps exact steps for forks and evictions, and one row per step with the
number of streams that ran. It does not keep the steps of each stream, so they are
rebuilt by replaying the engine's scheduler (:mod:`tim.viz.schedule`). The one unknown,
how many steps each tool call kept its stream waiting, is fitted to the recorded
per-step concurrency: where the replay runs one stream more than the record just as a
tool result is due, that tool is taken to have returned later.

``WorkerTimeline.exact`` says whether the rebuilt concurrency equals the recorded one at
every step. Steps are 1-based, as in ``RunRecord.timeline``. ``ForkRecord.step`` and
``EvictionRecord.step`` count the steps finished before, so those events happen in step
``record_step + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tim.engine.record import RunRecord
from tim.tree import TaskPath
from tim.viz.schedule import Piece, simulate, stream_plans

__all__ = ["Segment", "RunEvent", "WorkerTimeline", "worker_timeline"]

MAX_FITS = 500  # tool-wait adjustments tried before settling for an approximate timeline


@dataclass(frozen=True)
class Segment:
    """Steps ``start..end`` (inclusive) in which stream ``path`` ran, on worker ``lane``."""

    path: TaskPath
    start: int
    end: int
    lane: int = 0


@dataclass(frozen=True)
class RunEvent:
    """Something that happened in ``step``: ``kind`` is fork, join, tool, evict or error."""

    step: int
    kind: str
    path: TaskPath
    detail: str = ""


@dataclass(frozen=True)
class WorkerTimeline:
    segments: tuple[Segment, ...]
    events: tuple[RunEvent, ...]
    num_steps: int
    num_lanes: int
    exact: bool  # rebuilt concurrency equals the recorded one at every step


def worker_timeline(record: RunRecord) -> WorkerTimeline:
    """Rebuild the worker segments and events of a run from its record.

    Parameters
    ----------
    record : RunRecord

    Returns
    -------
    WorkerTimeline
        Segments (a stream's stretch of steps on one worker lane) and events (fork, join,
        tool, evict, error), sorted by step.

    Examples
    --------
    >>> from tim.engine.record import RunRecord, StreamRecord
    >>> rec = RunRecord("thread2", "none", "shift", [1], num_steps=3)
    >>> rec.streams[()] = StreamRecord((), token_ids=[5, 6, 7], forced=[False] * 3)
    >>> rec.timeline = [(1, 2, 2, 1), (2, 3, 3, 1), (3, 4, 4, 1)]
    >>> tl = worker_timeline(rec)
    >>> tl.segments, tl.exact
    ((Segment(path=(), start=1, end=3, lane=0),), True)
    """
    num_steps = max(record.num_steps, len(record.timeline))
    plans = stream_plans(record)
    recorded = [row[3] for row in record.timeline]
    waits: dict[tuple[TaskPath, int], int] = {}
    for _ in range(MAX_FITS):
        schedule = simulate(record, plans, waits, num_steps)
        fit = _fit_wait(schedule, _concurrency(schedule.pieces, len(recorded)), recorded)
        if fit is None:
            break
        key, steps = fit
        waits[key] = waits.get(key, 0) + steps
    events = [RunEvent(f.step + 1, "fork", f.parent, f"{len(f.children)} workers")
              for f in record.forks]
    events += [RunEvent(step, "join", parent, f"{n} children")
               for step, parent, n in schedule.joins]
    for mark in schedule.tools:
        late = mark.resume_step - mark.call_step - 1
        events.append(RunEvent(mark.call_step, "tool", mark.path, f"called {mark.name}" + (
            f"; the result came {late} step{'s' * (late > 1)} later" if late else "")))
    for e in record.evictions:
        what = f"{e.num_tokens} tokens of task {list(e.list_owner)}'s subtasks"
        events.append(RunEvent(e.step + 1, "evict", e.stream,
                               ("deferred: " if e.deferred else "evicted ") + what))
    ends = {p.path: p.end for p in schedule.pieces}
    events += [RunEvent(ends[path], "error", path, stream.error)
               for path, stream in record.streams.items() if stream.error and path in ends]
    segments = _pack(schedule.pieces)
    events.sort(key=lambda e: (e.step, e.kind, e.path))
    return WorkerTimeline(
        tuple(segments), tuple(events), num_steps,
        num_lanes=1 + max((s.lane for s in segments), default=-1),
        exact=bool(recorded) and _concurrency(schedule.pieces, len(recorded)) == recorded,
    )


def _fit_wait(schedule, simulated: list[int], recorded: list[int]
              ) -> tuple[tuple[TaskPath, int], int] | None:
    """The tool wait to lengthen, and by how much, to explain the first surplus step."""
    first = next((i for i, (a, b) in enumerate(zip(simulated, recorded, strict=True))
                  if a != b), None)
    if first is None or simulated[first] < recorded[first]:
        return None
    step = first + 1
    mark = next((m for m in schedule.tools if m.resume_step == step), None)
    if mark is None:
        return None
    length = 1
    while (first + length < len(recorded)
           and simulated[first + length] > recorded[first + length]):
        length += 1
    return (mark.path, mark.n), length


def _pack(pieces: list[Piece]) -> list[Segment]:
    """Give each slot-holding stretch the lowest worker lane free at its start."""
    spans: dict[int, tuple[int, int]] = {}
    for p in pieces:
        lo, hi = spans.get(p.hold, (p.start, p.end))
        spans[p.hold] = (min(lo, p.start), max(hi, p.end))
    lane_free: list[int] = []  # first step each lane is free again
    lane_of: dict[int, int] = {}
    for hold, (lo, hi) in sorted(spans.items(), key=lambda kv: (kv[1][0], kv[0])):
        lane = next((i for i, free in enumerate(lane_free) if free <= lo), len(lane_free))
        if lane == len(lane_free):
            lane_free.append(0)
        lane_free[lane] = hi + 1
        lane_of[hold] = lane
    return sorted((Segment(p.path, p.start, p.end, lane_of[p.hold]) for p in pieces),
                  key=lambda s: (s.start, s.lane))


def _concurrency(pieces, num_steps: int) -> list[int]:
    """Streams running in each step 1..num_steps."""
    delta = [0] * (num_steps + 2)
    for p in pieces:
        delta[min(p.start, num_steps + 1)] += 1
        delta[min(p.end + 1, num_steps + 1)] -= 1
    out, running = [], 0
    for step in range(1, num_steps + 1):
        running += delta[step]
        out.append(running)
    return out
