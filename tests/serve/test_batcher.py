"""The continuous-batching loop: the same tokens as Engine.run_many, cancels, timeouts, a
failed step, a full queue; every page back each time."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from tim.api import build_prompt
from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.engine.sampler import SamplingParams
from tim.models import tiny_model
from tim.serve.batcher import Batcher, Ending, Job, QueueFull

QUESTIONS = ["2 + 2?", "3 + 5?", "7 * 6?"]
WAIT_S = 120  # a bound on waiting for the engine thread, never a measured threshold


@pytest.fixture(scope="module")
def engine():
    lm = tiny_model("qwen3")
    config = EngineConfig(format="parallel", max_depth=1, max_fanout=2, max_string_chars=4,
                          kv_budget_tokens=65536)
    return Engine(lm.model, lm.tokenizer, config)


def prompt(engine, question):
    return build_prompt(engine.tokenizer, engine.format.instructions(()), question)


def job(engine, question, *, seed, done, max_new_tokens=2000, deadline_s=600.0, on_event=None):
    return Job(run_id=question, engine=engine, prompt_ids=prompt(engine, question),
               sampling=SamplingParams(temperature=1.0, top_p=0.95, seed=seed),
               max_new_tokens=max_new_tokens, deadline=time.monotonic() + deadline_s,
               on_done=lambda end: done.put((question, end)), on_event=on_event)


def all_pages_back(batcher):
    use = batcher.pages()
    batcher.executor.store.check_integrity()
    return use.num_views == 0 and use.num_free == use.num_pages


@pytest.fixture
def batcher(engine):
    b = Batcher(engine, max_running=8, max_queued=8)
    yield b
    b.stop()


def test_jobs_queued_together_decode_exactly_as_run_many(engine, batcher):
    done = queue.Queue()
    for i, question in enumerate(QUESTIONS):
        batcher.submit(job(engine, question, seed=10 + i, done=done))
    batcher.start()  # all three are admitted in the first turn, in order, as run_many takes them
    ends = dict(done.get(timeout=WAIT_S) for _ in QUESTIONS)
    expected = engine.run_many([prompt(engine, q) for q in QUESTIONS],
                               sampling=SamplingParams(temperature=1.0, top_p=0.95, seed=10),
                               max_new_tokens=2000)
    for question, record in zip(QUESTIONS, expected, strict=True):
        got = ends[question]
        assert got.ending is Ending.FINISHED
        assert {p: s.token_ids for p, s in got.record.streams.items()} == {
            p: s.token_ids for p, s in record.streams.items()}
        assert got.record.num_generated == record.num_generated > 0
        assert got.record.error == record.error
    assert batcher.peak_running == len(QUESTIONS)
    assert batcher.wait_idle(WAIT_S) and all_pages_back(batcher)


def test_a_cancelled_job_ends_with_its_pages_back_and_the_others_go_on(engine, batcher):
    done, forked = queue.Queue(), threading.Event()
    victim = job(engine, QUESTIONS[0], seed=1, done=done,
                 on_event=lambda e: e.kind == "fork" and forked.set())
    other = job(engine, QUESTIONS[1], seed=2, done=done)
    batcher.submit(victim)
    batcher.submit(other)
    batcher.start()
    assert forked.wait(WAIT_S)
    batcher.cancel(victim)
    ends = dict(done.get(timeout=WAIT_S) for _ in range(2))
    cancelled, finished = ends[QUESTIONS[0]], ends[QUESTIONS[1]]
    assert cancelled.ending is Ending.CANCELLED and cancelled.record.error == "cancelled"
    assert finished.ending is Ending.FINISHED and finished.record.error is None
    assert cancelled.record.num_steps < finished.record.num_steps
    assert batcher.endings[Ending.CANCELLED] == 1
    assert batcher.wait_idle(WAIT_S) and all_pages_back(batcher)


def test_a_job_past_its_deadline_times_out_without_starting(engine, batcher):
    done = queue.Queue()
    batcher.submit(job(engine, QUESTIONS[0], seed=1, done=done, deadline_s=-1.0))
    batcher.start()
    _, end = done.get(timeout=WAIT_S)
    assert end.ending is Ending.TIMEOUT and end.record is None
    assert batcher.num_steps == 0 and all_pages_back(batcher)


def test_a_failed_step_ends_its_runs_and_the_next_job_still_runs(engine, batcher, monkeypatch):
    done = queue.Queue()
    real_step = type(batcher.executor).step
    calls = []

    def step_failing_once(self, feeds):
        calls.append(len(feeds))
        if len(calls) == 3:
            raise RuntimeError("injected fault")
        return real_step(self, feeds)

    monkeypatch.setattr(type(batcher.executor), "step", step_failing_once)
    batcher.submit(job(engine, QUESTIONS[0], seed=1, done=done))
    batcher.start()
    _, failed = done.get(timeout=WAIT_S)
    assert failed.ending is Ending.FAILED and "injected fault" in failed.message
    assert all_pages_back(batcher)
    batcher.submit(job(engine, QUESTIONS[1], seed=2, done=done, max_new_tokens=40))
    _, after = done.get(timeout=WAIT_S)
    assert after.ending is Ending.FINISHED and after.record.num_generated > 0
    assert batcher.wait_idle(WAIT_S) and all_pages_back(batcher)


def test_a_full_queue_refuses_with_a_message(engine):
    b = Batcher(engine, max_running=1, max_queued=2)  # not started: nothing leaves the queue
    done = queue.Queue()
    b.submit(job(engine, QUESTIONS[0], seed=1, done=done))
    b.submit(job(engine, QUESTIONS[1], seed=2, done=done))
    with pytest.raises(QueueFull, match="2 requests are queued"):
        b.submit(job(engine, QUESTIONS[2], seed=3, done=done))
    b.start()
    b.stop()  # the queued jobs end as cancelled; the executor closes with every page back
    assert {done.get(timeout=WAIT_S)[1].ending for _ in range(2)} == {Ending.CANCELLED}
    with pytest.raises(QueueFull, match="stopped"):
        b.submit(job(engine, QUESTIONS[2], seed=3, done=done))
