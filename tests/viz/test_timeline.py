"""worker_timeline: segments rebuilt from the record agree with what the record measured."""

from __future__ import annotations

from tests.viz.conftest import queued_record
from tim.engine.record import ForkRecord, RunRecord, StreamRecord
from tim.tree import get_format
from tim.viz import load_run, worker_timeline
from tim.viz.timeline import Segment, _concurrency


def test_parallel_run_rebuilds_the_recorded_concurrency(parallel_path):
    view = load_run(parallel_path)
    record = view.record
    tl = worker_timeline(record)
    assert tl.exact and tl.num_lanes == 2 and tl.num_steps == record.num_steps
    assert _concurrency(list(tl.segments), tl.num_steps) == [row[3] for row in record.timeline]
    starts = {}
    for seg in tl.segments:
        starts.setdefault(seg.path, seg.start)
    for fork in record.forks:  # children start in the step after their parent's fork
        assert all(starts[c] == fork.step + 2 for c in fork.children)
    root = [s for s in tl.segments if s.path == ()]
    assert root[0].start == 1 and root[-1].end == record.num_steps
    kinds = {(e.kind, e.path) for e in tl.events}
    assert {("fork", ()), ("fork", (0,)), ("join", (0,)), ("join", ()),
            ("tool", (0, 1)), ("evict", (0,))} <= kinds
    tool = next(e for e in tl.events if e.kind == "tool")
    child = next(s for s in tl.segments if s.path == (0, 1))
    assert child.start < tool.step < child.end and tool.detail == "called calc"


def test_thread2_run_is_one_stream(thread2_path):
    view = load_run(thread2_path)
    tl = worker_timeline(view.record)
    assert tl.segments == (Segment((), 1, view.record.num_steps, 0),) and tl.exact
    assert [e.kind for e in tl.events].count("tool") == 1
    assert [e.kind for e in tl.events].count("evict") == len(view.record.evictions)


def test_unfinished_run_is_cut_at_its_last_step(unfinished_path):
    view = load_run(unfinished_path)
    tl = worker_timeline(view.record)
    assert max(s.end for s in tl.segments) == view.record.num_steps
    assert not [e for e in tl.events if e.kind == "join"]  # (0,)'s children never finished
    assert tl.exact


def test_queued_children_wait_for_a_worker():
    tl = worker_timeline(queued_record())
    assert [(s.path, s.start, s.end, s.lane) for s in tl.segments] == [
        ((), 1, 4, 0), ((0,), 5, 8, 0), ((1,), 9, 12, 0), ((), 13, 14, 0)]
    assert tl.exact and tl.num_lanes == 1
    assert [(e.kind, e.step) for e in tl.events] == [("fork", 4), ("join", 12)]


def test_children_that_never_started_have_no_bar():
    record = queued_record()
    record.num_steps, record.timeline = 6, record.timeline[:6]
    record.streams[(1,)].token_ids, record.streams[(1,)].forced = [], []
    tl = worker_timeline(record)
    assert [(s.path, s.start, s.end) for s in tl.segments] == [((), 1, 4), ((0,), 5, 6)]
    assert tl.exact


def test_wrong_reconstruction_is_reported_as_not_exact():
    record = queued_record()
    record.timeline[5] = (6, 6, 6, 2)  # the record says two streams ran in step 6
    assert not worker_timeline(record).exact


def _slow_tool_record() -> RunRecord:
    """Child 0 calls a tool after its 2nd sampled token; the result comes 2 steps late."""
    rec = RunRecord("parallel", "none", "shift", [1], max_concurrency=2, num_steps=13)
    header = get_format("parallel").child_header
    rec.streams[()] = StreamRecord((), token_ids=[0] * 7,
                                   forced=[False] * 3 + [True] * 2 + [False] * 2)
    rec.streams[(0,)] = StreamRecord(
        (0,), token_ids=[0] * 8, forced=[True, True, False, False, True, True, False, False],
        text=header("a") + 't", "tooluse": {"tool_name": "calc", "parameters": {"a": 1}')
    rec.streams[(1,)] = StreamRecord((1,), token_ids=[0] * 5, forced=[True] * 2 + [False] * 3,
                                     text=header("b"))
    rec.forks = [ForkRecord(3, (), ((0,), (1,)))]
    running = [1] * 4 + [2, 2, 1, 1, 1, 1, 1, 1, 1]
    rec.timeline = [(s, s, s, n) for s, n in enumerate(running, start=1)]
    return rec


def test_slow_tool_is_fitted_to_the_recorded_concurrency():
    tl = worker_timeline(_slow_tool_record())
    assert tl.exact
    assert [(s.path, s.start, s.end) for s in tl.segments if s.path == (0,)] == [
        ((0,), 5, 6), ((0,), 9, 11)]
    lanes = {s.lane for s in tl.segments if s.path == (0,)}
    assert len(lanes) == 1  # the stream keeps its worker while it waits
    tool = next(e for e in tl.events if e.kind == "tool")
    assert (tool.step, tool.path) == (6, (0,)) and "2 steps later" in tool.detail
    assert ("join", 11) in [(e.kind, e.step) for e in tl.events]
