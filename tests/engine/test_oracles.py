"""Oracles O1-O4 and O6 (DESIGN.md section 4) on tiny random Llama, Qwen2 and Qwen3 models.

A real tree shape is teacher-forced through random weights (TextReplay), and every sampled
token's log-probability is compared with a plain Hugging Face forward over what that
stream's view held at the time.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine.conftest import CapturingReplay, eager_copy, max_oracle_error
from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.models import tiny_model
from tim.tree import Task, TaskTree, get_format

TOL = 1e-4

TREE = TaskTree(
    [
        Task("split A", "A is 3", title="A", subtasks=[
            Task("first half", "1", title="a1"),
            Task("second half", "2", title="a2", subtasks=[Task("deep", "d", title="a2x")]),
        ]),
        Task("then B", "B is 4", title="B", subtasks=[Task("only", "4", title="b1")]),
        Task("sum", "7", title="C"),
    ],
    answer="7",
)


@pytest.fixture(scope="module", params=["llama", "qwen2", "qwen3"])
def lm(request):
    loaded = tiny_model(request.param, max_position_embeddings=1024)
    return loaded, eager_copy(loaded.model)


def run_tree(lm, tree, *, fmt, pruning="none", positions="shift", max_workers=8):
    loaded, _ = lm
    rendered = get_format(fmt).render(tree)
    texts = {(): rendered} if isinstance(rendered, str) else rendered
    chooser = CapturingReplay(texts, loaded.tokenizer)
    engine = Engine(loaded.model, loaded.tokenizer, EngineConfig(
        format=fmt, pruning=pruning, positions=positions, max_workers=max_workers,
        max_new_tokens=10_000, kv_budget_tokens=8192, cascade_min_prefix=8,
    ))
    prompt = loaded.tokenizer.encode("Solve: 3 + 4.", add_special_tokens=False)
    record = engine.run(prompt, chooser=chooser)
    assert record.error is None, record.error
    return record, chooser.snapshots


def test_o1_flat_equivalence(lm):
    record, snaps = run_tree(lm, TREE, fmt="thread2")
    assert record.num_evicted == 0 and len(snaps) == record.num_generated
    assert max_oracle_error(lm[1], snaps, contiguous=True) <= TOL


def test_o2_branch_equivalence(lm):
    record, snaps = run_tree(lm, TREE, fmt="parallel")
    assert record.max_concurrency >= 2, "siblings must have decoded concurrently"
    checked = before_joins(record, snaps)
    assert any(s.path for s in checked)
    # a view before its first join = ancestors' views at their forks + its own tokens
    assert max_oracle_error(lm[1], checked, contiguous=False) <= TOL


def before_joins(record, snaps):
    """Snapshots taken before their stream's first join (a join lays concurrently decoded
    siblings end to end, which no single HF forward reproduces)."""
    fork_len = {}
    for path, stream in record.streams.items():
        if path:
            parent = path[:-1]
            fork_len[parent] = min(fork_len.get(parent, 10**9), stream.parent_tokens)
    return [s for s in snaps if len(s.view_ids) <= fork_len.get(s.path, 10**9)]


def test_o3_reencode_equivalence(lm):
    record, snaps = run_tree(lm, TREE, fmt="thread2", pruning="buffer:0", positions="reencode")
    assert record.num_evicted > 0 and record.num_reencoded > 0
    for snap in snaps:
        assert snap.view_positions == list(range(len(snap.view_ids)))
    assert max_oracle_error(lm[1], snaps, contiguous=True) <= TOL


@pytest.fixture(scope="module")
def qwen3():
    loaded = tiny_model("qwen3", max_position_embeddings=1024)
    return loaded, eager_copy(loaded.model)


@pytest.mark.parametrize("fmt", ["thread2", "parallel"])
def test_o4_shift_bounds_positions(qwen3, fmt):
    lm = qwen3
    record, snaps = run_tree(lm, TREE, fmt=fmt, pruning="buffer:0", positions="shift")
    assert record.num_evicted > 0
    for snap in snaps:  # after shifts a view's positions are exactly 0..n-1
        assert snap.view_positions == list(range(len(snap.view_ids)))
    unpruned, _ = run_tree(lm, TREE, fmt=fmt)
    assert record.max_position < unpruned.max_position
    assert record.peak_live_tokens < unpruned.peak_live_tokens


@pytest.mark.parametrize("max_workers", [1, 2])
def test_limited_workers_give_the_same_tree_text(qwen3, max_workers):
    record, _ = run_tree(qwen3, TREE, fmt="parallel", max_workers=max_workers)
    assert record.max_concurrency <= max_workers
    assert get_format("parallel").parse({p: s.text for p, s in record.streams.items()}) == TREE


def tree_strategy():
    text = st.text(alphabet="abcxyz 019.,", min_size=1, max_size=8)

    def task(depth):
        subtasks = st.none() if depth == 0 else st.one_of(
            st.none(), st.lists(task(depth - 1), min_size=1, max_size=2))
        return st.builds(lambda th, co, ti, sub: Task(th, co, title=ti, subtasks=sub),
                         text, text, text, subtasks)

    return st.builds(lambda r, a: TaskTree(r, a), st.lists(task(2), min_size=1, max_size=2), text)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=tree_strategy(), fmt=st.sampled_from(["thread2", "parallel"]),
       pruning=st.sampled_from(["none", "buffer:0", "buffer:1"]),
       positions=st.sampled_from(["shift", "reencode", "keep"]))
def test_random_trees_keep_every_invariant(tree, fmt, pruning, positions):
    loaded = tiny_model("qwen3", max_position_embeddings=1024)
    record, snaps = run_tree((loaded, None), tree, fmt=fmt, pruning=pruning, positions=positions)
    # the streams' text parses back to the tree that was replayed (O6: run() checked the pool)
    fmt_obj = get_format(fmt)
    texts = {p: s.text for p, s in record.streams.items()}
    assert fmt_obj.parse(texts if fmt == "parallel" else texts[()]) == tree
    if pruning == "none":
        ref = eager_copy(loaded.model)
        checked = before_joins(record, snaps)
        assert max_oracle_error(ref, checked, contiguous=fmt == "thread2") <= TOL
    if positions != "keep":
        assert all(s.view_positions == list(range(len(s.view_ids))) for s in snaps)


def test_sliding_window_model_matches_hf(qwen3):
    loaded = tiny_model("mistral", max_position_embeddings=1024, sliding_window=16)
    lm = (loaded, eager_copy(loaded.model))
    record, snaps = run_tree(lm, TREE, fmt="thread2")
    assert max(len(s.view_ids) for s in snaps) > 16  # the window really cuts
    assert max_oracle_error(lm[1], snaps, contiguous=True) <= TOL
