"""Shared inputs of the viz tests: real runs (tests/viz/data), hostile text, big trees.

The run files in ``data/`` were written by the real engine (``python tests/viz/realruns.py
fixtures``): a tiny random Qwen3 replaying ``realruns.small_tree()``.
"""

from __future__ import annotations

import shutil
from pathlib import Path as FilePath

import pytest

from tests.viz.browser import find_chromium
from tim.engine.record import RunRecord, StreamRecord
from tim.tree import Task, TaskStatus, TaskTree, ToolUse

DATA = FilePath(__file__).resolve().parent / "data"

# A test that needs a system program skips, with the install hint, when it is missing.
DOT_MISSING = "Graphviz `dot` is not installed (apt-get install graphviz)"
CHROMIUM_MISSING = ("Chromium or its driver is not installed "
                    "(apt-get install chromium chromium-driver)")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason=DOT_MISSING)
needs_chromium = pytest.mark.skipif(None in find_chromium(), reason=CHROMIUM_MISSING)

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror="window.__pwned=1">',
    "</style><script>window.__pwned=2</script>",
    "</script><script>window.__pwned=3</script>",
    "line\u2028sep\u2029para",
    "<!-- <script> -->",
    "[bold red]rich markup[/] \\l \\N {x} &amp; &lt;b&gt;",
    "<svg onload=window.__pwned=4>",
]


def hostile(i: int) -> str:
    return f"#{i} " + HOSTILE[i % len(HOSTILE)]


@pytest.fixture
def hostile_tree() -> TaskTree:
    """Hostile text in every field a picture shows."""
    k = iter(range(100))
    tool = ToolUse(hostile(next(k)), {hostile(next(k)): hostile(next(k))}, hostile(next(k)))
    leaf = Task(hostile(next(k)), hostile(next(k)), title=hostile(next(k)), tooluse=tool,
                status=TaskStatus.ERROR, error=hostile(next(k)), num_tokens=5, pruned=True,
                node_id="0/0")
    mid = Task(hostile(next(k)), hostile(next(k)), title=hostile(next(k)), subtasks=[leaf],
               node_id="0")
    plain = Task(hostile(next(k)), hostile(next(k)), node_id="1")  # no title: thought shows
    return TaskTree([mid, plain], answer=hostile(next(k)))


def big_tree(num_top: int = 50, num_mid: int = 10, num_leaf: int = 9) -> TaskTree:
    """50 + 500 + 4500 = 5,050 tasks by default, every third leaf with a tool call."""
    top = []
    for i in range(num_top):
        mids = []
        for j in range(num_mid):
            leaves = [Task(f"leaf thought {i}.{j}.{m} " + "words " * 12, f"result {i}.{j}.{m}",
                           title=f"leaf {i}.{j}.{m}",
                           tooluse=ToolUse("calc", {"x": m}, 2 * m) if m % 3 == 0 else None)
                      for m in range(num_leaf)]
            mids.append(Task(f"mid thought {i}.{j}", f"mid {i}.{j}", title=f"mid {i}.{j}",
                             subtasks=leaves))
        top.append(Task(f"top thought {i}", f"top {i}", title=f"top {i}", subtasks=mids))
    return TaskTree(top, answer="all done")


def queued_record() -> RunRecord:
    """A hand-made parallel record with one worker: children wait their turn.

    root samples 3 tokens (steps 1-3) and forks in step 4; child 0 runs 5-8 (3 sampled +
    flush), child 1 runs 9-12, the join is in step 12 and the root writes 2 more tokens in
    steps 13-14.
    """
    rec = RunRecord("parallel", "none", "shift", [1, 2], max_concurrency=1, num_steps=14)
    rec.streams[()] = StreamRecord((), token_ids=[0] * 7, forced=[False] * 3 + [True] * 2 +
                                   [False] * 2)
    for i in range(2):
        rec.streams[(i,)] = StreamRecord((i,), token_ids=[0] * 5, forced=[True] * 2 + [False] * 3)
    from tim.engine.record import ForkRecord, JoinRecord, StepRow

    rec.forks = [ForkRecord(3, (), ((0,), (1,)))]
    rec.joins = [JoinRecord(7, (), (0,), 3, 1), JoinRecord(11, (), (1,), 3, 2)]
    fed = [()] * 4 + [(0,)] * 4 + [(1,)] * 4 + [()] * 2
    rec.timeline = [StepRow(s, ((path, 1),), s, s, s) for s, path in enumerate(fed, start=1)]
    return rec


@pytest.fixture(scope="session")
def parallel_path() -> FilePath:
    return DATA / "run_parallel.json"


@pytest.fixture(scope="session")
def thread2_path() -> FilePath:
    return DATA / "run_thread2.json"


@pytest.fixture(scope="session")
def unfinished_path() -> FilePath:
    return DATA / "run_unfinished.json"
