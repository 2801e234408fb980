"""Shared sibling visibility (issue 15) against its composed reference.

Every sampled token's log-probability must equal an HF eager forward over the cache the rule
says the worker saw at that step, rebuilt from the record alone
(``tests/engine/reference_shared.py``); the pool is checked after every step (conftest).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine.reference import ReferenceMismatch, max_reference_error
from tests.engine.test_oracles import TOL, check_reference, load, run_tree, tree_strategy
from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.engine.record_io import record_from_json
from tim.errors import TimError
from tim.stress import StressShape, stress
from tim.tree import Task, TaskTree, get_format


@pytest.fixture(scope="module")
def qwen3():
    return load("qwen3")


def fan(n: int, *, nested: bool) -> TaskTree:
    """``n`` siblings of different lengths; with ``nested``, every other one has a subtask
    list of two (pruned under ``buffer:k`` while its siblings still see it)."""
    tasks = []
    for i in range(n):
        subtasks = ([Task(f"part {i}a", "x", title=f"p{i}a"),
                     Task(f"part {i}b with more", "yz", title=f"p{i}b")]
                    if nested and i % 2 == 0 else None)
        tasks.append(Task("think " * (1 + i % 3), str(i), title=f"t{i}", subtasks=subtasks))
    return TaskTree(tasks, answer="done")


def shared(lm, tree, **kw):
    record = run_tree(lm, tree, fmt="parallel", siblings="shared", **kw)
    assert record.siblings == "shared"
    return record


# ---------------------------------------------------------------------- exact
@pytest.mark.parametrize("n, pruning, positions", [
    (2, "none", "shift"), (2, "buffer:0", "shift"), (4, "none", "shift"),
    (4, "buffer:0", "keep"), pytest.param(8, "buffer:0", "shift", marks=pytest.mark.slow),
    pytest.param(8, "none", "keep", marks=pytest.mark.slow)])
def test_shared_siblings_match_the_reference(qwen3, n, pruning, positions):
    record = shared(qwen3, fan(n, nested=True), pruning=pruning, positions=positions)
    assert record.max_concurrency >= n
    widest = {}
    for sight in record.sights:
        widest[sight.stream] = max(widest.get(sight.stream, 0), len(sight.seen))
    assert {p: w for p, w in widest.items() if len(p) == 1} == {(i,): n - 1 for i in range(n)}
    if pruning != "none":
        assert record.num_evicted > 0
    check_reference(qwen3, record)


@pytest.mark.parametrize("arch, overrides", [
    ("llama", {}),
    ("cohere", {}),  # held out while building: interleaved RoPE pairs
    ("phi3", {"partial_rotary_factor": 0.5}),  # RoPE on half of each head's channels
])
def test_architectures(arch, overrides):
    lm = load(arch, **overrides)
    check_reference(lm, shared(lm, fan(4, nested=True), pruning="buffer:1"))


def test_siblings_see_each_other_from_the_next_step(qwen3):
    """A sibling's count grows by what it fed the step before (a token written in step t is
    seen from t + 1), and the siblings really change each other's tokens' log-probs."""
    record = shared(qwen3, fan(3, nested=False))
    fed = {(row.step, path): n for row in record.timeline for path, n in row.fed}
    by_stream = {}
    for sight in record.sights:
        by_stream.setdefault(sight.stream, []).append(sight)
    checked = 0
    for sights in by_stream.values():
        for before, after in zip(sights, sights[1:], strict=False):
            if after.step == before.step + 1:
                for p, n in after.seen:
                    assert n - dict(before.seen).get(p, 0) == fed.get((before.step, p), 0)
                    checked += 1
    assert checked > 20
    isolated = run_tree(qwen3, fan(3, nested=False), fmt="parallel")
    same = [(s.logprobs, isolated.streams[p].logprobs) for p, s in record.streams.items()]
    assert any(a != b for a, b in same)  # what siblings see matters
    assert record.streams[()].logprobs[:20] == isolated.streams[()].logprobs[:20]


def test_fewer_workers_than_siblings(qwen3):
    """Late siblings start on a parent that already holds joined ones: they see those in
    their prefix, and the rest as they run."""
    record = shared(qwen3, fan(4, nested=True), pruning="buffer:1", max_workers=2)
    assert record.max_concurrency <= 2
    check_reference(qwen3, record)


def test_tools_in_shared_mode(qwen3):
    shape = StressShape(num_tasks=3, depth=2, fanout=2, thought_tokens=5, conclusion_tokens=3,
                        answer_tokens=2, tool_calls="leaves", tool_result_chars=10)
    report = stress(qwen3[0], shape=shape, format="parallel", positions="shift",
                    pruning="buffer:0", max_workers=8, window=1024, kv_budget_tokens=4096,
                    siblings="shared")
    record = report.record
    assert report.failure is None and record.error is None
    assert record.tool_calls and record.num_evicted > 0 and record.sights
    check_reference(qwen3, record)


@pytest.mark.slow
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=tree_strategy(), pruning=st.sampled_from(["none", "buffer:0", "buffer:1"]),
       positions=st.sampled_from(["shift", "keep"]), max_workers=st.sampled_from([1, 2, 8]))
def test_random_trees_match_the_reference(qwen3, tree, pruning, positions, max_workers):
    record = shared(qwen3, tree, pruning=pruning, positions=positions, max_workers=max_workers)
    assert get_format("parallel").parse_streams({p: s.text for p, s in record.streams.items()}) \
        == tree
    check_reference(qwen3, record)


# ---------------------------------------------------------------------- the reference can fail
def test_the_reference_notices_a_wrong_record(qwen3):
    record = shared(qwen3, fan(3, nested=True), pruning="buffer:1")
    error, _ = max_reference_error(qwen3[1], replace(record, siblings="isolated"))
    assert error > 100 * TOL  # the isolated rule does not explain a shared run
    fewer = [replace(s, seen=s.seen[:-1]) if s is record.sights[5] else s for s in record.sights]
    with pytest.raises(ReferenceMismatch, match="saw"):
        max_reference_error(qwen3[1], replace(record, sights=fewer))
    late = [replace(r, seq=r.seq + 1) if r.seq else r for r in record.timeline]
    with pytest.raises(ReferenceMismatch):
        max_reference_error(qwen3[1], replace(record, timeline=late))


def test_the_record_round_trips(qwen3):
    record = shared(qwen3, fan(2, nested=False))
    back = record_from_json(record.to_json())
    assert back.siblings == "shared" and back.sights == record.sights
    assert back.timeline == record.timeline
    old = record.to_json()
    del old["siblings"], old["sights"]
    assert record_from_json(old).siblings == "isolated"


# ---------------------------------------------------------------------- bad configurations
@pytest.mark.parametrize("kwargs, message", [
    ({"siblings": "all"}, "'isolated' or 'shared'"),
    ({"siblings": "shared", "format": "thread2"}, "format='parallel'"),
    ({"siblings": "shared", "positions": "reencode"}, "'shift' or 'keep'"),
])
def test_bad_configurations_say_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EngineConfig(**kwargs)


def test_windowed_models_are_refused():
    loaded, _ = load("mistral", sliding_window=16)
    engine = Engine(loaded.model, loaded.tokenizer, EngineConfig(siblings="shared"))
    with pytest.raises(TimError, match="sliding-window"):
        engine.run(loaded.tokenizer.encode("hi", add_special_tokens=False))
