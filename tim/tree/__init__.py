"""The task tree and its formats. Pure Python: no torch.

- Data: :class:`Task`, :class:`ToolUse`, :class:`TaskTree`, :class:`TaskStatus`, and
  :class:`ToolSpec` (a tool as the prompt and grammar see it).
- JSON: ``TaskTree.from_json`` / ``tree.to_json()`` (TIM Thread-2, run metadata under
  ``"_meta"`` with ``meta=True``). networkx: ``tree.to_networkx()`` / ``TaskTree.from_networkx``.
- Formats: :func:`get_format` (``"thread2"``, ``"parallel"``), each with instructions,
  an llguidance grammar, an incremental parser emitting :class:`Event`\\ s, forced texts and
  rendering. :func:`assemble_tree` turns events back into a tree.

Examples
--------
>>> from tim.tree import Task, TaskTree, get_format
>>> tree = TaskTree([Task("2 + 2.", "4", title="add")], answer="4")
>>> fmt = get_format("thread2")
>>> fmt.parse(fmt.render(tree)) == tree
True
"""

from tim.tree.build import assemble_tree
from tim.tree.events import Event, EventKind
from tim.tree.formats import Format, ParallelFormat, Thread2Format, get_format
from tim.tree.stream import StreamParser
from tim.tree.task import Task, TaskPath, TaskStatus, TaskTree, ToolUse
from tim.tree.toolspec import ToolSpec

__all__ = [
    "Task",
    "TaskStatus",
    "TaskTree",
    "ToolUse",
    "ToolSpec",
    "TaskPath",
    "Event",
    "EventKind",
    "StreamParser",
    "Format",
    "Thread2Format",
    "ParallelFormat",
    "get_format",
    "assemble_tree",
]
