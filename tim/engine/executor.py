"""The executor seam: what the orchestrator asks of whatever holds the KV and runs the model.

The orchestrator (:class:`~tim.engine.run.Run`: formats, grammar, pruning rule, tools, the
fork/join plan, scheduling) decides *what* to decode. An executor turns that into KV state
and logits. It sees views (one per worker) as opaque handles and tokens by name: a token is
``(writer, index)``, the ``index``-th token its writer stream fed (the prompt's writer is
``"prompt"``), which evictions elsewhere never change::

    open(prompt) -> root view            fork(view) -> child view (shares, never copies)
    step(feeds) -> positions, logits     one forward: append each feed's tokens, re-encode
    join(parent, child, first_own)       child's own tokens to the parent's end; -> delta
    evict(view, start, end)              drop view tokens [start, end), then the position
                                         policy moves the rest (shift / reencode / keep)
    index_of / sources / num_tokens      where named tokens sit in a view, and back
    drop(view), live(views), close()     free, measure, check nothing leaked

:class:`PagedExecutor` is the local one: the paged KV store of :mod:`tim.cache` and the HF
model run through :mod:`tim.kernels`. A remote OpenAI-compatible engine or llama.cpp fits
the same protocol; each says what it supports in :class:`ExecutorSupport`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch

from tim.cache import EvictResult
from tim.engine.batch import WorkerInput, build_batch
from tim.engine.cascade_cost import CascadeCost
from tim.engine.runner import ModelRunner
from tim.engine.sharing import Visible
from tim.errors import TimError

__all__ = ["ExecutorSupport", "Feed", "StepOutput", "Executor", "PagedExecutor", "Visible"]


@dataclass(frozen=True)
class ExecutorSupport:
    """What an executor can do: position policies, sibling visibility, cascade attention."""

    positions: frozenset[str]
    shared_siblings: bool = False
    cascade: bool = False


@dataclass(frozen=True)
class Feed:
    """What one worker feeds in a step.

    ``token_ids`` (maybe empty) are the writer's tokens ``first_index, first_index + 1,
    ...`` to append; before them, the last ``num_recompute`` tokens already in the view are
    re-encoded at their current positions (after a ``reencode`` eviction).

    A worker that sees its siblings (``siblings="shared"``) names their tokens in ``visible``,
    ranges of other views in layout order, as they were before this step; its view's first
    ``prefix`` tokens are the parent's, the rest its own (:mod:`tim.engine.sharing`).
    """

    view: Any
    writer: Hashable
    first_index: int
    token_ids: tuple[int, ...]
    num_recompute: int = 0
    wants_logits: bool = True
    prefix: int = 0
    visible: tuple[Visible, ...] = ()


class StepOutput(NamedTuple):
    """``positions[i]``: the position ids feed ``i``'s new tokens got; ``logits``:
    ``(B_logits, V)`` fp32, one row per feed with ``wants_logits``, in feed order."""

    positions: list[list[int]]
    logits: torch.Tensor


class Executor(Protocol):
    support: ExecutorSupport

    def open(self, prompt_ids: Sequence[int], *, writer: Hashable) -> Any: ...
    def fork(self, view: Any) -> Any: ...
    def join(self, parent: Any, child: Any, *, first_own: int) -> int: ...
    def drop(self, view: Any) -> None: ...
    def evict(self, view: Any, start: int, end: int) -> EvictResult: ...
    def step(self, feeds: Sequence[Feed]) -> StepOutput: ...
    def num_tokens(self, view: Any) -> int: ...
    def index_of(self, view: Any, writer: Hashable, index: int) -> int | None: ...
    def sources(self, view: Any, start: int, end: int) -> list[tuple[Hashable, int, int]]: ...
    def live(self, views: Sequence[Any]) -> tuple[int, int]: ...
    def close(self) -> None: ...


class PagedExecutor:
    """The local executor: paged KV (:class:`~tim.cache.KVStore`) and the HF model.

    Parameters
    ----------
    runner : ModelRunner
        The model and the KV store it writes.
    cascade : CascadeCost or None
        When siblings' shared prefix is attended once (cascade groups); None: never.
    """

    def __init__(self, runner: ModelRunner, *, cascade: CascadeCost | None) -> None:
        self.runner, self.store = runner, runner.store
        self.cascade = cascade
        self.support = ExecutorSupport(positions=frozenset({"shift", "reencode", "keep"}),
                                       shared_siblings=True, cascade=cascade is not None)

    # ---------------------------------------------------------------- views
    def open(self, prompt_ids: Sequence[int], *, writer: Hashable) -> Any:
        view = self.store.new_view()
        self.store.append(view, range(len(prompt_ids)), token_ids=prompt_ids, label="prompt",
                          source=(writer, 0))
        self.store.seal(view)
        return view

    def fork(self, view: Any) -> Any:
        return self.store.fork(view)

    def join(self, parent: Any, child: Any, *, first_own: int) -> int:
        """Move ``child``'s tokens past its first ``first_own`` (the parent's view it started
        on) to the end of ``parent``, shifted to continue its positions; return the shift
        (0 when the child brought nothing)."""
        old_len, next_position = parent.num_tokens, parent.next_position
        first = int(child.position_ids()[first_own]) if len(child) > first_own else next_position
        self.store.join(parent, child)
        if parent.num_tokens == old_len:
            return 0
        delta = next_position - first
        if delta:  # siblings decoded concurrently start at the same position: end to end
            self.store.shift(parent, old_len, delta)
        return delta

    def drop(self, view: Any) -> None:
        self.store.drop(view)

    def evict(self, view: Any, start: int, end: int) -> EvictResult:
        return self.store.evict(view, start, end)

    def num_tokens(self, view: Any) -> int:
        return view.num_tokens

    def index_of(self, view: Any, writer: Hashable, index: int) -> int | None:
        return view.index_of(writer, index)

    def sources(self, view: Any, start: int, end: int) -> list[tuple[Hashable, int, int]]:
        return view.sources(start, end)

    # ---------------------------------------------------------------- one forward
    def step(self, feeds: Sequence[Feed]) -> StepOutput:
        """Append every feed's tokens at the view's next positions, then run one packed
        forward over all of them (re-encoded tokens included)."""
        inputs, positions = [], []
        for feed in feeds:
            view, new = feed.view, list(feed.token_ids)
            start = view.next_position
            placed = list(range(start, start + len(new)))
            if new:
                self.store.append(view, placed, token_ids=new, label="stream",
                                  source=(feed.writer, feed.first_index))
            positions.append(placed)
            n = len(new) + feed.num_recompute
            inputs.append(WorkerInput(view=view, token_ids=tuple(view.token_ids()[-n:].tolist()),
                                      position_ids=tuple(view.position_ids()[-n:].tolist()),
                                      wants_logits=feed.wants_logits, prefix=feed.prefix,
                                      visible=feed.visible))
        batch = build_batch(inputs, cascade=self.cascade, block_tables=True)
        logits = self.runner.run(batch)  # (B_logits, V), rows in batch.sampling order
        order = sorted(range(len(batch.sampling)), key=lambda row: batch.sampling[row])
        return StepOutput(positions, logits[order])

    # ---------------------------------------------------------------- memory
    def live(self, views: Sequence[Any]) -> tuple[int, int]:
        """(distinct KV tokens ``views`` hold, their largest position id)."""
        spans, max_position = {}, 0
        for view in views:
            spans.update((id(span), len(span)) for span in view.spans)
            max_position = max(max_position, view.max_position or 0)
        return sum(spans.values()), max_position

    def close(self) -> None:
        """Every page back in the pool, every invariant intact; raise otherwise."""
        self.store.check_integrity()
        if self.store.views or self.store.pool.num_free_pages != self.store.pool.num_pages:
            raise TimError("page leak: pages still in use after every view was dropped")
