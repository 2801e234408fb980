"""A stream: one worker's text, tokens, parser and view, and what it waits for."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch

from tim.engine.detok import Detokenizer
from tim.engine.record import StreamRecord
from tim.tree import TaskPath

__all__ = ["StreamStatus", "Stream"]


class StreamStatus(Enum):
    QUEUED = "queued"  # a child waiting for a free worker; no view yet
    RUNNING = "running"  # decoding, or feeding forced tokens
    FLUSHING = "flushing"  # feeding its last token, then it forks or finishes
    WAITING_TOOL = "waiting_tool"
    WAITING_CHILDREN = "waiting_children"
    DONE = "done"
    FAILED = "failed"


@dataclass
class Stream:
    path: TaskPath
    parser: Any
    detok: Detokenizer
    record: StreamRecord
    rng: torch.Generator
    status: StreamStatus = StreamStatus.RUNNING
    view: Any = None  # the executor's handle of its view; None until it starts
    title: str | None = None
    queue: list[int] = field(default_factory=list)  # tokens to feed; their K/V is not written
    num_fed: int = 0  # record tokens appended to the view so far (evicted ones included)
    num_recompute: int = 0  # retained tokens at the end of the view to re-encode next step
    plan: list[str] = field(default_factory=list)  # parallel: child titles of the open plan
    children: list[Stream] = field(default_factory=list)
    num_joined: int = 0
    fork_offset: int = 0  # text offset just after the plan's ']' (parallel)
    grammar: Any = None  # StreamGrammar, or None when decoding free

    @property
    def depth(self) -> int:
        return len(self.path)

    @property
    def is_active(self) -> bool:
        """Holds a worker slot (counts against ``max_workers``)."""
        return self.status in (StreamStatus.RUNNING, StreamStatus.FLUSHING, StreamStatus.WAITING_TOOL)

    def fail(self, message: str) -> None:
        self.status = StreamStatus.FAILED
        self.record.error = f"stream {list(self.path)}: {message}"
