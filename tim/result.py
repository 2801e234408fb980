"""What a run returns: the answer, the task tree, statistics and the full record."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path as FilePath
from typing import Any

from tim.engine.record import RunRecord
from tim.engine.record_io import record_from_json
from tim.errors import FormatError, TraceError
from tim.tree import TaskPath, TaskStatus, TaskTree, get_format

__all__ = ["Stats", "Result", "RUN_FILE_VERSION", "tree_of_record", "pruned_owners",
           "is_pruned"]

RUN_FILE_VERSION = 2  # 2: joins, eviction ranges, fed counts and seq


@dataclass(frozen=True)
class Stats:
    """Counters of one run, read from its :class:`RunRecord` (their one owner) by :meth:`of`.

    ``tokens_per_s`` counts generated (sampled) tokens.
    """

    tokens_generated: int
    tokens_prefilled: int
    tokens_forced: int
    tokens_evicted: int
    tokens_reencoded: int
    peak_live_tokens: int
    max_position_id: int
    num_forks: int
    max_concurrency: int
    num_steps: int
    wall_time_s: float
    tokens_per_s: float

    @classmethod
    def of(cls, record: RunRecord) -> Stats:
        """The record's counters under their user-facing names."""
        return cls(
            tokens_generated=record.num_generated,
            tokens_prefilled=record.num_prefilled,
            tokens_forced=record.num_forced,
            tokens_evicted=record.num_evicted,
            tokens_reencoded=record.num_reencoded,
            peak_live_tokens=record.peak_live_tokens,
            max_position_id=record.max_position,
            num_forks=len(record.forks),
            max_concurrency=record.max_concurrency,
            num_steps=record.num_steps,
            wall_time_s=record.wall_time_s,
            tokens_per_s=record.num_generated / record.wall_time_s if record.wall_time_s else 0.0,
        )


def pruned_owners(record: RunRecord) -> set[TaskPath]:
    """Tasks whose subtask list some view evicted."""
    return {e.list_owner for e in record.evictions if not e.deferred and e.num_tokens}


def is_pruned(path: TaskPath, owners: set[TaskPath]) -> bool:
    """True when the task at ``path`` sat inside an evicted list (strictly below an owner)."""
    return any(len(path) > len(owner) and path[: len(owner)] == owner for owner in owners)


def tree_of_record(record: RunRecord) -> TaskTree | None:
    """The task tree the streams wrote, with run metadata; None if the run left it unfinished.

    Tasks inside an evicted subtask list are marked ``pruned``; ``num_tokens`` counts the
    tokens of the task's own stream (parallel format) or is 0 (thread2, one shared stream).
    """
    fmt = get_format(record.format)
    texts = {path: stream.text for path, stream in record.streams.items()}
    try:
        tree = fmt.parse_streams(texts)
    except FormatError:
        return None
    owners = pruned_owners(record)
    for path, task in tree.walk():
        task.node_id = "/".join(map(str, path))
        task.status = TaskStatus.DONE
        task.pruned = is_pruned(path, owners)
        stream = record.streams.get(path)
        task.num_tokens = len(stream.token_ids) if stream is not None and path else 0
    return tree


@dataclass
class Result:
    """The outcome of :meth:`tim.Runtime.reason`.

    Attributes
    ----------
    answer : str or None
        The final answer, or None when the run ended early (see ``error``).
    tree : TaskTree or None
        The task tree (None when the output never became a whole tree).
    stats : Stats
        The run's counters, read from ``record``.
    record : RunRecord
        Per-stream tokens, positions, log-probabilities, forks, evictions, timeline.
    error : str or None
        Why the run ended without an answer.
    """

    answer: str | None
    tree: TaskTree | None
    record: RunRecord
    question: str = ""
    model: str = ""

    @property
    def stats(self) -> Stats:
        return Stats.of(self.record)

    @property
    def error(self) -> str | None:
        return self.record.error

    @property
    def streams(self) -> dict:
        return self.record.streams

    @classmethod
    def of(cls, record: RunRecord, *, question: str = "", model: str = "") -> Result:
        tree = tree_of_record(record)
        return cls(tree.answer if tree else None, tree, record, question, model)

    def to_json(self) -> dict[str, Any]:
        return {
            "tim_run": RUN_FILE_VERSION,
            "model": self.model,
            "question": self.question,
            "answer": self.answer,
            "error": self.error,
            "stats": asdict(self.stats),
            "tree": self.tree.to_json(meta=True) if self.tree else None,
            "record": self.record.to_json(),
        }

    def save(self, path: str | FilePath) -> None:
        """Write the run as JSON (``tim viz`` and ``tim replay`` read it)."""
        FilePath(path).write_text(json.dumps(self.to_json(), ensure_ascii=False))

    @classmethod
    def load(cls, path: str | FilePath) -> Result:
        """Read a file written by :meth:`save`; a truncated or edited file raises TraceError."""
        try:
            data = json.loads(FilePath(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TraceError(f"cannot read run file {str(path)!r}: {exc}") from exc
        if not isinstance(data, dict) or data.get("tim_run") != RUN_FILE_VERSION:
            raise TraceError(f"{str(path)!r} is not a tim run file (version {RUN_FILE_VERSION})")
        try:
            record = record_from_json(data.get("record"))
        except TraceError as exc:
            raise TraceError(f"run file {str(path)!r} is damaged: {exc}") from exc
        try:
            tree = TaskTree.from_json(data["tree"]) if data["tree"] is not None else None
            stats = Stats(**data["stats"])
            result = cls(data["answer"], tree, record, data["question"], data["model"])
        except (KeyError, TypeError, ValueError, FormatError) as exc:
            raise TraceError(f"run file {str(path)!r} is damaged: {exc!r}") from exc
        if stats != result.stats:  # the file's copy, written for readers of the JSON
            raise TraceError(f"run file {str(path)!r} is damaged: its stats {stats} disagree "
                             f"with its record's {result.stats}")
        return result
