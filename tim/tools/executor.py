"""Run tool calls on daemon worker threads, each with a timeout, as futures that never raise.

A Python thread cannot be killed. When a call runs past its timeout, its future resolves to
a timeout error at once and its worker thread is *abandoned*: the tool keeps running in the
background until it returns by itself (its result is then dropped), and a fresh worker takes
its place in the pool. All threads are daemon threads, so neither :meth:`shutdown` nor the
interpreter's exit waits for a hung tool. (``concurrent.futures.ThreadPoolExecutor`` is not
used because its workers are joined at interpreter exit.)

::

    submit ──> queue ──> worker: start ──(call)──────────────> set result ──> idle
                              │                                    ▲
                              └─> watchdog: deadline = start + t ──┴─ or, first: timeout
                                  error; worker abandoned, replaced
"""

from __future__ import annotations

import heapq
import itertools
import math
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from tim.errors import TimError
from tim.tools.registry import ToolCaller, ToolOutcome, error_outcome

__all__ = ["ToolExecutor"]


@dataclass(eq=False)
class _Call:
    name: str
    parameters: Any
    future: Future = field(default_factory=Future)
    timeout_s: float = math.inf
    started: float = 0.0
    worker: threading.Thread | None = None
    resolved: bool = False  # guarded by ToolExecutor._lock


