"""Continuous batching for ``tim serve``: one thread owns one executor and steps every live
request's :class:`~tim.engine.run.Run` together, admitting new requests between steps.

::

    submit(job) --> queue --(admit: a free slot and KV room)--> live runs --> done
                      |                                           |
                      +-- cancelled / past its deadline ----------+--> on_done(JobDone)

    engine thread, each turn:  end cancelled and late jobs -> admit -> Engine.step(all live)
                               -> end finished runs

Every way out of the loop drops the run's views, so its pages go back to the pool. A step
that raises ends the runs it held with that message and the loop goes on (with a fresh
executor when pages did not come back); the server stays up.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from tim.engine.choosers import SamplingChooser
from tim.engine.engine import Engine
from tim.engine.record import RunEvent
from tim.engine.run import Run
from tim.serve.jobs import Ending, Job, JobDone, PageUse, QueueFull, kv_reserve

__all__ = ["Batcher", "Ending", "Job", "JobDone", "PageUse", "QueueFull", "kv_reserve"]

@dataclass(eq=False)
class _Live:
    job: Job
    run: Run
    started: float


class Batcher:
    """Steps every live request together on one executor, in one thread.

    Parameters
    ----------
    engine : Engine
        Makes the executor and runs :meth:`Engine.step`. A job may bring its own engine
        (another grammar over the same model); its run joins the same batches.
    max_running : int
        Runs decoding together; later jobs wait in the queue, first in first out.
    max_queued : int
        Jobs waiting; :meth:`submit` refuses one more with :class:`QueueFull`.

    Notes
    -----
    A job is admitted when a slot is free and the reserves of the live runs plus its own
    (:func:`kv_reserve`) fit ``kv_budget_tokens``. When every live run waits for a tool,
    the step blocks until one returns (at most the tool timeout), and admission waits too.
    """

    def __init__(self, engine: Engine, *, max_running: int, max_queued: int) -> None:
        self.engine = engine
        self.executor = engine.new_executor()
        self.kv_budget = engine.config.kv_budget_tokens
        self.max_running, self.max_queued = max_running, max_queued
        self.num_steps = 0
        self.peak_running = 0  # most runs stepped together in one step
        self.endings: Counter[Ending] = Counter()  # jobs ended so far, by how
        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._live: list[_Live] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.crashed: BaseException | None = None

    # ------------------------------------------------------------ other threads
    def start(self) -> None:
        """Start the engine thread."""
        self._thread = threading.Thread(target=self._loop, name="tim-serve-batcher", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """End every job (``CANCELLED``), close the executor and join the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def submit(self, job: Job) -> None:
        """Queue ``job``; raise :class:`QueueFull` when the queue is full or the loop stopped."""
        with self._cond:
            if self._stopping or self.crashed is not None:
                raise QueueFull(f"the decode loop has stopped ({self.crashed or 'shutting down'})")
            if len(self._queue) >= self.max_queued:
                raise QueueFull(f"the server is busy: {len(self._queue)} requests are queued "
                                f"(limit {self.max_queued}); retry later")
            self._queue.append(job)
            self._cond.notify_all()

    def cancel(self, job: Job) -> None:
        """Cancel ``job`` before the next step; safe from any thread, a no-op once it ended."""
        job.cancel_requested.set()
        with self._cond:
            self._cond.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no job is queued or live; False if ``timeout_s`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._live, timeout_s)

    def num_jobs(self) -> tuple[int, int]:
        """(jobs queued, runs live)."""
        with self._cond:
            return len(self._queue), len(self._live)

    def pages(self) -> PageUse:
        """The executor's page pool now (exact when idle)."""
        store = self.executor.store
        return PageUse(store.pool.num_pages, store.pool.num_free_pages, len(store.views))

    # ------------------------------------------------------------ the engine thread
    def _loop(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping or self._queue or self._live)
                    if self._stopping:
                        break
                self._end_cancelled_and_late()
                with self._cond:
                    admitted = self._admissible()
                for job in admitted:
                    self._start(job)
                if self._live:
                    self._step()
                for live in [lv for lv in self._live if lv.run.finished]:
                    self._end(live, Ending.FINISHED)
        except BaseException as exc:  # a bug in the loop itself: refuse new jobs, end the rest
            self.crashed = exc
            raise
        finally:
            self._shut_down()

    def _admissible(self) -> list[Job]:
        """Pop the jobs to start now, in order (call with the lock held)."""
        reserved = sum(live.job.reserve for live in self._live)
        admitted: list[Job] = []
        while self._queue and len(self._live) + len(admitted) < self.max_running:
            job = self._queue[0]
            if admitted or self._live:  # a job alone always starts (the app checked its size)
                if reserved + job.reserve > self.kv_budget:
                    break
            admitted.append(self._queue.popleft())
            reserved += job.reserve
        return admitted

    def _start(self, job: Job) -> None:
        if job.cancel_requested.is_set():
            self._deliver(job, JobDone(Ending.CANCELLED, None, queued_s=_since(job.submitted)))
            return
        on_event = None if job.on_event is None else _structural(job.on_event)
        try:
            run = Run(job.engine, job.prompt_ids, SamplingChooser(job.sampling, job.engine.tokenizer),
                      constrained=True, on_event=on_event, executor=self.executor,
                      max_new_tokens=job.max_new_tokens)
        except Exception as exc:  # e.g. no KV room for the prompt
            self._deliver(job, JobDone(Ending.FAILED, None, f"the run could not start: {exc}",
                                  queued_s=_since(job.submitted)))
            return
        with self._cond:
            self._live.append(_Live(job, run, time.monotonic()))

    def _end_cancelled_and_late(self) -> None:
        now = time.monotonic()
        with self._cond:
            queued = list(self._queue)
        for job in queued:
            ending = _ending_of(job, now)
            if ending is not None:
                with self._cond:
                    self._queue.remove(job)
                    self._cond.notify_all()
                self._deliver(job, JobDone(ending, None, _message(ending), _since(job.submitted)))
        for live in list(self._live):
            ending = _ending_of(live.job, now)
            if ending is not None:
                self._end(live, ending, _message(ending))

    def _step(self) -> None:
        runs = [live.run for live in self._live]
        try:
            self.engine.step(runs, self.executor)
        except Exception as exc:  # the step's runs are in an unknown state: end them all
            message = f"decoding failed in a batch of {len(runs)} request(s): {exc}"
            for live in list(self._live):
                self._end(live, Ending.FAILED, message)
            self._renew_executor()
            return
        self.num_steps += 1
        self.peak_running = max(self.peak_running, len(runs))

    def _end(self, live: _Live, ending: Ending, message: str | None = None) -> None:
        """Drop the run's views (its pages come back), then tell the job how it ended."""
        record = live.run.record
        try:
            live.run.drop_views()
        except Exception as exc:  # its pages stay out; _renew_executor takes them back
            message = message or f"freeing the run's pages failed: {exc}"
        record.wall_time_s = time.monotonic() - live.started
        if ending is not Ending.FINISHED:
            record.error = record.error or message or ending.value
        with self._cond:
            self._live.remove(live)
            self._cond.notify_all()
        self._deliver(live.job, JobDone(ending, record, message, live.started - live.job.submitted))

    def _deliver(self, job: Job, done: JobDone) -> None:
        with self._cond:
            self.endings[done.ending] += 1
        try:
            job.on_done(done)
        except Exception:  # the listener is gone (its event loop closed); the run is over anyway
            pass

    def _renew_executor(self) -> None:
        """A fresh executor when the old one's pages did not all come back (no live runs)."""
        use = self.pages()
        if use.num_views or use.num_free != use.num_pages:
            self.executor = self.engine.new_executor()

    def _shut_down(self) -> None:
        with self._cond:
            self._stopping = True
            queued, self._queue = list(self._queue), deque()
        for job in queued:
            self._deliver(job, JobDone(Ending.CANCELLED, None, "the server is shutting down",
                                  _since(job.submitted)))
        for live in list(self._live):
            self._end(live, Ending.CANCELLED, "the server is shutting down")
        self.executor.close()  # every page back, or a TimError naming the leak


def _ending_of(job: Job, now: float) -> Ending | None:
    if job.cancel_requested.is_set():
        return Ending.CANCELLED
    if now > job.deadline:
        return Ending.TIMEOUT
    return None


def _message(ending: Ending) -> str:
    if ending is Ending.TIMEOUT:
        return "the request timed out (the server's request timeout passed)"
    return "cancelled"


def _since(start: float) -> float:
    return time.monotonic() - start


def _structural(on_event: Callable[[RunEvent], None]) -> Callable[[RunEvent], None]:
    """Pass every event but ``token`` to ``on_event``; an error there never reaches the step."""

    def forward(event: RunEvent) -> None:
        if event.kind != "token":
            try:
                on_event(event)
            except Exception:  # a broken listener must not fail the whole batch
                pass

    return forward



