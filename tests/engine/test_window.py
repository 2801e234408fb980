"""The context window (``EngineConfig.max_position``): checked once, before the forward.

Every forward is spied on: no test here lets one run at a position at or past the window.
The page pool is checked after every step by tests/engine/conftest.py, and once more after
each run here.
"""

from __future__ import annotations

import pytest

from tim.engine.choosers import TextReplay
from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.engine.runner import ModelRunner
from tim.engine.sampler import SamplingParams
from tim.errors import PositionWindowError, recorded_error_is
from tim.models import tiny_model
from tim.tree import Task, TaskTree, get_format

NOISE = SamplingParams(temperature=1.0, seed=3)  # a noise model at T=1 writes long strings
# 689 tokens with its prompt; under buffer:0 no more than 367 of them are live at once
TREE = TaskTree(
    [
        Task("split A", "A is 3", title="A", subtasks=[
            Task("first half", "1", title="a1"), Task("second half", "2", title="a2")]),
        Task("then B", "B is 4", title="B", subtasks=[
            Task("only", "4", title="b1"), Task("also", "0", title="b2")]),
        Task("sum", "7", title="C"),
    ],
    answer="7",
)


@pytest.fixture(scope="module")
def lm():
    return tiny_model("qwen3", num_layers=1)


@pytest.fixture
def forwards(monkeypatch):
    """The largest position id of every forward that ran, in order."""
    run = ModelRunner.run
    seen: list[int] = []

    def spied(runner, batch):
        seen.append(int(batch.position_ids.max()))
        return run(runner, batch)

    monkeypatch.setattr(ModelRunner, "run", spied)
    return seen


def kept_stores(engine: Engine) -> list:
    """Every KV store the engine's runs use, to check after they end."""
    stores, new_runner = [], engine.new_runner

    def kept():
        runner = new_runner()
        stores.append(runner.store)
        return runner

    engine.new_runner = kept
    return stores


def assert_all_pages_free(store) -> None:
    store.check_integrity()
    assert not store.views and store.pool.num_free_pages == store.pool.num_pages


def prompt_ids(lm, text: str = "Q: what is 2 + 2?") -> list[int]:
    return lm.tokenizer.encode(text, add_special_tokens=False)


def replay_tree(lm, *, positions: str, pruning: str, window: int, fmt: str = "thread2"):
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(
        format=fmt, positions=positions, pruning=pruning, max_new_tokens=10_000,
        kv_budget_tokens=4096, max_position=window))
    stores = kept_stores(engine)
    rendered = get_format(fmt).render(TREE)
    texts = {(): rendered} if isinstance(rendered, str) else rendered
    record = engine.run(prompt_ids(lm, "Solve: 3 + 4."), chooser=TextReplay(texts, lm.tokenizer))
    assert_all_pages_free(stores[-1])
    return record


def test_keep_stops_before_a_forward_reaches_the_window(lm, forwards):
    window = 48
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(
        format="thread2", positions="keep", pruning="none", max_new_tokens=400,
        kv_budget_tokens=1024, max_position=window))
    stores = kept_stores(engine)
    events = []
    record = engine.run(prompt_ids(lm), sampling=NOISE, on_event=events.append)
    assert recorded_error_is(record.error, PositionWindowError), record.error
    assert record.error.startswith("PositionWindowError: stream [] would be fed at position")
    assert f"at or past max_position={window}" in record.error and "'shift'" in record.error
    assert events[-1].kind == "failed" and events[-1].detail == record.error
    # every forward stayed below the window, and the run went right up to it
    assert forwards and max(forwards) == record.max_position < window
    assert all(row.max_position < window for row in record.timeline)
    assert record.max_position >= window - 8  # stopped at the window, not before
    assert len(forwards) == record.num_steps
    assert_all_pages_free(stores[-1])


def test_the_same_run_without_a_window_goes_past_it(lm, forwards):
    """The check is what stopped the run above: with room, the same run writes on."""
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(
        format="thread2", positions="keep", pruning="none", max_new_tokens=400,
        kv_budget_tokens=1024, max_position=1024))
    record = engine.run(prompt_ids(lm), sampling=NOISE)
    assert not recorded_error_is(record.error, PositionWindowError)
    assert max(forwards) >= 48


