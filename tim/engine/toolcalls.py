"""Tool calls in flight for one run: made when a stream's parameters are complete, collected
when they return, and kept in the record with the step each was made and answered in."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, replace
from typing import Any

from tim.engine.record import RunRecord, ToolCallRecord
from tim.tools import ToolExecutor, ToolRegistry
from tim.tree import TaskPath

__all__ = ["ToolReturn", "ToolCalls"]


@dataclass(frozen=True)
class ToolReturn:
    """A finished call of ``stream``: its JSON result, and the text offset just after the
    parameters' closing ``}`` (the result is written from there)."""

    stream: TaskPath
    result_json: str
    offset: int


@dataclass
class _Call:
    future: Future
    offset: int
    index: int  # in record.tool_calls


class ToolCalls:
    """At most one call per stream at a time, run in a thread pool with a timeout."""

    def __init__(self, registry: ToolRegistry, *, timeout_s: float, record: RunRecord) -> None:
        self._executor = ToolExecutor(registry, timeout_s=timeout_s)
        self._record = record
        self._calls: dict[TaskPath, _Call] = {}

    def submit(self, stream: TaskPath, name: str, parameters: Any, *, offset: int) -> None:
        """Start ``name(**parameters)`` for ``stream``, in the step being decoded."""
        index = len(self._record.tool_calls)
        self._record.tool_calls.append(ToolCallRecord(stream, name, self._record.num_steps + 1))
        self._calls[stream] = _Call(self._executor.submit(name, parameters), offset, index)

    def collect(self) -> list[ToolReturn]:
        """The calls that returned (errors and timeouts included); their results are fed in
        the step being prepared."""
        done = [path for path, call in self._calls.items() if call.future.done()]
        returns = []
        for path in done:
            call = self._calls.pop(path)
            calls = self._record.tool_calls
            calls[call.index] = replace(calls[call.index], result_step=self._record.num_steps + 1)
            returns.append(ToolReturn(path, call.future.result().result_json, call.offset))
        return returns

    def pending(self) -> bool:
        return bool(self._calls)

    def wait(self) -> None:
        """Block until one call returns (each does: the executor times calls out)."""
        wait_futures([c.future for c in self._calls.values()], return_when=FIRST_COMPLETED)

    def shutdown(self) -> None:
        self._executor.shutdown()
