"""Pruning rules: which finished subtask lists leave the KV cache (pure Python, no torch).

- :mod:`tim.pruning.state`: frozen snapshots (:class:`PruneState`) of tasks, lists, views.
- :mod:`tim.pruning.rules`: the :class:`Rule` protocol, ``none`` and ``buffer:k`` (a list
  counts at its ``]``, or with ``buffer:k@conclusion`` once its owner has concluded), and
  :func:`get_rule` for spec strings.
- :mod:`tim.pruning.plan`: :func:`plan_evictions`, which checks a rule's choice and defers
  lists that several views share.
- :mod:`tim.pruning.tracker`: :class:`PruneTracker`, the stateful shell the engine drives.
- :mod:`tim.pruning.records`: the tracker's mutable task and list records, and the
  read-only checks on them (eviction preconditions, invariants, the snapshot).

See ``docs/pruning.md`` for the rule and a picture of which tokens survive.
"""

from tim.pruning.plan import EvictionPlan, plan_evictions, split_selection
from tim.pruning.rules import BufferRule, NoPruning, Rule, get_rule
from tim.pruning.state import ListId, ListInfo, PruneState, PruneStatus, TaskId, TaskInfo, ViewId
from tim.pruning.tracker import PruneTracker

__all__ = [
    "BufferRule",
    "EvictionPlan",
    "ListId",
    "ListInfo",
    "NoPruning",
    "PruneState",
    "PruneStatus",
    "PruneTracker",
    "Rule",
    "TaskId",
    "TaskInfo",
    "ViewId",
    "get_rule",
    "plan_evictions",
    "split_selection",
]
