"""tim.engine.run: a step's scans cover the open streams only, however many have finished."""

from __future__ import annotations

from tim.engine.run import Run
from tim.stress import StressShape, stress
from tim.stress.model import stress_model


def test_joined_streams_leave_the_per_step_scans(monkeypatch):
    seen = []  # (streams started so far, streams still scanned) after every step
    note_step = Run._note_step

    def spy(run, fed):
        note_step(run, fed)
        joined = [path for path in run.streams
                  if path and path[-1] < run.streams[path[:-1]].num_joined]
        assert not joined, f"joined streams {joined} are still scanned"
        seen.append((len(run.record.streams), len(run.streams)))

    monkeypatch.setattr(Run, "_note_step", spy)
    shape = StressShape(num_tasks=3, depth=3, fanout=3, tool_calls="none")
    report = stress(stress_model(num_layers=1), shape=shape, format="parallel", max_workers=4,
                    kv_budget_tokens=4096)
    assert report.ok, report.failure
    started, scanned = seen[-1]
    assert started == shape.num_task_nodes + 1  # one stream per task, plus the root
    assert scanned == 1  # at the end only the root is left
