"""One request's run seen from the event loop: events and the end, handed over from the
engine thread, then a JSON reply or an SSE stream.

A client that goes away cancels its job: the stream's generator is closed (its ``finally``
cancels), and a plain request polls for the disconnect while it waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tim.engine.record import RunEvent
from tim.serve.batcher import Batcher, Ending, Job, JobDone
from tim.serve.responses import (
    DONE_LINE,
    Refusal,
    Reply,
    chunk_body,
    event_line,
    sse_data,
)

__all__ = ["Session"]

POLL_S = 0.1  # how often a waiting plain request checks that its client is still there
KEEPALIVE_S = 10.0  # an idle stream sends ": keep-alive" this often
GRACE_S = 5.0  # past its deadline, wait this much for the batcher before answering 504


@dataclass(frozen=True)
class ChunkHead:
    run_id: str
    created: int
    model: str


class Session:
    """Bridge one :class:`~tim.serve.batcher.Job` to the event loop that submitted it.

    Its :meth:`on_event` and :meth:`on_done` are the job's callbacks; they run in the engine
    thread and only schedule work on ``loop``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events: asyncio.Queue[RunEvent | JobDone] = asyncio.Queue()
        self.done: asyncio.Future[JobDone] = loop.create_future()

    def on_event(self, event: RunEvent) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def on_done(self, done: JobDone) -> None:
        self.loop.call_soon_threadsafe(self._finish, done)

    def _finish(self, done: JobDone) -> None:
        self.events.put_nowait(done)
        if not self.done.done():
            self.done.set_result(done)

    async def wait(self, job: Job, batcher: Batcher,
                   is_disconnected: Callable[[], Awaitable[bool]]) -> JobDone | None:
        """The job's end; None when the client left first (the job is then cancelled)."""
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(self.done), timeout=POLL_S)
            except asyncio.TimeoutError:
                if await is_disconnected():
                    batcher.cancel(job)
                    return None
                if time.monotonic() > job.deadline + GRACE_S:  # the engine thread is stuck
                    batcher.cancel(job)
                    return _late(job)

    async def stream(self, job: Job, batcher: Batcher, head: ChunkHead,
                     reply_of: Callable[[JobDone], Reply | Refusal],
                     include_usage: bool) -> AsyncIterator[str]:
        """SSE: the role chunk, tree events as comments, the answer chunk, the finish chunk
        (with ``tim``, and ``usage`` when asked), ``[DONE]``. An error becomes a ``data:``
        error body. Closing the generator early cancels the job."""
        ended = False
        try:
            yield sse_data(_chunk(head, {"role": "assistant", "content": ""}))
            while True:
                try:
                    item = await asyncio.wait_for(self.events.get(), timeout=KEEPALIVE_S)
                except asyncio.TimeoutError:
                    if time.monotonic() > job.deadline + GRACE_S:
                        batcher.cancel(job)
                        item = _late(job)
                    else:
                        yield ": keep-alive\n\n"
                        continue
                if isinstance(item, RunEvent):
                    yield event_line(item)
                    continue
                ended = True
                for line in _final_lines(reply_of(item), head, include_usage):
                    yield line
                return
        finally:
            if not ended:
                batcher.cancel(job)


def _chunk(head: ChunkHead, delta: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return chunk_body(delta, run_id=head.run_id, created=head.created, model=head.model,
                      **extra)


def _final_lines(outcome: Reply | Refusal, head: ChunkHead, include_usage: bool) -> list[str]:
    if isinstance(outcome, Refusal):
        return [sse_data(outcome.body), DONE_LINE]
    lines = [sse_data(_chunk(head, {"content": outcome.content}))]
    extra: dict[str, Any] = {"tim": outcome.tim}
    if include_usage:
        extra["usage"] = outcome.usage
    lines.append(sse_data(chunk_body({}, run_id=head.run_id, created=head.created,
                                     model=head.model, finish_reason=outcome.finish_reason,
                                     **extra)))
    return [*lines, DONE_LINE]


def _late(job: Job) -> JobDone:
    return JobDone(Ending.TIMEOUT, None, "the request timed out", time.monotonic() - job.submitted)