def test_shift_with_pruning_passes_a_window_keep_cannot(lm, forwards):
    window = 400
    keep = replay_tree(lm, positions="keep", pruning="buffer:0", window=window)
    assert recorded_error_is(keep.error, PositionWindowError), keep.error
    assert "under positions='keep'" not in keep.error and "'reencode'" in keep.error
    assert max(forwards) < window and keep.peak_live_tokens < window
    forwards.clear()
    shift = replay_tree(lm, positions="shift", pruning="buffer:0", window=window)
    assert shift.error is None, shift.error
    # (the record's max is after each step's evictions; a forward may sit one higher)
    assert shift.max_position <= max(forwards) < window
    total = len(shift.prompt_ids) + shift.num_generated + shift.num_forced
    assert total > window and shift.num_evicted > 0  # past the window, positions within it


def test_shift_without_pruning_stops_and_says_to_prune_more(lm, forwards):
    full = replay_tree(lm, positions="shift", pruning="none", window=400)
    assert recorded_error_is(full.error, PositionWindowError), full.error
    assert "under positions='shift' its view's tokens fill the window" in full.error
    assert max(forwards) < 400


def test_parallel_keep_stops_before_the_parent_feeds_past_a_join(lm, forwards):
    """A join moves a child's keys to the end of its parent's view without a forward; under
    ``keep`` that can place them past the window, and the parent's next feed stops the run."""
    record = replay_tree(lm, positions="keep", pruning="none", window=300, fmt="parallel")
    assert recorded_error_is(record.error, PositionWindowError), record.error
    assert max(forwards) < 300 and record.joins
    assert record.max_position >= 300  # the joined keys, rotated there and never queried


def test_a_prompt_longer_than_the_window_raises_before_any_forward(lm, forwards):
    prompt = prompt_ids(lm)  # 17 tokens
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(format="thread2",
                                                         max_position=len(prompt) - 1))
    stores = kept_stores(engine)
    with pytest.raises(PositionWindowError, match=rf"the prompt has {len(prompt)} tokens, "
                                                  rf"more than max_position={len(prompt) - 1}"):
        engine.run(prompt, sampling=NOISE)
    assert forwards == [] and all(not s.views for s in stores)


def test_a_prompt_that_fills_the_window_runs_one_forward_then_stops(lm, forwards):
    prompt = prompt_ids(lm)
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(format="thread2",
                                                         max_position=len(prompt)))
    record = engine.run(prompt, sampling=NOISE)
    assert forwards == [len(prompt) - 1]  # the prompt, then no room for its next token
    assert record.num_generated == 1 and recorded_error_is(record.error, PositionWindowError)
    assert f"would be fed at position {len(prompt)}," in record.error


def test_a_run_of_many_stops_alone(lm, forwards):
    """run_many: the request that reaches the window ends; the other goes on."""
    short, long = prompt_ids(lm, "2+2?"), prompt_ids(lm, "Q: what is 2 + 2? " * 2)
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(
        format="thread2", positions="keep", pruning="none", max_new_tokens=12,
        max_position=len(long) + 4))
    stopped, finished = engine.run_many([long, short], sampling=NOISE)
    assert recorded_error_is(stopped.error, PositionWindowError)
    assert finished.error.startswith("max_new_tokens=12")  # a noise model never answers
    assert finished.num_steps > stopped.num_steps and max(forwards) < len(long) + 4


def test_default_window_is_the_models_max_position_embeddings():
    small = tiny_model("qwen3", num_layers=1, max_position_embeddings=64)
    engine = Engine(small.model, small.tokenizer, EngineConfig(format="thread2"))
    assert engine.max_position == small.model.config.max_position_embeddings == 64
    record = engine.run(prompt_ids(small), sampling=NOISE)
    assert recorded_error_is(record.error, PositionWindowError), record.error
    assert record.max_position < 64 and "max_position=64" in record.error
    mine = Engine(small.model, small.tokenizer, EngineConfig(format="thread2", max_position=100))
    assert mine.max_position == 100  # above the model's: the user's call


def test_a_remote_executor_has_no_window_unless_given(lm):
    def no_executor():
        raise AssertionError("not called: no run here")

    assert Engine(None, lm.tokenizer, EngineConfig(), executor=no_executor).max_position is None
    given = Engine(None, lm.tokenizer, EngineConfig(max_position=77), executor=no_executor)
    assert given.max_position == 77


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "512"])
def test_config_rejects_a_bad_max_position(bad):
    with pytest.raises(ValueError, match=rf"max_position must be an int >= 1 or None, got "
                                         rf"{bad!r}"):
        EngineConfig(max_position=bad)


def test_config_accepts_none_and_positive_ints():
    assert EngineConfig().max_position is None
    assert EngineConfig(max_position=1).max_position == 1