class ToolExecutor:
    """Tool calls in a pool of daemon threads, each call bounded by a timeout.

    Parameters
    ----------
    registry : ToolCaller
        Usually a :class:`~tim.tools.ToolRegistry`; its ``timeout_for(name)`` overrides
        ``timeout_s`` per tool.
    timeout_s : float
        Seconds a call may run, counted from when a worker starts it.
    max_workers : int
        Calls that run at once; further calls wait in order. Abandoned (timed-out) workers
        do not count, so hung tools never block later calls for longer than a timeout.

    Raises
    ------
    ValueError
        Quoting a ``timeout_s`` that is not a positive finite number, or a ``max_workers``
        that is not a positive int.

    Notes
    -----
    A timed-out tool keeps running in the background (Python cannot stop a thread), and
    every timeout starts a replacement worker; a tool that hangs on every call therefore
    leaves one thread behind per call until it returns.

    Examples
    --------
    >>> import time
    >>> from tim.tools import ToolRegistry
    >>> def nap(seconds: float) -> str:
    ...     '''Sleep, then say so.'''
    ...     time.sleep(seconds)
    ...     return "rested"
    >>> with ToolExecutor(ToolRegistry([nap]), timeout_s=0.2) as executor:
    ...     quick = executor.submit("nap", {"seconds": 0.01})
    ...     hung = executor.submit("nap", {"seconds": 5})
    ...     quick.result().result_json, hung.result().error
    ('"rested"', "tool 'nap' timed out after 0.2 s; it may still be running in the background")
    """

    def __init__(self, registry: ToolCaller, *, timeout_s: float = 30.0,
                 max_workers: int = 4) -> None:
        if (isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float))
                or not math.isfinite(timeout_s) or timeout_s <= 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be a positive int, got {max_workers!r}")
        self.registry = registry
        self.timeout_s = float(timeout_s)
        self.max_workers = max_workers
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # wakes the watchdog
        self._idle = threading.Semaphore(0)  # one permit per worker waiting for a call
        self._workers: set[threading.Thread] = set()  # live, not abandoned
        self._running: set[_Call] = set()
        self._deadlines: list[tuple[float, int, _Call]] = []  # heap
        self._order = itertools.count()
        self._stopping = False  # shutdown() began: no new calls
        self._closed = False  # shutdown() ended: the watchdog exits
        self._watchdog = threading.Thread(target=self._watch, name="tim-tool-watchdog",
                                          daemon=True)
        self._watchdog.start()

    def submit(self, name: str, parameters: Any) -> Future[ToolOutcome]:
        """Queue one call; its future resolves to a :class:`~tim.tools.ToolOutcome`.

        The future never holds an exception: a failed, invalid or timed-out call resolves to
        an error outcome, so a caller may simply poll ``future.done()``.

        Raises
        ------
        TimError
            If the executor has been shut down.
        """
        call = _Call(name, parameters)
        timeout = self.registry.timeout_for(name)
        call.timeout_s = self.timeout_s if timeout is None else timeout
        with self._lock:
            if self._stopping:
                raise TimError(f"ToolExecutor is shut down; cannot call tool {name!r}")
            self._queue.put(call)
            if not self._idle.acquire(blocking=False) and len(self._workers) < self.max_workers:
                self._start_worker()
        return call.future

    def shutdown(self, *, wait: bool = False) -> None:
        """Stop taking calls. Never waits for a hung tool.

        Calls still queued resolve to an error outcome. With ``wait=False`` running calls
        also resolve to an error outcome at once (their tools go on in the background); with
        ``wait=True`` they are given until their timeouts. Calling it again does nothing.
        """
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            settled = self._drain_queue()
            running = [c.future for c in self._running]
        _settle(settled)
        if wait:
            for future in running:
                future.result()  # resolves by its deadline at the latest
        with self._lock:
            self._closed = True
            settled = [(call, error_outcome(
                f"tool {call.name!r} was still running when the tool executor shut down",
                time.perf_counter() - call.started))
                for call in list(self._running) if self._claim(call)]
            for _ in range(len(self._workers)):
                self._queue.put(None)
            self._wake.notify_all()
        _settle(settled)

    def __enter__(self) -> ToolExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- internals. "under self._lock" marks methods whose callers hold the lock. Futures are
    # -- claimed under the lock but resolved after it is released, because resolving runs
    # -- the caller's done-callbacks, which may call submit().

    def _start_worker(self) -> None:  # under self._lock
        worker = threading.Thread(target=self._work, name="tim-tool-worker", daemon=True)
        self._workers.add(worker)
        worker.start()

    def _claim(self, call: _Call) -> bool:  # under self._lock
        """Whether the caller is the one to resolve ``call`` (exactly one is)."""
        if call.resolved:
            return False
        call.resolved = True
        self._running.discard(call)
        return True

    def _drain_queue(self) -> list[tuple[_Call, ToolOutcome]]:  # under self._lock
        settled = []
        while True:
            try:
                call = self._queue.get_nowait()
            except queue.Empty:
                return settled
            if call is not None and call.future.set_running_or_notify_cancel():
                call.resolved = True
                settled.append((call, _not_run(call)))

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            call = self._queue.get()
            if call is None:
                return
            if not call.future.set_running_or_notify_cancel():  # cancelled while queued
                self._idle.release()
                continue
            with self._lock:
                stopping = self._stopping  # taken just before shutdown() drained the queue
                if not stopping:
                    call.started, call.worker = time.perf_counter(), me
                    self._running.add(call)
                    heapq.heappush(self._deadlines,
                                   (call.started + call.timeout_s, next(self._order), call))
                    self._wake.notify()
            if stopping:
                call.resolved = True
                _settle([(call, _not_run(call))])
                return
            try:
                outcome = self.registry.call(call.name, call.parameters)
            except BaseException as e:  # noqa: BLE001 - SystemExit etc. inside a tool thread
                outcome = error_outcome(f"tool {call.name!r} raised {type(e).__name__}: {e}",
                                        time.perf_counter() - call.started)
            with self._lock:
                won = self._claim(call)
                abandoned = me not in self._workers  # timed out: replaced already
            if won:
                call.future.set_result(outcome)
            if abandoned:
                return
            self._idle.release()

    def _watch(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                now = time.perf_counter()
                expired = []
                while self._deadlines and (self._deadlines[0][2].resolved
                                           or self._deadlines[0][0] <= now):
                    _, _, call = heapq.heappop(self._deadlines)
                    if self._claim(call):
                        expired.append((call, _timed_out(call, now - call.started)))
                        self._abandon(call.worker)
                if not expired:
                    self._wake.wait(self._deadlines[0][0] - now if self._deadlines else None)
            _settle(expired)

    def _abandon(self, worker: threading.Thread | None) -> None:  # under self._lock
        self._workers.discard(worker)
        if not self._queue.empty() and len(self._workers) < self.max_workers:
            self._start_worker()


def _settle(settled: list[tuple[_Call, ToolOutcome]]) -> None:
    for call, outcome in settled:
        call.future.set_result(outcome)


def _not_run(call: _Call) -> ToolOutcome:
    return error_outcome(f"tool {call.name!r} did not run: the tool executor shut down", 0.0)


def _timed_out(call: _Call, elapsed_s: float) -> ToolOutcome:
    return error_outcome(f"tool {call.name!r} timed out after {call.timeout_s:g} s; it may "
                         "still be running in the background", elapsed_s)
