"""worker_timeline: segments and events read from the record, nothing simulated."""

from __future__ import annotations

from tests.viz.conftest import queued_record
from tim.engine.record import ToolCallRecord
from tim.viz import load_run, worker_timeline
from tim.viz.timeline import Segment


def covered(tl) -> set[tuple]:
    return {(s.path, step) for s in tl.segments for step in range(s.start, s.end + 1)}


def test_every_fed_stream_is_on_a_bar_and_no_lane_runs_two_streams(parallel_path):
    record = load_run(parallel_path).record
    tl = worker_timeline(record)
    assert tl.num_steps == record.num_steps and tl.num_lanes == record.max_concurrency == 2
    fed = {(path, row.step) for row in record.timeline for path, _ in row.fed}
    assert fed <= covered(tl)
    waiting = covered(tl) - fed  # bar steps without a feed: exactly the tool waits
    calls = {(c.stream, s) for c in record.tool_calls for s in range(c.call_step, c.result_step)}
    assert waiting <= calls
    for lane in range(tl.num_lanes):
        steps = [(s.start, s.end) for s in tl.segments if s.lane == lane]
        assert all(a[1] < b[0] for a, b in zip(steps, steps[1:], strict=False))
    for fork in record.forks:  # children start in the step after their parent's fork
        starts = {s.path: s.start for s in reversed(tl.segments)}
        assert all(starts[c] == fork.step + 2 for c in fork.children if c in starts)
    kinds = {(e.kind, e.path) for e in tl.events}
    assert {("fork", ()), ("fork", (0,)), ("join", (0,)), ("join", ()),
            ("tool", (0, 1)), ("evict", (0,))} <= kinds
    tool = next(e for e in tl.events if e.kind == "tool")
    child = next(s for s in tl.segments if s.path == (0, 1))
    assert child.start < tool.step < child.end and tool.detail.startswith("called calc")


def test_thread2_run_is_one_stream(thread2_path):
    view = load_run(thread2_path)
    tl = worker_timeline(view.record)
    assert tl.segments == (Segment((), 1, view.record.num_steps, 0),)
    assert [e.kind for e in tl.events].count("tool") == 1
    assert [e.kind for e in tl.events].count("evict") == len(view.record.evictions)


def test_unfinished_run_is_cut_at_its_last_step(unfinished_path):
    view = load_run(unfinished_path)
    tl = worker_timeline(view.record)
    assert max(s.end for s in tl.segments) == view.record.num_steps
    assert not [e for e in tl.events if e.kind == "join" and e.path == (0,)]


def test_queued_children_wait_for_a_worker():
    tl = worker_timeline(queued_record())
    assert [(s.path, s.start, s.end, s.lane) for s in tl.segments] == [
        ((), 1, 4, 0), ((0,), 5, 8, 0), ((1,), 9, 12, 0), ((), 13, 14, 0)]
    assert tl.num_lanes == 1
    assert [(e.kind, e.step) for e in tl.events] == [("fork", 4), ("join", 8), ("join", 12)]


def test_a_stream_keeps_its_worker_while_its_tool_runs():
    record = queued_record()  # child 0 is fed in steps 5-8; say a tool kept it from 6 to 8
    record.timeline[6] = record.timeline[6].__class__(7, (), 7, 7, 7)
    record.tool_calls = [ToolCallRecord((0,), "calc", call_step=6, result_step=8)]
    tl = worker_timeline(record)
    assert [(s.path, s.start, s.end) for s in tl.segments if s.path == (0,)] == [((0,), 5, 8)]
    tool = next(e for e in tl.events if e.kind == "tool")
    assert (tool.step, tool.path, tool.detail) == (6, (0,), "called calc; the result came "
                                                            "1 step later")
