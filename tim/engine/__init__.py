"""The engine: the orchestrator of one tree (``run``: formats, grammar, pruning, tools, the
fork/join plan, scheduling) over an executor that holds the KV and runs the model.

::

    engine.py     Engine: the model, config and tools; run(), run_many(), the step
    run.py        Run: one request's streams, their feeds, sampling and parsed events
    forks.py      ForkJoin: queued children, their start under max_workers, joins
    pruner.py     Pruner: tasks, lists, anchors and evictions (one owner)
    toolcalls.py  ToolCalls: calls in flight, their steps in the record
    executor.py   Executor protocol; PagedExecutor, the local paged-KV one
    batch.py      packing one forward (pure);  runner.py  the HF forward over the store
    record.py     what a run did (plain data);  record_io.py  reading it back, checked

Names load on first use, so ``import tim.engine.record`` stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Engine", "EngineConfig", "Executor", "PagedExecutor", "ExecutorSupport", "Feed",
           "RunRecord", "RunEvent", "SamplingParams"]

_LAZY = {
    "Engine": "tim.engine.engine",
    "EngineConfig": "tim.engine.config",
    "Executor": "tim.engine.executor",
    "PagedExecutor": "tim.engine.executor",
    "ExecutorSupport": "tim.engine.executor",
    "Feed": "tim.engine.executor",
    "RunRecord": "tim.engine.record",
    "RunEvent": "tim.engine.record",
    "SamplingParams": "tim.engine.sampler",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tim.engine' has no attribute {name!r}")
