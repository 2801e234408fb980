"""A replay of the engine's scheduler over a run record: which stream ran in which steps.

Pure functions; :mod:`tim.viz.timeline` fits the unknowns (how long tool calls kept their
streams waiting) and draws nothing itself. The rules, step by step (1-based steps):

- a stream samples one token per step. Forced text is fed with the token before it and
  takes no step of its own. Forced text means headers, tool results and join text;
- a child starts in the step after its parent's fork (``ForkRecord.step + 2``), or in the
  step after a worker slot frees up (at most ``max_concurrency`` streams hold one);
- a stream that forks stops at its fork step (``ForkRecord.step + 1``);
- a child that finishes feeds its last token in one more step (the flush). A failed
  stream and the root stream have no flush;
- the parent resumes in the step after its last child's flush;
- after a tool call, the stream waits ``waits[(path, n)]`` steps (0 by default) before
  its result is fed. It keeps its worker slot meanwhile.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from tim.engine.record import RunRecord, StreamRecord
from tim.tree import EventKind, TaskPath, get_format

__all__ = ["StreamPlan", "Piece", "ToolMark", "Schedule", "stream_plans", "simulate"]


@dataclass(frozen=True)
class StreamPlan:
    """What a stream sampled: how many tokens, and after which one each tool was called."""

    num_sampled: int
    tool_after: tuple[int, ...] = ()  # 0-based index among sampled tokens, one per tool call
    tool_names: tuple[str, ...] = ()
    failed: bool = False


@dataclass(frozen=True)
class Piece:
    """Steps ``start..end`` in which ``path`` ran; pieces with one ``hold`` share a slot."""

    path: TaskPath
    start: int
    end: int
    hold: int


@dataclass(frozen=True)
class ToolMark:
    """Tool call ``n`` of ``path``: made in ``call_step``, its result fed in ``resume_step``."""

    path: TaskPath
    n: int
    name: str
    call_step: int
    resume_step: int


@dataclass
class Schedule:
    pieces: list[Piece] = field(default_factory=list)
    joins: list[tuple[int, TaskPath, int]] = field(default_factory=list)  # (step, parent, children)
    tools: list[ToolMark] = field(default_factory=list)


def stream_plans(record: RunRecord) -> dict[TaskPath, StreamPlan]:
    """One :class:`StreamPlan` per stream, from its tokens and (for tool calls) its text."""
    fmt = get_format(record.format)
    plans = {}
    for path, stream in record.streams.items():
        parser = fmt.parser(path) if fmt.forks else fmt.parser()
        names = [e.tool_name for e in parser.feed(stream.text)
                 if e.kind is EventKind.TOOLUSE_READY]
        runs = [before for index, before in _forced_runs(stream) if index > 0]  # not a header
        after = tuple(before - 1 for before in runs[: len(names)])
        plans[path] = StreamPlan(sum(1 for f in stream.forced if not f), after,
                                 tuple(names[: len(after)]), failed=stream.error is not None)
    return plans


def simulate(record: RunRecord, plans: Mapping[TaskPath, StreamPlan],
             waits: Mapping[tuple[TaskPath, int], int], num_steps: int) -> Schedule:
    """Replay the scheduler with the given tool waits; pieces never pass ``num_steps``."""
    out, holds = Schedule(), itertools.count()
    if () not in plans:
        return out
    if not get_format(record.format).forks:
        _phase(out, (), 1, plans[()], waits, next(holds), num_steps, count=plans[()].num_sampled)
        return out
    forks = {f.parent: f for f in record.forks}
    limit = max(record.max_concurrency, 1)
    heap: list[tuple[int, int, TaskPath]] = []  # (end step, 0 finishes / 1 forks / 2 cut, path)
    waiting: list[TaskPath] = []
    joined: dict[TaskPath, int] = {}
    resume: dict[TaskPath, int] = {}  # tokens a parent samples after its join
    active = 0

    def start(path: TaskPath, step: int) -> None:
        nonlocal active
        active += 1
        plan, fork = plans[path], forks.get(path)
        if fork is not None and fork.step + 1 >= step:
            end, waited, cut = _phase(out, path, step, plan, waits, next(holds), num_steps,
                                      anchor=fork.step + 1)
            resume[path] = max(plan.num_sampled - (end - step - waited), 0)
            kind = 1
        else:
            flush = 0 if plan.failed or not path else 1
            end, _, cut = _phase(out, path, step, plan, waits, next(holds), num_steps,
                                 count=plan.num_sampled, flush=flush)
            kind = 0
        heapq.heappush(heap, (end, 2 if cut else kind, path))

    def fill(step: int) -> None:
        while waiting and active < limit and step <= num_steps:
            start(waiting.pop(0), step)

    start((), 1)
    while heap:
        end, kind, path = heapq.heappop(heap)
        active -= 1
        if kind == 1:
            waiting.extend(c for c in forks[path].children if c in plans)
        elif kind == 0 and path:
            parent = path[:-1]
            joined[parent] = joined.get(parent, 0) + 1
            fork = forks.get(parent)
            if fork is not None and joined[parent] == sum(c in plans for c in fork.children):
                out.joins.append((end, parent, len(fork.children)))
                if resume.get(parent) and end + 1 <= num_steps:
                    active += 1
                    after = StreamPlan(resume[parent])  # a conclusion: no tools, no fork
                    new_end, _, cut = _phase(out, parent, end + 1, after, waits, next(holds),
                                             num_steps, count=resume[parent],
                                             flush=1 if parent else 0)
                    heapq.heappush(heap, (new_end, 2 if cut else 0, parent))
        fill(end + 1)
    return out


def _phase(out: Schedule, path: TaskPath, start: int, plan: StreamPlan, waits: Mapping,
           hold: int, num_steps: int, *, anchor: int | None = None, count: int = 0,
           flush: int = 0) -> tuple[int, int, bool]:
    """Schedule one stretch of a stream from ``start``; returns (end, steps waited, cut).

    ``anchor`` fixes the end (a fork recorded in the record); otherwise the stretch samples
    ``count`` tokens, waits for its tools, and flushes ``flush`` steps.
    """
    gaps, waited = [], 0
    for n, after in enumerate(plan.tool_after):
        call = start + after + waited
        if anchor is not None and call >= anchor:
            break
        wait = waits.get((path, n), 0)
        out.tools.append(ToolMark(path, n, plan.tool_names[n], call, call + 1 + wait))
        if wait:
            gaps.append((call + 1, call + wait))
        waited += wait
    end = anchor if anchor is not None else start + count - 1 + waited + flush
    end = max(end, start)
    cut = end > num_steps
    end = min(end, num_steps)
    first = start
    for gap_start, gap_end in gaps:
        if gap_start > end:
            break
        if gap_start > first:
            out.pieces.append(Piece(path, first, gap_start - 1, hold))
        first = gap_end + 1
    if first <= end:
        out.pieces.append(Piece(path, first, end, hold))
    return end, waited, cut


def _forced_runs(stream: StreamRecord) -> list[tuple[int, int]]:
    """(token index, sampled tokens before it) of each run of forced tokens."""
    runs, num_sampled = [], 0
    for i, forced in enumerate(stream.forced):
        if forced and (i == 0 or not stream.forced[i - 1]):
            runs.append((i, num_sampled))
        num_sampled += not forced
    return runs
