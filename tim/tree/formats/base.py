"""The :class:`Format` protocol that both formats implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tim.tree.stream import StreamParser
from tim.tree.task import TaskPath, TaskTree
from tim.tree.toolspec import ToolSpec

__all__ = ["Format"]


class Format(Protocol):
    """What the engine needs from a format. ``forks`` says whether plans fork streams;
    a forking format also has ``child_header(title)`` and ``join_text(depth)``. Every
    stream gets ``parser(path)``, and ``parse_streams`` reads a run's texts whatever the
    format."""

    name: str
    forks: bool

    def instructions(self, tools: Sequence[ToolSpec] = (), *, shared: bool = False,
                     tool_example: bool = False, examples_inline: bool = True) -> str:
        """The prompt's format instructions; ``shared`` adds the collaboration prompt of
        ``siblings="shared"`` (forking formats only); ``tool_example`` a generic worked
        example with a tool call when tools are offered; ``examples_inline=False`` leaves
        the worked examples out, for :meth:`example_turns` to give as chat turns."""
        ...

    def example_turns(self, tools: Sequence[ToolSpec] = (), *,
                      tool_example: bool = False) -> list[tuple[str, str]]:
        """The worked examples as ``(question, reply)`` chat turns."""
        ...

    def grammar(self, *, max_depth: int, max_fanout: int, tools: Sequence[ToolSpec] = (),
                depth: int = 0) -> str: ...

    def parser(self, path: TaskPath = ()) -> StreamParser: ...

    def tool_result_text(self, result_json: str) -> str: ...

    def render(self, tree: TaskTree) -> Any: ...

    def parse(self, rendered: Any) -> TaskTree: ...

    def parse_streams(self, texts: Mapping[TaskPath, str]) -> TaskTree:
        """The tree from every stream's text by path (thread2 has one, at ``()``)."""
        ...
