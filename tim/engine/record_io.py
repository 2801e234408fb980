"""Reading a run record back from JSON, checking every field a replay or a picture relies on.

A run file that was truncated or edited by hand fails here with a :class:`TraceError` that
names the field, never later with an ``IndexError`` deep inside a replay or a drawing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tim.errors import TraceError

if TYPE_CHECKING:
    from tim.engine.record import RunRecord

__all__ = ["record_from_json", "check_token_ids"]

_COUNTERS = ("num_steps", "num_generated", "num_forced", "num_prefilled", "num_reencoded",
             "num_evicted", "peak_live_tokens", "max_position", "max_concurrency")


def record_from_json(data: Any) -> RunRecord:
    """Build a :class:`~tim.engine.record.RunRecord` from ``RunRecord.to_json()`` output.

    Raises
    ------
    TraceError
        A field is missing, has the wrong type, or points outside the record (a range past
        its stream's tokens, a path no stream has, steps that go backwards).
    """
    from tim.engine.record import (
        EvictionRecord,
        ForkRecord,
        JoinRecord,
        RunRecord,
        SightRecord,
        StepRow,
        StreamRecord,
        ToolCallRecord,
    )

    top = _Reader(data, "record")
    streams: dict = {}
    for i, raw in enumerate(top.list("streams")):
        s = _Reader(raw, f"streams[{i}]")
        path = s.path("path")
        if path in streams:
            raise TraceError(f"streams[{i}].path: stream {list(path)} appears twice")
        rec = StreamRecord(
            path=path,
            token_ids=s.ints("token_ids"),
            position_ids=s.ints("position_ids"),
            forced=s.bools("forced"),
            logprobs=s.logprobs("logprobs"),
            text=s.str("text"),
            parent_tokens=s.int("parent_tokens"),
            parent_fed=s.int("parent_fed"),
            start_seq=s.int("start_seq"),
            error=s.optional_str("error"),
        )
        n = len(rec.token_ids)
        if len(rec.forced) != n or len(rec.logprobs) != n or len(rec.position_ids) > n:
            raise TraceError(
                f"streams[{i}]: {n} token_ids need as many forced and logprobs entries and at "
                f"most as many position_ids, got {len(rec.forced)}, {len(rec.logprobs)}, "
                f"{len(rec.position_ids)}")
        streams[path] = rec
    for path in streams:
        if path and path[:-1] not in streams:
            raise TraceError(f"streams: stream {list(path)} has no parent stream {list(path[:-1])}")
    if streams and () not in streams:
        raise TraceError("streams: there is no root stream (path [])")

    def stream_path(r: _Reader, key: str) -> tuple[int, ...]:
        path = r.path(key)
        if path not in streams:
            raise TraceError(f"{r.where}.{key}: no stream has path {list(path)}")
        return path

    def fed(r: _Reader, path: tuple[int, ...]) -> int:
        value = r.int("fed")
        if value > len(streams[path].token_ids):
            raise TraceError(f"{r.where}.fed: {value} is past stream {list(path)}'s "
                             f"{len(streams[path].token_ids)} tokens")
        return value

    evictions = []
    for i, raw in enumerate(top.list("evictions")):
        e = _Reader(raw, f"evictions[{i}]")
        stream = stream_path(e, "stream")
        ranges = []
        for j, item in enumerate(e.list("ranges")):
            where = f"evictions[{i}].ranges[{j}]"
            if not (isinstance(item, list) and len(item) == 3):
                raise TraceError(f"{where}: expected [path, start, end], got {item!r}"[:200])
            r = _Reader({"path": item[0], "start": item[1], "end": item[2]}, where)
            writer, start, end = stream_path(r, "path"), r.int("start"), r.int("end")
            if not start < end <= len(streams[writer].token_ids):
                raise TraceError(f"{where}: [{start}, {end}) is not a range of stream "
                                 f"{list(writer)}'s {len(streams[writer].token_ids)} tokens")
            ranges.append((writer, start, end))
        evictions.append(EvictionRecord(
            step=e.int("step"), stream=stream, list_owner=e.path("list_owner"),
            num_tokens=e.int("num_tokens"), num_freed_pages=e.int("num_freed_pages"),
            num_moved=e.int("num_moved"), deferred=e.bool("deferred"), ranges=tuple(ranges),
            fed=fed(e, stream), seq=e.int("seq"),
        ))
        if sum(b - a for _, a, b in ranges) != evictions[-1].num_tokens:
            raise TraceError(f"evictions[{i}]: num_tokens {evictions[-1].num_tokens} is not "
                             f"the length of its ranges")
    forks = []
    for i, raw in enumerate(top.list("forks")):
        f = _Reader(raw, f"forks[{i}]")
        children = tuple(stream_path(_Reader({"c": c}, f"forks[{i}].children[{j}]"), "c")
                         for j, c in enumerate(f.list("children")))
        forks.append(ForkRecord(f.int("step"), stream_path(f, "parent"), children))
    joins = []
    for i, raw in enumerate(top.list("joins")):
        j = _Reader(raw, f"joins[{i}]")
        parent = stream_path(j, "parent")
        joins.append(JoinRecord(
            step=j.int("step"), parent=parent, child=stream_path(j, "child"), fed=fed(j, parent),
            seq=j.int("seq"), delta=j.int("delta", signed=True), dropped=j.bool("dropped"),
        ))
    timeline = []
    for i, raw in enumerate(top.list("timeline")):
        r = _Reader(raw, f"timeline[{i}]")
        timeline.append(StepRow(step=r.int("step"), fed=counts(r, "fed", stream_path),
                                num_processed=r.int("num_processed"),
                                live_tokens=r.int("live_tokens"),
                                max_position=r.int("max_position"),
                                seq=r.int("seq") if "seq" in r.data else 0))
    sights = []
    for i, raw in enumerate(top.data.get("sights", [])):
        r = _Reader(raw, f"sights[{i}]")
        sights.append(SightRecord(r.int("step"), stream_path(r, "stream"),
                                  counts(r, "seen", stream_path)))
    tool_calls = []
    for i, raw in enumerate(top.list("tool_calls")):
        t = _Reader(raw, f"tool_calls[{i}]")
        result_step = t.data.get("result_step")
        tool_calls.append(ToolCallRecord(
            stream=stream_path(t, "stream"), name=t.str("name"), call_step=t.int("call_step"),
            result_step=None if result_step is None else t.int("result_step")))
    for name, items in (("evictions", evictions), ("forks", forks), ("joins", joins),
                        ("timeline", timeline), ("tool_calls", tool_calls), ("sights", sights)):
        steps = [item.call_step if name == "tool_calls" else item.step for item in items]
        if any(b < a for a, b in zip(steps, steps[1:], strict=False)):
            raise TraceError(f"{name}: steps go backwards ({steps[:8]}...)")
    record = RunRecord(
        format=top.str("format"), pruning=top.str("pruning"), positions=top.str("positions"),
        prompt_ids=top.ints("prompt_ids"), streams=streams, evictions=evictions, forks=forks,
        joins=joins, timeline=timeline, tool_calls=tool_calls, sights=sights,
        siblings=top.str("siblings") if "siblings" in top.data else "isolated",
        wall_time_s=top.float("wall_time_s"),
        error=top.optional_str("error"),
        **{name: top.int(name) for name in _COUNTERS},
    )
    return record


def counts(r: _Reader, key: str, stream_path) -> tuple:
    """``[[path, count], ...]`` at ``key`` -> ``((path, count), ...)``, every path a stream."""
    out = []
    for j, item in enumerate(r.list(key)):
        if not (isinstance(item, list) and len(item) == 2):
            raise TraceError(f"{r.where}.{key}[{j}]: expected [path, tokens], got {item!r}"[:200])
        f = _Reader({"path": item[0], "tokens": item[1]}, f"{r.where}.{key}[{j}]")
        out.append((stream_path(f, "path"), f.int("tokens")))
    return tuple(out)


def check_token_ids(record: RunRecord, vocab_size: int) -> None:
    """Raise :class:`TraceError` if a prompt or stream token id is not below ``vocab_size``."""
    for where, ids in [("prompt_ids", record.prompt_ids)] + [
            (f"stream {list(p)} token_ids", s.token_ids) for p, s in record.streams.items()]:
        bad = [t for t in ids if not 0 <= t < vocab_size]
        if bad:
            raise TraceError(f"{where}: token id {bad[0]} is outside the model's vocabulary "
                             f"of {vocab_size}; the run file was edited or is for another model")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Reader:
    """Typed field access on one JSON object; every failure names ``where.key``."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise TraceError(f"{where}: expected an object, got {type(data).__name__}")
        self.data, self.where = data, where

    def _get(self, key: str) -> Any:
        if key not in self.data:
            raise TraceError(f"{self.where}.{key}: missing")
        return self.data[key]

    def _bad(self, key: str, what: str, value: Any) -> TraceError:
        return TraceError(f"{self.where}.{key}: expected {what}, got {value!r}"[:300])

    def int(self, key: str, *, signed: bool = False) -> int:
        value = self._get(key)
        if not _is_int(value) or (value < 0 and not signed):
            raise self._bad(key, "an integer" if signed else "an integer >= 0", value)
        return value

    def float(self, key: str) -> float:
        value = self._get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self._bad(key, "a number", value)
        return float(value)

    def bool(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false", value)
        return value

    def str(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._bad(key, "a string", value)
        return value

    def optional_str(self, key: str) -> str | None:
        value = self._get(key)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a string or null", value)
        return value

    def list(self, key: str) -> list:
        value = self._get(key)
        if not isinstance(value, list):
            raise self._bad(key, "a list", value)
        return value

    def ints(self, key: str) -> list[int]:
        values = self.list(key)
        bad = next((v for v in values if not _is_int(v) or v < 0), None)
        if bad is not None:
            raise self._bad(key, "integers >= 0", bad)
        return list(values)

    def bools(self, key: str) -> list[bool]:
        values = self.list(key)
        if not all(isinstance(v, bool) for v in values):
            raise self._bad(key, "true/false values", next(v for v in values
                                                           if not isinstance(v, bool)))
        return list(values)

    def logprobs(self, key: str) -> list[float | None]:
        values = self.list(key)
        for v in values:
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or math.isnan(v) or v > 1e-6):
                raise self._bad(key, "log-probabilities (numbers <= 0) or null", v)
        return [None if v is None else float(v) for v in values]

    def path(self, key: str) -> tuple[int, ...]:
        value = self._get(key)
        if not isinstance(value, list) or not all(_is_int(i) and i >= 0 for i in value):
            raise self._bad(key, "a path (a list of integers >= 0)", value)
        return tuple(value)
