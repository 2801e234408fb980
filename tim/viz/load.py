"""What the pictures are drawn from: a :class:`RunView`, read from a run file or a tree.

Two kinds of file are accepted:

- a run file written by :meth:`tim.result.Result.save` (``{"tim_run": 2, ...}``): the
  tree, the run record (streams, forks, evictions, live-KV timeline) and the statistics;
- a plain TIM Thread-2 JSON file (``{"reasoning": [...], "answer": ...}``): a tree only.

When a run ended before its tree was whole (``tree`` is None in the file), the view holds
a partial tree rebuilt from the streams (see :mod:`tim.viz.partial`), with unfinished
tasks marked ``running`` or ``error``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Union

from tim.engine.record import RunRecord
from tim.errors import FormatError, TraceError
from tim.result import RUN_FILE_VERSION, Result, Stats, tree_of_record
from tim.tree import TaskTree

__all__ = ["RunView", "load_run", "as_view", "RunLike"]


@dataclass(frozen=True)
class RunView:
    """One run (or bare tree) as the visualisers see it.

    Attributes
    ----------
    tree : TaskTree or None
        The task tree; for an unfinished run, the part the streams wrote (``partial``).
        None only when nothing could be rebuilt.
    record : RunRecord or None
        The engine's record; None for a plain Thread-2 tree.
    answer : str or None
    stats : Stats or None
        None for a plain Thread-2 tree.
    question, model : str
    error : str or None
        Why the run ended without an answer.
    partial : bool
        True when ``tree`` was rebuilt from unfinished streams.

    Examples
    --------
    >>> from tim.tree import Task, TaskTree
    >>> view = as_view(TaskTree([Task("think", "done", title="step")], answer="42"))
    >>> view.answer, view.record is None, view.tree.num_tasks
    ('42', True, 1)
    """

    tree: TaskTree | None
    record: RunRecord | None = None
    answer: str | None = None
    stats: Stats | None = None
    question: str = ""
    model: str = ""
    error: str | None = None
    partial: bool = False


RunLike = Union[RunView, Result, RunRecord, TaskTree, str, "os.PathLike[str]"]


def load_run(path: str | os.PathLike) -> RunView:
    """Read a run file (``Result.save``) or a plain TIM Thread-2 JSON file.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    RunView

    Raises
    ------
    tim.errors.TraceError
        When the file cannot be read, is not JSON, is truncated or edited so that it no
        longer holds a run or a tree; the message names the file and what is wrong.

    Examples
    --------
    >>> import json, tempfile, os
    >>> doc = {"reasoning": [{"thought": "t", "conclusion": "c"}], "answer": "a"}
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "tree.json")
    ...     _ = open(p, "w").write(json.dumps(doc))
    ...     load_run(p).answer
    'a'
    """
    name = str(path)
    try:
        text = FilePath(path).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot read {name!r}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise TraceError(f"{name!r} is not valid JSON (truncated?): {exc}") from exc
    if isinstance(data, dict) and "tim_run" in data:
        if data["tim_run"] != RUN_FILE_VERSION:
            raise TraceError(f"{name!r} is a tim run file of version {data['tim_run']!r}; "
                             f"this tim reads version {RUN_FILE_VERSION}")
        try:
            result = Result.load(path)
        except (AttributeError, IndexError) as exc:  # shapes Result.load does not check
            raise TraceError(f"run file {name!r} is damaged: {exc!r}") from exc
        return _view_of_result(result)
    if isinstance(data, dict) and "reasoning" in data:
        try:
            return as_view(TaskTree.from_json(data))
        except FormatError as exc:
            raise TraceError(f"{name!r} is not a valid TIM Thread-2 tree: {exc}") from exc
    raise TraceError(f"{name!r} is neither a tim run file (written by Result.save) nor TIM "
                     f"Thread-2 JSON (an object with 'reasoning')")


def as_view(run: RunLike) -> RunView:
    """Turn anything the visualisers accept into a :class:`RunView`.

    ``run`` may be a RunView, a :class:`~tim.result.Result`, a
    :class:`~tim.engine.record.RunRecord` (also one still being written, as ``on_step``
    hands it over), a :class:`~tim.tree.TaskTree`, or a path given to :func:`load_run`.

    Examples
    --------
    >>> from tim.tree import Task, TaskTree
    >>> as_view(TaskTree([], answer="x")).stats is None
    True
    """
    if isinstance(run, RunView):
        return run
    if isinstance(run, Result):
        return _view_of_result(run)
    if isinstance(run, RunRecord):
        return _view_of_record(run)
    if isinstance(run, TaskTree):
        return RunView(tree=run, answer=run.answer)
    if isinstance(run, (str, os.PathLike)):
        return load_run(run)
    raise TypeError(f"cannot visualise a {type(run).__name__}: give a RunView, Result, "
                    f"RunRecord, TaskTree or a file path")


def _view_of_result(result: Result) -> RunView:
    tree, partial = result.tree, False
    if tree is None:
        tree, partial = _partial(result.record), True
    return RunView(tree=tree, record=result.record, answer=result.answer, stats=result.stats,
                   question=result.question, model=result.model, error=result.error,
                   partial=partial)


def _view_of_record(record: RunRecord) -> RunView:
    tree = tree_of_record(record) if record.streams else None
    partial = tree is None
    if tree is None:
        tree = _partial(record)
    return RunView(tree=tree, record=record, answer=tree.answer if tree else None,
                   stats=Stats.of(record), error=record.error, partial=partial)


def _partial(record: RunRecord) -> TaskTree | None:
    from tim.viz.partial import partial_tree

    return partial_tree(record)
