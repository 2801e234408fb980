"""The record every run keeps: per-stream tokens, forks, joins, evictions, tool calls, one
typed row per step, counters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tim.tree import TaskPath

__all__ = ["StreamRecord", "EvictionRecord", "ForkRecord", "JoinRecord", "StepRow",
           "SightRecord", "ToolCallRecord", "RunRecord", "RunEvent"]


@dataclass
class StreamRecord:
    """Everything one stream wrote, in order.

    ``forced[i]`` is True for tokens the runtime forced (headers, tool results, join text);
    ``logprobs[i]`` is the model's raw log-probability of a sampled token (before any grammar
    mask), None for forced tokens. ``position_ids[i]`` is the position token i had when its
    K/V was first written.

    A child stream started on its parent's view as it was at that moment:
    ``parent_tokens`` tokens, after ``parent_fed`` of the parent's own tokens had been fed
    and after every structural change with a smaller ``seq`` (see :class:`RunRecord`).
    """

    path: TaskPath
    token_ids: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)
    forced: list[bool] = field(default_factory=list)
    logprobs: list[float | None] = field(default_factory=list)
    text: str = ""
    parent_tokens: int = 0  # tokens of the parent's view this stream started on
    parent_fed: int = 0  # parent tokens fed into the parent's view when this stream started
    start_seq: int = 0  # order of this stream's start among the run's structural changes
    error: str | None = None


@dataclass(frozen=True)
class EvictionRecord:
    """Tokens that left ``stream``'s view.

    ``ranges`` holds ``(writer, start, end)`` runs in view order: the writer stream's tokens
    ``token_ids[start:end]``. It took effect after ``fed`` of ``stream``'s own tokens had
    been fed into its view (those evicted earlier included), so ``token_ids[fed]`` is the
    first token fed after it. A deferred eviction changed nothing and has no ranges.
    """

    step: int
    stream: TaskPath  # the stream whose view dropped the tokens
    list_owner: TaskPath  # the task whose subtask list was evicted
    num_tokens: int
    num_freed_pages: int
    num_moved: int  # retained tokens re-positioned (shifted or queued for re-encoding)
    deferred: bool = False
    ranges: tuple[tuple[TaskPath, int, int], ...] = ()
    fed: int = 0
    seq: int = 0  # order among the run's structural changes (starts, joins, evictions)


@dataclass(frozen=True)
class JoinRecord:
    """``child`` ended and ``parent``'s view took its tokens after ``fed`` parent tokens.

    A joined child's own tokens (its view past the ``parent_tokens`` it started on) move to
    the end of the parent's view, their positions moved by ``delta`` (a RoPE shift). A
    ``dropped`` child (it failed) leaves nothing in the parent's view.
    """

    step: int
    parent: TaskPath
    child: TaskPath
    fed: int
    seq: int
    delta: int = 0
    dropped: bool = False


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
    stream: TaskPath
    detail: Any = None


@dataclass(frozen=True)
class ForkRecord:
    step: int
    parent: TaskPath
    children: tuple[TaskPath, ...]


@dataclass(frozen=True)
class StepRow:
    """One decode step (``step`` counts from 1): who was fed and what memory held after it.

    ``fed`` lists each stream fed in the step with its number of tokens (sampled, forced or
    re-encoded); ``num_processed`` counts every token fed so far; ``live_tokens`` and
    ``max_position`` are the distinct KV tokens the run's live views hold and their largest
    position id, after the step's evictions. ``seq`` counts the structural changes made
    before the step's forward (those with a smaller ``seq`` came first).
    """

    step: int
    fed: tuple[tuple[TaskPath, int], ...]
    num_processed: int
    live_tokens: int
    max_position: int
    seq: int = 0

    @property
    def num_streams(self) -> int:
        return len(self.fed)


@dataclass(frozen=True)
class SightRecord:
    """What ``stream`` saw of its siblings in step ``step`` (``siblings="shared"``).

    ``seen`` lists, in layout order (between its parent's prefix and its own tokens), each
    sibling whose tokens it saw and how many: the sibling's subtree tokens as they were
    before the step (a joined sibling's as they sit in the parent's view).
    """

    step: int
    stream: TaskPath
    seen: tuple[tuple[TaskPath, int], ...]


@dataclass(frozen=True)
class ToolCallRecord:
    """Tool call ``name`` of ``stream``: made in step ``call_step`` (its parameters were
    complete), its result fed in step ``result_step`` (None: the run ended first)."""

    stream: TaskPath
    name: str
    call_step: int
    result_step: int | None = None


@dataclass
class RunRecord:
    """What a run did; ``Result`` wraps it for users. Plain data: ``to_json()`` writes it,
    :func:`tim.engine.record_io.record_from_json` reads it back, checking every field.

    It is precise enough to rebuild every log-probability from it alone: the prompt, each
    stream's tokens and the positions they were written at, and every structural change of
    a view (a child's start, a join, an eviction) with the count of the view owner's tokens
    fed before it and a run-wide ``seq`` that orders changes made between the same tokens.
    """

    format: str
    pruning: str
    positions: str
    prompt_ids: list[int]
    streams: dict[TaskPath, StreamRecord] = field(default_factory=dict)
    evictions: list[EvictionRecord] = field(default_factory=list)
    forks: list[ForkRecord] = field(default_factory=list)
    joins: list[JoinRecord] = field(default_factory=list)
    timeline: list[StepRow] = field(default_factory=list)  # one row per step
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    siblings: str = "isolated"
    sights: list[SightRecord] = field(default_factory=list)  # shared siblings only
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
            {**asdict(e), "stream": list(e.stream), "list_owner": list(e.list_owner),
             "ranges": [[list(p), a, b] for p, a, b in e.ranges]}
            for e in self.evictions
        ]
        data["joins"] = [
            {**asdict(j), "parent": list(j.parent), "child": list(j.child)} for j in self.joins
        ]
        data["forks"] = [
            {"step": f.step, "parent": list(f.parent), "children": [list(c) for c in f.children]}
            for f in self.forks
        ]
        data["timeline"] = [
            {"step": r.step, "fed": [[list(p), n] for p, n in r.fed],
             "num_processed": r.num_processed, "live_tokens": r.live_tokens,
             "max_position": r.max_position, "seq": r.seq}
            for r in self.timeline
        ]
        data["sights"] = [
            {"step": s.step, "stream": list(s.stream), "seen": [[list(p), n] for p, n in s.seen]}
            for s in self.sights
        ]
        data["tool_calls"] = [{**asdict(t), "stream": list(t.stream)} for t in self.tool_calls]
        return data
