"""What the batcher takes and gives back: a :class:`Job` in, a :class:`JobDone` out."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from tim.engine.engine import Engine
from tim.engine.record import RunEvent, RunRecord
from tim.engine.sampler import SamplingParams
from tim.errors import TimError

__all__ = ["Ending", "Job", "JobDone", "PageUse", "QueueFull", "kv_reserve"]

FORCED_PER_SAMPLED = 1  # forced tokens (headers, join text) reserved per sampled token


def kv_reserve(num_prompt_tokens: int, max_new_tokens: int) -> int:
    """KV slots a request is admitted against: its prompt, its sampled tokens and as many
    forced ones. An estimate: a tool's long result can pass it.

    Examples
    --------
    >>> kv_reserve(1800, 600)
    3000
    """
    return num_prompt_tokens + (1 + FORCED_PER_SAMPLED) * max_new_tokens


class QueueFull(TimError):
    """The batcher's queue is full, or it has stopped; the request was not taken."""


class Ending(Enum):
    FINISHED = "finished"  # the run ended by itself (an answer, or its own error)
    CANCELLED = "cancelled"  # the client went away, or the server is stopping
    TIMEOUT = "timeout"  # past its deadline, queued or decoding
    FAILED = "failed"  # the server could not decode it (``message`` says why)


@dataclass(frozen=True)
class JobDone:
    """How a job ended. ``record`` is None when it never started (queued, then cancelled)."""

    ending: Ending
    record: RunRecord | None
    message: str | None = None
    queued_s: float = 0.0


@dataclass(eq=False)
class Job:
    """One request's run as the batcher sees it.

    ``on_done`` is called exactly once, from the engine thread (a job the batcher refuses raises
    in :meth:`~tim.serve.batcher.Batcher.submit` instead). ``on_event`` gets the run's structural
    :class:`~tim.engine.record.RunEvent` s (no ``token`` events). Neither may block.
    """

    run_id: str
    engine: Engine
    prompt_ids: list[int]
    sampling: SamplingParams
    max_new_tokens: int
    deadline: float  # time.monotonic() past which the job times out
    on_done: Callable[[JobDone], None]
    on_event: Callable[[RunEvent], None] | None = None
    submitted: float = field(default_factory=time.monotonic)
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def reserve(self) -> int:
        return kv_reserve(len(self.prompt_ids), self.max_new_tokens)


class PageUse(NamedTuple):
    """The executor's page pool: pages in all, pages free, views open."""

    num_pages: int
    num_free: int
    num_views: int
