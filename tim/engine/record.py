"""The record every run keeps: per-stream tokens, evictions, live-KV timeline, counters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tim.tree import Path

__all__ = ["StreamRecord", "EvictionRecord", "ForkRecord", "RunRecord", "RunEvent"]


@dataclass
class StreamRecord:
    """Everything one stream wrote, in order.

    ``forced[i]`` is True for tokens the runtime forced (headers, tool results, join text);
    ``logprobs[i]`` is the model's raw log-probability of a sampled token (before any grammar
    mask), None for forced tokens. ``position_ids[i]`` is the position token i had when its
    K/V was first written.
    """

    path: Path
    token_ids: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)
    forced: list[bool] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    text: str = ""
    parent_tokens: int = 0  # tokens of the parent's view this stream started on
    error: str | None = None


@dataclass(frozen=True)
class EvictionRecord:
    step: int
    stream: Path  # the stream whose view dropped the tokens
    list_owner: Path  # the task whose subtask list was evicted
    num_tokens: int
    num_freed_pages: int
    num_moved: int  # retained tokens re-positioned (shifted or queued for re-encoding)
    deferred: bool = False


@dataclass(frozen=True)
class RunEvent:
    """A live event for displays (``Engine.run(on_event=...)``, ``Runtime.stream``).

    ``kind`` is one of ``"token"`` (``detail``: the text it added), ``"task_opened"``,
    ``"task_closed"``, ``"tool_called"`` (``detail``: ``{"name", "parameters"}``),
    ``"tool_returned"`` (``detail``: the result JSON text), ``"fork"`` (``detail``: child
    paths), ``"join"``, ``"pruned"`` (``detail``: ``{"list_owner", "num_tokens"}``) and
    ``"failed"`` (``detail``: the message).
    """

    step: int
    kind: str
    stream: Path
    detail: Any = None


@dataclass(frozen=True)
class ForkRecord:
    step: int
    parent: Path
    children: tuple[Path, ...]


@dataclass
class RunRecord:
    """What a run did; ``Result`` wraps it for users. Plain data, JSON-serialisable."""

    format: str
    pruning: str
    positions: str
    prompt_ids: list[int]
    streams: dict[Path, StreamRecord] = field(default_factory=dict)
    evictions: list[EvictionRecord] = field(default_factory=list)
    forks: list[ForkRecord] = field(default_factory=list)
    # (step, tokens processed so far, live KV tokens, streams running) after every step
    timeline: list[tuple[int, int, int, int]] = field(default_factory=list)
    num_steps: int = 0
    num_generated: int = 0
    num_forced: int = 0
    num_prefilled: int = 0  # prompt + forced + re-encoded tokens fed in prefill
    num_reencoded: int = 0
    num_evicted: int = 0
    peak_live_tokens: int = 0
    max_position: int = 0
    max_concurrency: int = 0
    wall_time_s: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["streams"] = [
            {**asdict(s), "path": list(s.path)} for s in self.streams.values()
        ]
        data["evictions"] = [
            {**asdict(e), "stream": list(e.stream), "list_owner": list(e.list_owner)}
            for e in self.evictions
        ]
        data["forks"] = [
            {"step": f.step, "parent": list(f.parent), "children": [list(c) for c in f.children]}
            for f in self.forks
        ]
        data["timeline"] = [list(t) for t in self.timeline]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        data = dict(data)
        streams = {}
        for s in data.pop("streams"):
            rec = StreamRecord(**{**s, "path": tuple(s["path"])})
            streams[rec.path] = rec
        evictions = [
            EvictionRecord(**{**e, "stream": tuple(e["stream"]),
                              "list_owner": tuple(e["list_owner"])})
            for e in data.pop("evictions")
        ]
        forks = [
            ForkRecord(f["step"], tuple(f["parent"]), tuple(tuple(c) for c in f["children"]))
            for f in data.pop("forks")
        ]
        timeline = [tuple(t) for t in data.pop("timeline")]
        return cls(**data, streams=streams, evictions=evictions, forks=forks, timeline=timeline)
