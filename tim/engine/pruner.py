"""The pruner: the one owner of what pruning knows and does during a run.

It follows the tree (tasks, subtask lists, views) in a :class:`~tim.pruning.PruneTracker`,
knows where each list lies in its view (two anchor tokens, named by writer and index), and
evicts what the rule selects through the executor. A list counts as evicted only once the
executor has removed it; a list the executor defers (a span still shared) stays live in
the tracker and is planned again at the next prune::

    "subtasks": [ {...}, {...} ]          thread2: the list's inner tokens
               ^                ^
          before anchor    after anchor    (the tokens carrying '[' and ']' are kept)

The rule runs (``due``) at the end of every step in which something happened that can change
its answer:

- a list completes (``close_list``) when the token carrying its ``]`` is *fed* (thread2;
  in ``parallel``, with the feed of the forced ``, "conclusion": "`` after the join), so
  ``buffer:k`` evicts after those tokens' K/V is written: under ``buffer:0`` the owner
  writes its conclusion's text without the list;
- a task finishes (``finish_task``) when the parser reads the ``}`` closing the task's
  object, i.e. as soon as the token carrying that ``}`` is *sampled*. So under
  ``buffer:k@conclusion`` the list leaves before that token is fed: every token of the
  conclusion, up to its closing quote, was written with the list in view; the ``}`` token
  was sampled with it, and its own K/V, like everything after, is computed without it;
- a join or a dropped view (sharing may end), and a failed task (its list completes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tim.cache import EvictResult
from tim.engine.executor import Executor
from tim.pruning import PruneTracker, Rule
from tim.pruning.state import PruneStatus
from tim.tree import TaskPath

__all__ = ["Eviction", "ListAnchors", "Pruner"]

TokenId = tuple[Any, int]  # (writer stream path, index in its tokens): stable under evictions


@dataclass
class ListAnchors:
    """The tokens just before and just after a subtask list's inner tokens.

    The tokens holding ``[`` and ``]`` are kept (they may carry other text); what lies
    strictly between the two is the prunable list. Anchors name tokens by writer and index,
    so evictions elsewhere in the view never move them.
    """

    before: TokenId | None = None
    after: TokenId | None = None


@dataclass(frozen=True)
class Eviction:
    """One list removed from one view: the executor's result and the tokens that left."""

    view: Any
    list_owner: TaskPath
    start: int  # view index where the removed run began
    ranges: tuple[tuple[Any, int, int], ...]  # (writer, start, end) of what left
    result: EvictResult


class Pruner:
    """Tasks, lists, anchors and evictions of one run (see the module docstring)."""

    def __init__(self, rule: Rule, executor: Executor) -> None:
        self.tracker = PruneTracker(rule)
        self.executor = executor
        self.due = False  # the tree changed in a way the rule can see
        self._task_ids: dict[TaskPath, int] = {}
        self._list_ids: dict[TaskPath, int] = {}
        self._anchors: dict[int, ListAnchors] = {}
        self._owners: dict[int, TaskPath] = {}
        self._requests: dict[TaskPath, list[tuple[str, TaskPath]]] = {}  # per feeding stream

    # ---------------------------------------------------------------- the tree
    def open_task(self, path: TaskPath) -> None:
        parent_list = self._list_ids.get(path[:-1]) if len(path) > 1 else None
        self._task_ids[path] = self.tracker.open_task(parent_list=parent_list)

    def finish_task(self, path: TaskPath) -> None:
        """The task's ``}`` was read: under ``buffer:k@conclusion`` its list now counts."""
        self.tracker.finish_task(self._task_ids[path])
        self.due = True

    def fail_task(self, path: TaskPath) -> None:
        """A task ended with an error; its open list completes with it."""
        if path not in self._task_ids:
            return
        try:
            self.tracker.finish_task(self._task_ids[path], PruneStatus.FAILED)
            self.due = True
        except ValueError:
            pass  # already finished, or items of its list still run: they fail on their own

    def open_list(self, path: TaskPath, view_id: int) -> None:
        list_id = self.tracker.open_list(self._task_ids[path], view=view_id)
        self._list_ids[path] = list_id
        self._anchors[list_id] = ListAnchors()
        self._owners[list_id] = path

    def mark_open(self, stream: TaskPath, list_path: TaskPath) -> None:
        """``list_path``'s list starts after the last token ``stream``'s next feed places."""
        self._requests.setdefault(stream, []).append(("open", list_path))

    def mark_close(self, stream: TaskPath, list_path: TaskPath) -> None:
        """The list ends before the first token of ``stream``'s next feed (the one with ']')."""
        self._requests.setdefault(stream, []).append(("close", list_path))

    # ---------------------------------------------------------------- views
    def add_view(self, view_id: int) -> None:
        self.tracker.add_view(view_id)

    def fork(self, parent_view: int, child_view: int) -> None:
        self.tracker.fork(parent_view, child_view)

    def join(self, child_view: int, parent_view: int) -> None:
        self.tracker.join(child_view, parent_view)
        self.due = True

    def drop_view(self, view_id: int) -> None:
        self.tracker.drop_view(view_id)
        self.due = True

    def on_feed(self, stream: TaskPath, view: Any, first: int, num_new: int) -> None:
        """``stream`` feeds its tokens ``first .. first + num_new - 1`` into ``view`` (none:
        it only re-encodes): anchor the lists its parser opened or closed since its last
        feed."""
        kept = []
        for kind, list_path in self._requests.pop(stream, []):
            anchors = self._anchors[self._list_ids[list_path]]
            if kind == "open":
                anchors.before = (stream, first + num_new - 1) if num_new else \
                    self._last_token(view)
            elif num_new:
                anchors.after = (stream, first)
                self.tracker.close_list(self._list_ids[list_path])
                self.due = True
            else:
                kept.append((kind, list_path))  # a close waits for a feed with tokens
        if kept:
            self._requests[stream] = kept

    def _last_token(self, view: Any) -> TokenId:
        n = self.executor.num_tokens(view)
        ((writer, _, end),) = self.executor.sources(view, n - 1, n)
        return writer, end - 1

    # ---------------------------------------------------------------- the rule
    def prune(self, views: dict[int, Any]) -> list[Eviction]:
        """Run the rule if the tree changed; evict what it selects from ``views`` (live
        views by id) and return what left, in the order it left."""
        if not self.due:
            return []
        self.due = False
        done = []
        for plan in self.tracker.plan():
            for list_id in plan.now:
                eviction = self._evict(views[plan.view], list_id)
                if eviction is None or not eviction.result.deferred:
                    self.tracker.mark_evicted(plan.view, list_id)
                if eviction is not None:
                    done.append(eviction)
        return done

    def _evict(self, view: Any, list_id: int) -> Eviction | None:
        """Remove one list's inner tokens; None when it has none to remove."""
        anchors = self._anchors[list_id]
        if anchors.before is None or anchors.after is None:
            return None  # a failed task's list, never closed: its view is being dropped
        before = self.executor.index_of(view, *anchors.before)
        after = self.executor.index_of(view, *anchors.after)
        assert before is not None and after is not None, "a list's anchors left its view"
        start, end = before + 1, after
        if end <= start:
            return None
        ranges = tuple(self.executor.sources(view, start, end))
        assert all(isinstance(w, tuple) for w, _, _ in ranges), "a rule evicted the prompt"
        result = self.executor.evict(view, start, end)
        return Eviction(view, self._owners[list_id], start, () if result.deferred else ranges,
                        result)
