"""Engine.cancel: a cancel is kept until a run takes it, so none is lost to timing.

Every cancel here is made at a chosen point of the run (from ``on_step``, before the run,
inside the run's setup), so the tests need no timers and no sleeps.
"""

from __future__ import annotations

import pytest

from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.engine.sampler import SamplingParams
from tim.models import tiny_model

NOISE = SamplingParams(temperature=1.0, seed=3)  # a noise model at T=1 forks and runs long


@pytest.fixture(scope="module")
def lm():
    return tiny_model("qwen3")


@pytest.fixture
def engine(lm):
    engine = Engine(lm.model, lm.tokenizer, EngineConfig(
        format="parallel", max_depth=2, max_fanout=2, max_new_tokens=400,
        kv_budget_tokens=4096,
    ))
    engine.stores = []  # every store the engine's runs used, to check after they end
    new_runner = engine.new_runner

    def kept_runner():
        runner = new_runner()
        engine.stores.append(runner.store)
        return runner

    engine.new_runner = kept_runner
    return engine


def prompt(lm, question="Q: what is 2 + 2?"):
    return lm.tokenizer.encode(question, add_special_tokens=False)


def assert_all_pages_free(store):
    store.check_integrity()
    assert not store.views
    assert store.pool.num_free_pages == store.pool.num_pages


@pytest.mark.parametrize("num_steps", [1, 7])
def test_cancel_from_on_step_stops_after_that_step_and_frees_every_page(lm, engine, num_steps):
    pages_in_use = []

    def on_step(record):
        if record.num_steps == num_steps:
            store = engine.stores[-1]
            pages_in_use.append(store.pool.num_pages - store.pool.num_free_pages)
            engine.cancel()

    record = engine.run(prompt(lm), sampling=NOISE, on_step=on_step)
    assert record.error == "cancelled"
    assert record.num_steps == num_steps
    assert pages_in_use[0] > 0  # the cancel met a run holding pages ...
    assert_all_pages_free(engine.stores[-1])  # ... and every one came back


def test_cancel_before_the_run_starts_cancels_that_run_before_its_first_step(lm, engine):
    engine.cancel()
    record = engine.run(prompt(lm), sampling=NOISE)
    assert record.error == "cancelled"
    assert record.num_steps == 0 and record.num_generated == 0
    assert_all_pages_free(engine.stores[-1])
    # the run took the cancel: the next one runs to its end
    after = engine.run(prompt(lm), sampling=NOISE)
    assert after.error != "cancelled" and after.num_steps > 0


def test_cancel_during_the_run_setup_is_not_lost(lm, engine):
    # The window the old engine lost: after run() began, before its loop cleared the flag.
    new_runner = engine.new_runner

    def cancel_then_build():
        engine.cancel()
        return new_runner()

    engine.new_runner = cancel_then_build
    record = engine.run(prompt(lm), sampling=NOISE)
    assert record.error == "cancelled" and record.num_steps == 0
    assert_all_pages_free(engine.stores[-1])


def test_a_run_that_ends_first_takes_the_cancel_with_it(lm, engine):
    whole = engine.run(prompt(lm), sampling=NOISE)
    assert whole.error != "cancelled"

    def cancel_on_the_last_step(record):
        if record.num_steps == whole.num_steps:
            engine.cancel()

    # the same seed: the same run again, cancelled as it ends, so it is not marked ...
    again = engine.run(prompt(lm), sampling=NOISE, on_step=cancel_on_the_last_step)
    assert again.num_steps == whole.num_steps and again.error == whole.error
    # ... and the cancel is gone with it
    after = engine.run(prompt(lm), sampling=NOISE)
    assert after.num_steps == whole.num_steps and after.error == whole.error


def test_run_many_cancelled_from_on_step_marks_the_unfinished_requests(lm, engine):
    def on_step(records):
        if records[0].num_steps == 4:
            engine.cancel()

    records = engine.run_many([prompt(lm), prompt(lm, "Q: name a colour")], sampling=NOISE,
                              on_step=on_step)
    assert [r.error for r in records] == ["cancelled", "cancelled"]
    assert [r.num_steps for r in records] == [4, 4]
    assert_all_pages_free(engine.stores[-1])


def test_run_many_cancelled_before_it_starts(lm, engine):
    engine.cancel()
    records = engine.run_many([prompt(lm), prompt(lm, "Q: name a colour")], sampling=NOISE)
    assert [(r.error, r.num_steps) for r in records] == [("cancelled", 0), ("cancelled", 0)]
    assert_all_pages_free(engine.stores[-1])
