"""The fork/join plan of one run (``parallel`` format): queued children, their start under
``max_workers``, and joins in plan order.

It changes views (through the executor and the pruner) and the record, and returns what the
run must write next, :class:`Force` or :class:`Fail`; it never feeds, samples or parses::

    parent writes its plan, ']' fed      fork(parent, children): queued, newest fork first
    a worker is free                     start_children() -> Force(child, header)
    every child done, in plan order      try_join(parent)  -> Force(parent, join text)

With ``siblings="shared"`` it also says what each running child sees of its siblings
(:meth:`ForkJoin.visible`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tim.engine.executor import Executor, Visible
from tim.engine.pruner import Pruner
from tim.engine.record import ForkRecord, JoinRecord, RunRecord, SightRecord
from tim.engine.streams import Stream, StreamStatus
from tim.tree import TaskPath

__all__ = ["Force", "Fail", "ForkJoin", "join_rest"]


@dataclass(frozen=True)
class Force:
    stream: Stream
    text: str


@dataclass(frozen=True)
class Fail:
    stream: Stream
    message: str


class ForkJoin:
    """Children waiting for a worker, and the joins that bring them back (module docstring)."""

    def __init__(self, *, executor: Executor, pruner: Pruner, record: RunRecord, fmt: Any,
                 max_workers: int, next_seq: Callable[[], int],
                 emit: Callable[[str, TaskPath, Any], None]) -> None:
        self.executor, self.pruner, self.record, self.fmt = executor, pruner, record, fmt
        self.max_workers, self.next_seq, self.emit = max_workers, next_seq, emit
        self.waiting: list[Stream] = []  # queued children, newest fork first

    def fork(self, parent: Stream, children: list[Stream]) -> None:
        parent.status = StreamStatus.WAITING_CHILDREN
        parent.children.extend(children)
        # the newest fork's children go first (depth first): an open parent keeps its view
        # alive, so finishing deep work before starting new branches bounds live KV
        self.waiting[:0] = children
        self.record.forks.append(ForkRecord(self.record.num_steps, parent.path,
                                            tuple(c.path for c in children)))
        self.emit("fork", parent.path, [c.path for c in children])

    def start_children(self, streams: dict[TaskPath, Stream]) -> list[Force]:
        """Start queued children while workers are free. A child whose parent's view has a
        re-encode pending waits a step, so that it never starts on stale keys."""
        started = []
        for child in list(self.waiting):
            if sum(1 for s in streams.values() if s.is_active) >= self.max_workers:
                break
            parent = streams[child.path[:-1]]
            if parent.num_recompute:
                continue
            self.waiting.remove(child)
            child.view = self.executor.fork(parent.view)
            child.record.parent_tokens = self.executor.num_tokens(parent.view)
            child.record.parent_fed = parent.num_fed
            child.record.start_seq = self.next_seq()
            self.pruner.fork(parent.view.view_id, child.view.view_id)
            child.status = StreamStatus.RUNNING
            started.append(Force(child, self.fmt.child_header(child.title)))
        return started

    def try_join(self, parent: Stream, streams: dict[TaskPath, Stream]) -> list[Force | Fail]:
        """Join finished children in plan order (a failed one is dropped); after the last,
        the parent resumes with the format's join text. Joined children leave ``streams``."""
        while parent.num_joined < len(parent.children):
            child = parent.children[parent.num_joined]
            if parent.num_recompute or (child.status is StreamStatus.DONE and child.num_recompute):
                return []  # joined after the re-encode (its feed comes back here)
            if child.status is StreamStatus.DONE:
                self._join(parent, child)
            elif child.status is StreamStatus.FAILED:
                self.pruner.drop_view(child.view.view_id)
                self.executor.drop(child.view)
                self.record.joins.append(JoinRecord(
                    self.record.num_steps, parent.path, child.path, parent.num_fed,
                    self.next_seq(), dropped=True))
                self.pruner.fail_task(child.path)
            else:
                return []
            del streams[child.path]
            parent.num_joined += 1
        extra = parent.detok.text[parent.fork_offset:]  # text the fork token carried past ']'
        rest = join_rest(self.fmt.join_text(parent.depth), extra)
        if rest is None:
            return [Fail(parent, f"unexpected text {extra!r} after the plan's ']'")]
        parent.status = StreamStatus.RUNNING
        if parent.path:
            self.pruner.mark_close(parent.path, parent.path)
        return [Force(parent, rest)]

    def _join(self, parent: Stream, child: Stream) -> None:
        self.emit("join", child.path, None)
        self.pruner.join(child.view.view_id, parent.view.view_id)
        delta = self.executor.join(parent.view, child.view, first_own=child.record.parent_tokens)
        self.record.joins.append(JoinRecord(
            self.record.num_steps, parent.path, child.path, parent.num_fed, self.next_seq(),
            delta=delta))

    def visible(self, child: Stream, parent: Stream) -> tuple[Visible, ...]:
        """The sibling ranges ``child`` sees this step, in layout order, noted in the record.

        Siblings joined since ``child`` started sit in ``parent``'s view past the prefix
        ``child`` started on; every other started sibling's own tokens follow, in plan order.
        Each is taken as it is now, before this step appends anything: a token written in
        step t is seen from step t + 1.
        """
        start = child.record.parent_tokens
        ranges, seen = [], {}
        end = self.executor.num_tokens(parent.view)
        if end > start:
            ranges.append(Visible(parent.view, start, end))
            for writer, a, b in self.executor.sources(parent.view, start, end):
                sibling = writer[: len(child.path)]
                seen[sibling] = seen.get(sibling, 0) + b - a
        for other in parent.children[parent.num_joined:]:
            if other is child or other.view is None or other.status is StreamStatus.FAILED:
                continue
            first, end = other.record.parent_tokens, self.executor.num_tokens(other.view)
            if end > first:
                ranges.append(Visible(other.view, first, end))
                seen[other.path] = end - first
        if ranges:
            self.record.sights.append(SightRecord(self.record.num_steps + 1, child.path,
                                                  tuple(seen.items())))
        return tuple(ranges)


def join_rest(join_text: str, extra: str) -> str | None:
    r"""What to force after ``extra``, the text a fork token carried past the plan's ``]``,
    so that the stream reads as ``join_text`` up to whitespace between JSON tokens; None if
    ``extra`` does not start it. A tokenizer may merge ``],\n`` into one token.

    >>> join_rest(', "answer": "', ""), join_rest(', "answer": "', ",")
    (', "answer": "', ' "answer": "')
    >>> join_rest(', "answer": "', ",\n"), join_rest(', "answer": "', '}')
    ('"answer": "', None)
    """
    i = 0
    for ch in extra:
        if ch.isspace():
            continue
        while i < len(join_text) and join_text[i].isspace():
            i += 1
        if i == len(join_text) or join_text[i] != ch:
            return None
        i += 1
    rest = join_text[i:]
    return rest.lstrip() if extra[-1:].isspace() else rest
