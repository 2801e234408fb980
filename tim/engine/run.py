"""One request's run: its streams, what each feeds, sampling, and the parser's events.

The parts with a resource of their own live beside it (``forks``, ``pruner``,
``toolcalls``, ``executor``); what is left here is one state machine (a stream's queue,
status and parser move together on every token), which is why it runs past 300 lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from tim.engine.choosers import Chooser
from tim.engine.detok import Detokenizer
from tim.engine.executor import Executor, Feed
from tim.engine.forks import Fail, Force, ForkJoin
from tim.engine.pruner import Pruner
from tim.engine.record import (
    EvictionRecord,
    RunEvent,
    RunRecord,
    StepRow,
    StreamRecord,
)
from tim.engine.sampler import stream_generator
from tim.engine.streams import Stream, StreamStatus
from tim.engine.toolcalls import ToolCalls
from tim.errors import PositionWindowError, TimError
from tim.tree import EventKind, TaskPath

if TYPE_CHECKING:
    from tim.engine.engine import Engine
    from tim.tools import ToolRegistry

__all__ = ["Run"]

PROMPT = "prompt"  # the writer of the prompt's tokens (streams write under their paths)


class Run:
    """State of one run. The engine's config and model are shared; everything here is not."""

    def __init__(self, engine: Engine, prompt_ids: list[int], chooser: Chooser,
                 *, constrained: bool, on_event: Callable[[RunEvent], None] | None,
                 executor: Executor, max_new_tokens: int | None = None,
                 tools: ToolRegistry | None = None) -> None:
        if not prompt_ids:
            raise ValueError("prompt_ids is empty: a run needs at least one prompt token")
        self.max_position = engine.max_position
        if self.max_position is not None and len(prompt_ids) > self.max_position:
            raise PositionWindowError(
                f"the prompt has {len(prompt_ids)} tokens, more than max_position="
                f"{self.max_position} (its positions 0..{len(prompt_ids) - 1} must stay below "
                f"it): shorten the prompt, or raise max_position")
        cfg = engine.config
        self.max_new_tokens = max_new_tokens or cfg.max_new_tokens
        self.on_event = on_event
        self.grammars = engine.grammars if constrained else None  # replays follow their record
        self.engine, self.cfg, self.fmt, self.chooser = engine, cfg, engine.format, chooser
        if cfg.positions not in executor.support.positions:
            raise TimError(f"this executor does not support positions={cfg.positions!r}; it "
                           f"supports {sorted(executor.support.positions)}")
        if cfg.siblings == "shared" and not executor.support.shared_siblings:
            raise TimError("this executor cannot show siblings to each other; use "
                           "siblings='isolated'")
        spec = engine.spec  # None when a remote executor runs the model
        if cfg.siblings == "shared" and spec is not None and any(
                spec.layer_sliding_window(i) for i in range(spec.num_layers)):
            raise TimError("siblings='shared' needs full attention in every layer; this model "
                           "has sliding-window layers: use siblings='isolated'")
        self.executor = executor  # shared when requests decode together
        self.pruner = Pruner(cfg.rule, executor)
        self.record = RunRecord(cfg.format, cfg.pruning_name, cfg.positions, prompt_ids,
                                siblings=cfg.siblings)
        # streams not yet joined or dropped (the record keeps every stream): per-step scans
        # stay as short as the open frontier of the tree, however many tasks have finished
        self.streams: dict[TaskPath, Stream] = {}
        self.tools = ToolCalls(tools or engine.tools, timeout_s=engine.tool_timeout_s,
                               record=self.record)
        self.forks = ForkJoin(executor=executor, pruner=self.pruner, record=self.record,
                              fmt=self.fmt, max_workers=cfg.max_workers, next_seq=self._next_seq,
                              emit=self._emit)
        self.finished = False
        self.num_processed = 0
        self.num_changes = 0  # structural changes so far: the record's ``seq`` counter
        self.forward_seq = 0
        root = self._new_stream((), view=executor.open(prompt_ids, writer=PROMPT))
        root.num_recompute = len(prompt_ids)  # the prompt is "re-encoded" from nothing
        self.record.num_prefilled += len(prompt_ids)
        self.pruner.add_view(root.view.view_id)

    # ------------------------------------------------------------------ one step
    def prepare(self) -> list[tuple[Stream, Feed]]:
        """Tool results in, waiting children started; the streams to feed this step."""
        self._collect_tools()
        self._start_waiting_children()
        scheduled = self._schedule()
        self.forward_seq = self.num_changes  # the changes the step's forward comes after
        return scheduled

    def postprocess(self, fed: list[tuple[Stream, Feed, list[int]]],
                    logits: torch.Tensor) -> None:
        """After the forward: record where the executor placed each stream's tokens, sample
        the streams that asked for logits (``logits`` (B, V): their rows, in feed order),
        then forks and joins, pruning, and the step's row in the record."""
        for stream, _, placed in fed:
            stream.record.position_ids.extend(placed)
        sampling = [stream for stream, feed, _ in fed if feed.wants_logits]
        # The budget holds exactly: a step that reaches it samples for the first streams
        # only, and the run ends with it (``_note_step``).
        left = self.max_new_tokens - self.record.num_generated
        if len(sampling) > left:
            sampling, logits = sampling[:max(left, 0)], logits[:max(left, 0)]
        if sampling:
            masks = None if self.grammars is None else self.grammars.masks(
                [s.grammar for s in sampling])
            picked = self.chooser.choose(sampling, logits, masks)
            for stream, (token, logprob) in zip(sampling, picked, strict=True):
                self._take_sampled(stream, token, logprob)
        self._after_flushes([stream for stream, _, _ in fed])
        self._prune()
        self._note_step([(stream, len(feed.token_ids) + feed.num_recompute)
                         for stream, feed, _ in fed])

    def _schedule(self) -> list[tuple[Stream, Feed]]:
        """Streams with tokens to feed, and any view with a re-encode pending: a waiting
        parent's or a finished child's too, so that no fork or join ever sees stale keys.
        Nothing when one of them would reach the window: the run ends before the forward."""
        ready = []
        for stream in self.streams.values():
            stale = (stream.num_recompute and stream.status is not StreamStatus.FAILED
                     and stream.view is not None and stream.view.is_alive)
            if stale or (stream.queue and stream.status in (StreamStatus.RUNNING,
                                                            StreamStatus.FLUSHING)):
                ready.append(stream)
        for stream in ready:
            error = self._window_error(stream)
            # The whole run ends, not the one stream: a parent would conclude without the
            # dropped child, and its own positions (and its siblings') are as near the window.
            if error is not None:
                self.record.error = f"{type(error).__name__}: {error}"
                self.finished = True
                self._emit("failed", stream.path, self.record.error)
                return []
        return [(stream, self._feed(stream)) for stream in ready]

    def _num_to_feed(self, stream: Stream) -> int:
        """New tokens the stream feeds this step: its queue, a prefill chunk at most."""
        feeding = stream.status in (StreamStatus.RUNNING, StreamStatus.FLUSHING)
        return min(len(stream.queue), self.cfg.prefill_chunk) if feeding else 0

    def _window_error(self, stream: Stream) -> PositionWindowError | None:
        """The error if the stream's next feed would reach ``max_position``, else None.

        This is the one place positions are checked against the window, before the forward
        that would use them. The executor puts a feed's new tokens right after the view's
        largest position; a re-encode stays at positions the view holds, all below::

            view positions  0 1 2 ... 509 | new 510 511 512     max_position 512: stop

        A join moves no query: under ``keep`` it may rotate a child's keys past the window,
        and then the parent's next feed, past them, stops the run before any forward.
        """
        num_new = self._num_to_feed(stream)
        if self.max_position is None or not num_new:
            return None
        first = self.executor.live([stream.view])[1] + 1
        last = first + num_new - 1
        if last < self.max_position:
            return None
        at = f"position {first}" if num_new == 1 else f"positions {first}..{last}"
        todo = ("use positions='shift' or 'reencode' with a pruning rule, whose evictions "
                "bring positions back" if self.cfg.positions == "keep" else
                f"under positions={self.cfg.positions!r} its view's tokens fill the window: "
                f"use a pruning rule that frees more")
        return PositionWindowError(
            f"stream {list(stream.path)} would be fed at {at}, at or past max_position="
            f"{self.max_position} (the context window): {todo}, or raise max_position")

    def _feed(self, stream: Stream) -> Feed:
        """What the stream feeds this step: its next queued tokens (a prefill chunk at most)
        after any pending re-encode; list anchors named by the tokens they fall on."""
        take = stream.queue[: self._num_to_feed(stream)]
        del stream.queue[: len(take)]
        first = stream.num_fed
        self.pruner.on_feed(stream.path, stream.view, first, len(take))
        stream.num_fed += len(take)
        if stream.record.token_ids:  # (the root's first feed is the prompt, not a re-encode)
            self.record.num_reencoded += stream.num_recompute
        if len(take) > 1:
            self.record.num_prefilled += len(take) - 1
        visible, parent = (), self.streams.get(stream.path[:-1]) if stream.path else None
        if self.cfg.siblings == "shared" and take and parent is not None:
            visible = self.forks.visible(stream, parent)
        feed = Feed(stream.view, stream.path, first, tuple(take), stream.num_recompute,
                    wants_logits=stream.status is StreamStatus.RUNNING and not stream.queue,
                    prefix=stream.record.parent_tokens, visible=visible)
        stream.num_recompute = 0
        return feed

    # ------------------------------------------------------------------ tokens -> events
    def _take_sampled(self, stream: Stream, token: int, logprob: float) -> None:
        if stream.grammar is not None and not stream.grammar.consume([token]):
            self._fail(stream, f"the grammar rejected sampled token {token}: "
                               f"{stream.grammar.error}")
            return
        rec = stream.record
        rec.token_ids.append(token)
        rec.forced.append(False)
        rec.logprobs.append(logprob)
        stream.queue.append(token)
        self.record.num_generated += 1
        self._read(stream, stream.detok.push(token))

    def _force(self, stream: Stream, text: str) -> None:
        """Queue ``text`` as forced tokens and let the parser read it."""
        ids = self.engine.tokenizer.encode(text, add_special_tokens=False)
        if stream.grammar is not None and not stream.grammar.consume(ids):
            self._fail(stream, f"the grammar rejected forced text {text!r}: "
                               f"{stream.grammar.error}")
            return
        for token in ids:
            stream.record.token_ids.append(token)
            stream.record.forced.append(True)
            stream.record.logprobs.append(None)
            stream.queue.append(token)
            self._read(stream, stream.detok.push(token))
        self.record.num_forced += len(ids)

    def _read(self, stream: Stream, text: str) -> None:
        stream.record.text = stream.detok.text
        if not text or stream.status is StreamStatus.FAILED:
            return
        self._emit("token", stream.path, text)
        for event in stream.parser.feed(text):
            self._handle(stream, event)

    def _handle(self, stream: Stream, event) -> None:
        kind, path = event.kind, event.path
        if kind is EventKind.TASK_OPENED:
            self.pruner.open_task(path)
            self._emit("task_opened", path)
        elif kind is EventKind.SUBTASKS_OPENED and path:
            self.pruner.open_list(path, stream.view.view_id)
            if not self.fmt.forks:
                self.pruner.mark_open(stream.path, path)
        elif kind is EventKind.PLAN_ITEM:
            stream.plan.append(event.value)
        elif kind is EventKind.SUBTASKS_CLOSED and self.fmt.forks and path == stream.path:
            stream.fork_offset = event.offset
            stream.status = StreamStatus.FLUSHING
            if path:
                self.pruner.mark_open(stream.path, path)
        elif kind is EventKind.SUBTASKS_CLOSED and path:
            self.pruner.mark_close(stream.path, path)
        elif kind is EventKind.TASK_CLOSED:
            self.pruner.finish_task(path)
            self._emit("task_closed", path)
            if self.fmt.forks and path == stream.path:
                stream.status = StreamStatus.FLUSHING
        elif kind is EventKind.TOOLUSE_READY:
            stream.status = StreamStatus.WAITING_TOOL
            self.tools.submit(stream.path, event.tool_name, event.value, offset=event.offset)
            self._emit("tool_called", path, {"name": event.tool_name, "parameters": event.value})
        elif kind is EventKind.DOCUMENT_CLOSED and not path:
            stream.status = StreamStatus.DONE
            self.finished = True
        elif kind is EventKind.MALFORMED:
            self._fail(stream, f"malformed output at offset {event.offset}: expected "
                               f"{event.expected}, found {event.value}")

    def _emit(self, kind: str, stream: TaskPath, detail: Any = None) -> None:
        if self.on_event is not None:
            self.on_event(RunEvent(self.record.num_steps, kind, stream, detail))

    def _fail(self, stream: Stream, message: str) -> None:
        """End one stream with a located error; the rest of the tree goes on."""
        stream.fail(message)
        self._emit("failed", stream.path, stream.record.error)
        if not stream.path:
            self.record.error = stream.record.error
            self.finished = True
            return
        parent = self.streams[stream.path[:-1]]
        if parent.status is StreamStatus.WAITING_CHILDREN:
            self._try_join(parent)

    # ------------------------------------------------------------------ fork / join
    def _after_flushes(self, fed: list[Stream]) -> None:
        for stream in fed:
            if stream.status is StreamStatus.WAITING_CHILDREN:  # its re-encode is done
                self._try_join(stream)
            elif stream.status is StreamStatus.DONE and stream.path:  # likewise
                self._try_join(self.streams[stream.path[:-1]])
            elif stream.status is not StreamStatus.FLUSHING or stream.queue:
                continue
            elif stream.plan and stream.num_joined == 0 and not stream.children:
                self.forks.fork(stream, [
                    self._new_stream((*stream.path, i), title=title, status=StreamStatus.QUEUED)
                    for i, title in enumerate(stream.plan)])
                self._start_waiting_children()
            else:
                stream.status = StreamStatus.DONE
                self._try_join(self.streams[stream.path[:-1]])

    def _start_waiting_children(self) -> None:
        self._apply(self.forks.start_children(self.streams))

    def _try_join(self, parent: Stream) -> None:
        self._apply(self.forks.try_join(parent, self.streams))

    def _apply(self, outcomes: list[Force | Fail]) -> None:
        for outcome in outcomes:
            if isinstance(outcome, Force):
                self._force(outcome.stream, outcome.text)
            else:
                self._fail(outcome.stream, outcome.message)

    # ------------------------------------------------------------------ tools
    def _collect_tools(self) -> None:
        """Force each returned result into its stream; it is fed in the step being prepared."""
        for ret in self.tools.collect():
            stream = self.streams[ret.stream]
            self._emit("tool_returned", stream.path, ret.result_json)
            text = self.fmt.tool_result_text(ret.result_json)
            extra = stream.detok.text[ret.offset:]  # what the '}' token carried past it
            stream.status = StreamStatus.RUNNING
            if not text.startswith(extra):
                self._fail(stream, f"unexpected text {extra!r} after the tool parameters")
                continue
            self._force(stream, text[len(extra):])

    def wait_or_stop(self, *, block: bool) -> bool:
        """Nothing of this run was fed: wait for a tool result when ``block`` (the executor
        always resolves calls, timeouts included), or stop a run that cannot go on. True
        when it waited."""
        if self.finished:
            return False
        if not self.tools.pending():
            self.record.error = self.record.error or "the run stalled: no stream can make progress"
            self.finished = True
            return False
        if block:
            self.tools.wait()
        return block

    # ------------------------------------------------------------------ pruning
    def _prune(self) -> None:
        """Evict what the rule selects now; record and announce each eviction."""
        streams = {s.view.view_id: s for s in self.streams.values()
                   if s.view is not None and s.view.is_alive}
        for ev in self.pruner.prune({vid: stream.view for vid, stream in streams.items()}):
            stream, result = streams[ev.view.view_id], ev.result
            if result.reencode is not None:
                stream.num_recompute = max(stream.num_recompute,
                                           self.executor.num_tokens(stream.view) - ev.start)
            self.record.num_evicted += result.num_evicted
            self._emit("pruned", stream.path, {"list_owner": ev.list_owner,
                                               "num_tokens": result.num_evicted})
            self.record.evictions.append(EvictionRecord(
                step=self.record.num_steps, stream=stream.path, list_owner=ev.list_owner,
                num_tokens=result.num_evicted, num_freed_pages=result.num_freed_pages,
                num_moved=result.num_moved, deferred=result.deferred, ranges=ev.ranges,
                fed=stream.num_fed, seq=self._next_seq()))

    # ------------------------------------------------------------------ bookkeeping
    def _new_stream(self, path: TaskPath, *, view=None, title=None,
                    status: StreamStatus = StreamStatus.RUNNING) -> Stream:
        stream = Stream(
            path=path,
            parser=self.fmt.parser(path),
            detok=Detokenizer(self.engine.tokenizer),
            record=StreamRecord(path),
            rng=stream_generator(self.chooser.seed, repr(path)),
            status=status,
            view=view,
            title=title,
            grammar=self.grammars.for_stream(len(path)) if self.grammars else None,
        )
        self.streams[path] = stream
        self.record.streams[path] = stream.record
        return stream

    def _next_seq(self) -> int:
        self.num_changes += 1
        return self.num_changes - 1

    def _note_step(self, fed: list[tuple[Stream, int]]) -> None:
        rec = self.record
        rec.num_steps += 1
        self.num_processed += sum(n for _, n in fed)
        rec.max_concurrency = max(rec.max_concurrency, len(fed))
        live, max_position = self._live_tokens()
        rec.peak_live_tokens = max(rec.peak_live_tokens, live)
        rec.max_position = max(rec.max_position, max_position)
        rec.timeline.append(StepRow(rec.num_steps, tuple((s.path, n) for s, n in fed),
                                    self.num_processed, live, max_position, self.forward_seq))
        if rec.num_generated >= self.max_new_tokens and not self.finished:
            rec.error = f"max_new_tokens={self.max_new_tokens} reached before the answer"
            self.finished = True

    def _live_tokens(self) -> tuple[int, int]:
        """(distinct KV tokens this run's live views hold, their largest position id)."""
        return self.executor.live([s.view for s in self.streams.values()
                                   if s.view is not None and s.view.is_alive])

    def drop_views(self) -> None:
        """Free every view this run holds."""
        self.tools.shutdown()
        for stream in self.streams.values():
            if stream.view is not None and stream.view.is_alive:
                self.executor.drop(stream.view)
