"""Oracles O1-O4 and O6 (DESIGN.md section 4) on tiny random models.

A real tree shape is teacher-forced through random weights (TextReplay). Every sampled
token's log-probability is compared with a Hugging Face reference rebuilt from the run's
record alone (``tests/engine/reference.py``): nothing the reference uses comes from the
engine's views. O1 also has a plainer reference, one HF forward over the whole sequence.
The page pool's integrity is checked after every step of every run (tests/engine/conftest.py).
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine.conftest import eager_copy, hf_logprobs
from tests.engine.reference import ReferenceMismatch, max_reference_error
from tim.engine.choosers import TextReplay
from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.models import tiny_model
from tim.models.spec import inspect_model
from tim.stress import StressShape, stress
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


def load(arch: str, **overrides):
    # the engine stops at the model's window: 4096 holds the widest tree here (8 shared
    # siblings, nested, unpruned: about 1,100 positions)
    loaded = tiny_model(arch, max_position_embeddings=4096, **overrides)
    return loaded, eager_copy(loaded.model)


@pytest.fixture(scope="module")
def qwen3():
    return load("qwen3")


def run_tree(lm, tree, *, fmt, pruning="none", positions="shift", max_workers=8, page_size=1,
             siblings="isolated"):
    """Teacher-force ``tree`` through the engine (conftest checks the pool every step)."""
    loaded, _ = lm
    rendered = get_format(fmt).render(tree)
    texts = {(): rendered} if isinstance(rendered, str) else rendered
    engine = Engine(loaded.model, loaded.tokenizer, EngineConfig(
        format=fmt, pruning=pruning, positions=positions, max_workers=max_workers,
        max_new_tokens=10_000, kv_budget_tokens=8192, cascade_min_saved=8, page_size=page_size,
        siblings=siblings,
    ))
    prompt = loaded.tokenizer.encode("Solve: 3 + 4.", add_special_tokens=False)
    record = engine.run(prompt, chooser=TextReplay(texts, loaded.tokenizer))
    assert record.error is None, record.error
    return record


def check_reference(lm, record) -> float:
    error, count = max_reference_error(lm[1], record)
    assert count == record.num_generated  # every sampled token was compared
    assert error <= TOL, error
    return error


# ---------------------------------------------------------------------- O1
@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_o1_flat_equivalence(arch, pool_checked_after_every_step):
    lm = load(arch)
    record = run_tree(lm, TREE, fmt="thread2")
    assert pool_checked_after_every_step == list(range(1, record.num_steps + 1))
    root = record.streams[()]
    assert record.num_evicted == 0 and root.position_ids == list(
        range(len(record.prompt_ids), len(record.prompt_ids) + len(root.position_ids)))
    ids = record.prompt_ids + root.token_ids
    expected = hf_logprobs(lm[1], ids, list(range(len(ids))))  # one plain forward
    n = len(record.prompt_ids)
    worst = max(abs(expected[n + i - 1, t].item() - lp)
                for i, (t, lp) in enumerate(zip(root.token_ids, root.logprobs, strict=True))
                if lp is not None)
    assert worst <= TOL
    check_reference(lm, record)  # and the composed reference agrees on the flat case


@pytest.mark.parametrize("page_size", [1, 4])
def test_block_table_and_slot_groups_both_match_the_reference(qwen3, monkeypatch, page_size):
    # pages of 1 keep every view aligned: every lone group goes by block table; pages of 4
    # leave forked views misaligned, so their groups go by slots
    import tim.engine.executor as ex

    seen = {"table": 0, "slots": 0}

    def spying(*args, **kwargs):
        batch = build_batch(*args, **kwargs)
        for g in batch.groups:
            if not g.prefix_slots.numel():
                seen["table" if g.block_table is not None else "slots"] += 1
        return batch

    build_batch = ex.build_batch
    monkeypatch.setattr(ex, "build_batch", spying)
    record = run_tree(qwen3, TREE, fmt="parallel", pruning="buffer:1", page_size=page_size)
    assert seen["table"] > 0 and (seen["slots"] > 0) == (page_size > 1)
    check_reference(qwen3, record)


# ---------------------------------------------------------------------- O2-O4
CONFIGS = [("thread2", pruning, positions, 1)
           for pruning in ("none", "buffer:0", "buffer:1")
           for positions in ("shift", "reencode", "keep")]
CONFIGS += [("parallel", pruning, positions, workers)
            for pruning in ("none", "buffer:0", "buffer:1")
            for positions in ("shift", "reencode", "keep")
            for workers in (1, 2, 8)]
# the second pruning point: a list leaves only after its owner's conclusion
CONFIGS += [(fmt, f"buffer:{k}@conclusion", positions, workers)
            for fmt, workers in (("thread2", 1), ("parallel", 1), ("parallel", 8))
            for k in (0, 1)
            for positions in ("shift", "reencode")]


@pytest.mark.slow
@pytest.mark.parametrize("fmt, pruning, positions, max_workers", CONFIGS)
def test_composed_reference(qwen3, fmt, pruning, positions, max_workers):
    record = run_tree(qwen3, TREE, fmt=fmt, pruning=pruning, positions=positions,
                      max_workers=max_workers)
    if pruning != "none":
        assert record.num_evicted > 0 and all(e.ranges for e in record.evictions
                                              if not e.deferred)
        if positions != "keep":
            assert any(e.num_moved for e in record.evictions)
    if fmt == "parallel":
        assert len(record.joins) == 7 and not any(j.dropped for j in record.joins)
        assert record.max_concurrency == min(max_workers, 3)
    if pruning.endswith("@conclusion"):
        assert_after_conclusions(record)
    check_reference(qwen3, record)


def assert_after_conclusions(record) -> None:
    """Under ``@conclusion`` every eviction takes effect at a task's closing ``}`` (sampled,
    not yet fed: the conclusion's closing quote comes just before it) or, in ``parallel``,
    at a join (the stream has fed its plan's ``]`` and nothing after it); never while a
    conclusion is being written. Read from the streams' text (a byte is a token)."""
    for ev in record.evictions:
        text = record.streams[ev.stream].text
        assert len(text) == len(record.streams[ev.stream].token_ids)
        at_brace = text[ev.fed - 1:ev.fed + 1] == '"}'
        at_join = (record.format == "parallel" and text[ev.fed - 1] == "]"
                   and not re.search('"(conclusion|answer)"', text[:ev.fed]))
        assert at_brace or at_join, (ev.stream, ev.fed, text[ev.fed - 20:ev.fed + 3])


DEFAULT_PATH = [("parallel", "buffer:1", "shift", 8), ("thread2", "buffer:0", "shift", 1),
                ("parallel", "buffer:0", "reencode", 1)]


@pytest.mark.parametrize("arch, overrides", [
    ("llama", {}),
    ("qwen3", {}),
    ("phi3", {"partial_rotary_factor": 0.5}),  # RoPE on half of each head's channels
    ("mistral", {"sliding_window": 16}),
    ("cohere", {}),  # interleaved RoPE: pairs (x[2i], x[2i+1])
])
@pytest.mark.parametrize("fmt, pruning, positions, max_workers", DEFAULT_PATH)
def test_architectures(arch, overrides, fmt, pruning, positions, max_workers):
    lm = load(arch, **overrides)
    record = run_tree(lm, TREE, fmt=fmt, pruning=pruning, positions=positions,
                      max_workers=max_workers)
    assert record.num_evicted > 0
    if arch == "phi3":
        assert 0 < lm[0].model.model.rotary_emb.inv_freq.numel() * 2 < lm[0].model.config.head_dim
    assert inspect_model(lm[0].model).rope_interleaved is (arch == "cohere")
    check_reference(lm, record)


@pytest.mark.slow
@pytest.mark.parametrize("fmt, positions, max_workers", [
    ("thread2", "shift", 1), ("parallel", "shift", 8), ("parallel", "reencode", 2)])
def test_forced_stress_shapes(qwen3, fmt, positions, max_workers):
    shape = StressShape(num_tasks=3, depth=2, fanout=2, thought_tokens=6, conclusion_tokens=3,
                        answer_tokens=2, tool_calls="leaves", tool_result_chars=12)
    report = stress(qwen3[0], shape=shape, format=fmt, positions=positions, pruning="buffer:0",
                    max_workers=max_workers, window=1024, kv_budget_tokens=4096)
    record = report.record
    assert report.failure is None and record.error is None
    assert record.num_evicted > 0 and any(e.num_moved for e in record.evictions)
    if fmt == "parallel":
        assert len(record.forks) >= 3 and len(record.joins) >= 6
        assert record.max_concurrency >= 2 if max_workers > 1 else True
    check_reference(qwen3, record)


# ---------------------------------------------------------------------- the reference can fail
def test_reference_notices_a_wrong_record(qwen3):
    """The reference is a check, not an echo: records bent in plausible ways fail it."""
    record = run_tree(qwen3, TREE, fmt="parallel", pruning="buffer:1", positions="shift")
    check_reference(qwen3, record)
    for policy in ("keep", "reencode"):  # the same tokens claimed under another policy
        assert rejected(qwen3, replace(record, positions=policy))
    # a join laid at another place
    bent = replace(record, joins=[replace(j, delta=j.delta + 1) if j.delta else j
                                  for j in record.joins])
    with pytest.raises(ReferenceMismatch, match="delta"):
        max_reference_error(qwen3[1], bent)
    # an eviction one token shorter than the engine made it
    first = next(e for e in record.evictions if e.ranges)
    (path, a, b), *rest = first.ranges
    short = replace(first, ranges=((path, a, b - 1), *rest))
    assert rejected(qwen3, replace(record, evictions=[short if e is first else e
                                                      for e in record.evictions]))


def rejected(lm, record) -> bool:
    try:
        error, _ = max_reference_error(lm[1], record)
    except ReferenceMismatch:
        return True
    return error > TOL


# ---------------------------------------------------------------------- O6 and random trees
def test_shift_bounds_positions(qwen3):
    for fmt in ("thread2", "parallel"):
        record = run_tree(qwen3, TREE, fmt=fmt, pruning="buffer:0", positions="shift")
        unpruned = run_tree(qwen3, TREE, fmt=fmt)
        assert record.num_evicted > 0
        assert record.max_position < unpruned.max_position
        assert record.peak_live_tokens < unpruned.peak_live_tokens


@pytest.mark.parametrize("max_workers", [1, 2])
def test_limited_workers_give_the_same_tree_text(qwen3, max_workers):
    record = run_tree(qwen3, TREE, fmt="parallel", max_workers=max_workers)
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


@pytest.mark.slow
@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=tree_strategy(), fmt=st.sampled_from(["thread2", "parallel"]),
       pruning=st.sampled_from(["none", "buffer:0", "buffer:1"]),
       positions=st.sampled_from(["shift", "reencode", "keep"]),
       max_workers=st.sampled_from([1, 2, 8]))
def test_random_trees_match_the_reference(qwen3, tree, fmt, pruning, positions, max_workers):
    record = run_tree(qwen3, tree, fmt=fmt, pruning=pruning, positions=positions,
                      max_workers=max_workers)
    texts = {p: s.text for p, s in record.streams.items()}
    assert get_format(fmt).parse_streams(texts) == tree
    check_reference(qwen3, record)


def test_composed_reference_rotation_matches_hf_rope():
    """The reference's own float64 RoPE turns HF's key at p into HF's key at p + delta."""
    from tests.engine.reference import rotate_keys

    for arch, overrides in (("llama", {}), ("phi3", {"partial_rotary_factor": 0.5}),
                            ("cohere", {})):
        model = load(arch, **overrides)[1]
        keys = {}
        for p in (3, 40):
            cache_model = model(input_ids=torch.tensor([[65]]), position_ids=torch.tensor([[p]]),
                                use_cache=True)
            keys[p] = cache_model.cache.layers[0].keys[0, :, 0]  # (Hkv, D)
        inv_freq = model.model.rotary_emb.inv_freq
        moved = rotate_keys(keys[40], -37, inv_freq, interleaved=arch == "cohere")
        assert torch.allclose(moved, keys[3], atol=1e-5), arch
