"""Which worker ran when, read from the record: segments of steps per stream, and events.

Nothing is simulated. Each :class:`~tim.engine.record.StepRow` names the streams fed in
its step; a stream waiting for a tool keeps its worker from the call's step until its
result is fed (:class:`~tim.engine.record.ToolCallRecord`), so those steps join its
segment. A parent waiting for its children holds no worker: its stretches before the fork
and after the last join are separate segments.

Steps are 1-based, as in ``StepRow.step`` and ``ToolCallRecord``. ``ForkRecord.step``,
``JoinRecord.step`` and ``EvictionRecord.step`` count the steps finished before, so those
events happen in step ``record_step + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tim.engine.record import RunRecord
from tim.tree import TaskPath

__all__ = ["Segment", "TimelineEvent", "WorkerTimeline", "worker_timeline"]


@dataclass(frozen=True)
class Segment:
    """Steps ``start..end`` (inclusive) in which stream ``path`` held worker ``lane``."""

    path: TaskPath
    start: int
    end: int
    lane: int = 0


@dataclass(frozen=True)
class TimelineEvent:
    """Something that happened in ``step``: ``kind`` is fork, join, tool, evict or error."""

    step: int
    kind: str
    path: TaskPath
    detail: str = ""


@dataclass(frozen=True)
class WorkerTimeline:
    segments: tuple[Segment, ...]
    events: tuple[TimelineEvent, ...]
    num_steps: int
    num_lanes: int


def worker_timeline(record: RunRecord) -> WorkerTimeline:
    """The worker segments and events of a run, as its record holds them.

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
    >>> from tim.engine.record import RunRecord, StepRow, StreamRecord
    >>> rec = RunRecord("thread2", "none", "shift", [1], num_steps=3)
    >>> rec.streams[()] = StreamRecord((), token_ids=[5, 6, 7], forced=[False] * 3)
    >>> rec.timeline = [StepRow(s, (((), 1),), s + 1, s + 1, s) for s in (1, 2, 3)]
    >>> worker_timeline(rec).segments
    (Segment(path=(), start=1, end=3, lane=0),)
    """
    num_steps = max(record.num_steps, len(record.timeline))
    active: dict[TaskPath, set[int]] = {}
    for row in record.timeline:
        for path, _ in row.fed:
            active.setdefault(path, set()).add(row.step)
    for call in record.tool_calls:  # the stream keeps its worker while the tool runs
        resumed = num_steps + 1 if call.result_step is None else call.result_step
        active.setdefault(call.stream, set()).update(range(call.call_step, resumed))
    stretches = sorted(((path, lo, hi) for path, steps in active.items()
                        for lo, hi in _runs(sorted(steps))), key=lambda s: (s[1], s[0]))
    segments, lane_free = [], []  # lane_free[i]: first step lane i is free again
    for path, lo, hi in stretches:
        lane = next((i for i, free in enumerate(lane_free) if free <= lo), len(lane_free))
        if lane == len(lane_free):
            lane_free.append(0)
        lane_free[lane] = hi + 1
        segments.append(Segment(path, lo, hi, lane))
    return WorkerTimeline(tuple(segments), tuple(_events(record, active)), num_steps,
                          num_lanes=len(lane_free))


def _events(record: RunRecord, active: dict[TaskPath, set[int]]) -> list[TimelineEvent]:
    events = [TimelineEvent(f.step + 1, "fork", f.parent, f"{len(f.children)} workers")
              for f in record.forks]
    events += [TimelineEvent(j.step + 1, "join", j.parent,
                             f"{'dropped failed' if j.dropped else 'joined'} child "
                             f"{list(j.child)}") for j in record.joins]
    for call in record.tool_calls:
        if call.result_step is None:
            late = "; no result before the run ended"
        else:
            wait = call.result_step - call.call_step - 1
            late = f"; the result came {wait} step{'s' * (wait > 1)} later" if wait else ""
        events.append(TimelineEvent(call.call_step, "tool", call.stream,
                                    f"called {call.name}{late}"))
    for e in record.evictions:
        what = f"{e.num_tokens} tokens of task {list(e.list_owner)}'s subtasks"
        events.append(TimelineEvent(e.step + 1, "evict", e.stream,
                                    ("deferred: " if e.deferred else "evicted ") + what))
    events += [TimelineEvent(max(active[path]), "error", path, stream.error)
               for path, stream in record.streams.items() if stream.error and path in active]
    return sorted(events, key=lambda e: (e.step, e.kind, e.path))


def _runs(steps: list[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive steps: ``[1, 2, 3, 7, 8] -> [(1, 3), (7, 8)]``."""
    runs: list[tuple[int, int]] = []
    for step in steps:
        if runs and runs[-1][1] == step - 1:
            runs[-1] = (runs[-1][0], step)
        else:
            runs.append((step, step))
    return runs
