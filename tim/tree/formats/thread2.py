"""``thread2``: TIM's exact schema, decoded inline as one JSON document.

The model writes one document::

    {"reasoning": [Task, ...], "answer": "..."}
    Task = {"title"?: "...", "thought": "...", "tooluse": null | ToolUse,
            "subtasks": null | [Task, ...], "conclusion": "..."}
    ToolUse = {"tool_name": "...", "parameters": {...}, "tool_result": <forced JSON>}

Siblings are written one after another. The runtime forces only the tool results
(:meth:`Thread2Format.tool_result_text`, right at ``TOOLUSE_READY``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from tim.tree.build import assemble_tree
from tim.tree.formats.common import (
    dumps,
    example_sections,
    render_tooluse,
    tool_result_text,
    tools_section,
    tooluse_slot,
    worked_examples,
)
from tim.tree.grammar import check_limits, common_rules, field, list_rule, seq, task_rule, validate
from tim.tree.stream import Reader, StreamParser
from tim.tree.task import Task, TaskPath, TaskTree
from tim.tree.toolspec import ToolSpec

__all__ = ["Thread2Format", "Thread2Parser"]


class Thread2Parser(StreamParser):
    """Incremental parser of a ``thread2`` document (see :class:`StreamParser`).

    Examples
    --------
    >>> p = Thread2Parser()
    >>> text = ('{"reasoning": [{"thought": "t", "tooluse": null, "subtasks": null, '
    ...         '"conclusion": "c"}], "answer": "a"}')
    >>> events = [e for chunk in text for e in p.feed(chunk)] + p.close()
    >>> [(e.kind.value, e.offset) for e in events][:4]
    [('subtasks_opened', 15), ('task_opened', 16), ('field_opened', 28), ('field_closed', 30)]
    """

    def __init__(self) -> None:
        super().__init__(())

    def _document(self) -> Reader:
        yield from self._root()

    def _subtask_item(self, path: TaskPath, tok) -> Reader:
        yield from self._task(path, tok)


class Thread2Format:
    """The ``thread2`` format: prompt text, grammar, parser, forced text and rendering.

    Examples
    --------
    >>> fmt = Thread2Format()
    >>> tree = TaskTree([Task("Easy.", "4", title="add")], "2 + 2 = 4")
    >>> text = fmt.render(tree)
    >>> text
    '{"reasoning": [{"title": "add", "thought": "Easy.", "tooluse": null, "subtasks": null, "conclusion": "4"}], "answer": "2 + 2 = 4"}'
    >>> fmt.parse(text) == tree
    True
    """

    name = "thread2"
    forks = False  # siblings are written inline; no child streams

    def instructions(self, tools: Sequence[ToolSpec] = (), *, shared: bool = False,
                     tool_example: bool = False, examples_inline: bool = True) -> str:
        """Text that teaches an instruct model the format, with worked examples.

        ``tool_example`` adds, when tools are offered, a generic example with a tool call
        (``common.tool_example_tree``). With ``examples_inline=False`` the examples are left
        out of this text, to be given as earlier chat turns (:meth:`example_turns`).
        """
        if shared:
            raise ValueError("thread2 writes siblings one after another: it has no shared "
                             "siblings to tell the model about; use format 'parallel'")
        return "\n\n".join([
            "Reason by breaking the problem into a tree of tasks. Write your whole reply as "
            "one JSON object and nothing else:\n"
            '{"reasoning": [<task>, ...], "answer": "<final answer>"}',
            "A task is:\n"
            '{"title": "<short name>", "thought": "<your thinking for this task>", '
            '"tooluse": ' + tooluse_slot(tools, tool_example) + ', '
            '"subtasks": null or [<task>, ...], '
            '"conclusion": "<the result of this task>"}',
            "Rules:\n"
            "- Write the keys in exactly this order. Strings are JSON strings: escape \" and "
            "\\ and write newlines as \\n.\n"
            "- When a task has separate steps, list them as subtasks; otherwise write "
            '"subtasks": null.\n'
            "- Once a task is concluded, its subtasks may be hidden from you: make each "
            "conclusion self-contained.\n"
            '- Put the final result in "answer".',
            tools_section(tools),
            *example_sections([(q, self.render(t)) for q, t in
                                worked_examples(tools, tool_example=tool_example)],
                               inline=examples_inline, note=tool_example and bool(tools)),
        ])

    def example_turns(self, tools: Sequence[ToolSpec] = (), *,
                      tool_example: bool = False) -> list[tuple[str, str]]:
        """The worked examples as ``(question, reply)`` chat turns: each reply is the
        document a model would write."""
        return [(q, self.render(t)) for q, t in worked_examples(tools, tool_example=tool_example)]

    def grammar(self, *, max_depth: int, max_fanout: int, tools: Sequence[ToolSpec] = (),
                depth: int = 0, max_string_chars: int | None = None) -> str:
        """An llguidance Lark grammar for the whole document.

        Parameters
        ----------
        max_depth : int
            Top-level tasks have depth 1; tasks at ``max_depth`` must write
            ``"subtasks": null``.
        max_fanout : int
            At most this many items in every list, ``reasoning`` included (and at least 1).
        tools : sequence of ToolSpec
            The only tool names allowed, each with its parameter schema. With none,
            ``tooluse`` must be ``null``.
        max_string_chars : int, optional
            Longest string (title, thought, conclusion, answer) the grammar allows.
        depth : int
            Only 0: a ``thread2`` run has one stream.

        Raises
        ------
        ValueError
            Quoting a bad parameter, or naming a tool whose schema llguidance rejects.

        Examples
        --------
        >>> g = Thread2Format().grammar(max_depth=2, max_fanout=3)
        >>> g.splitlines()[0]
        '%llguidance {}'
        """
        tools = tuple(tools)
        check_limits(max_depth=max_depth, max_fanout=max_fanout, tools=tools, depth=depth,
                     max_allowed_depth=0)
        return _grammar(max_depth, max_fanout, tools, max_string_chars)

    def parser(self, path: TaskPath = ()) -> Thread2Parser:
        """A fresh incremental parser; ``path`` must be ``()`` (one stream)."""
        if tuple(path) != ():
            raise ValueError(f"thread2 has a single stream at path (), got {path!r}")
        return Thread2Parser()

    def tool_result_text(self, result_json: str) -> str:
        """The text to force right after ``TOOLUSE_READY`` (see ``common.tool_result_text``)."""
        return tool_result_text(result_json)

    def render(self, tree: TaskTree) -> str:
        """The document a model would write for ``tree`` (tool results included)."""
        if tree.answer is None:
            raise ValueError("render needs a finished tree: tree.answer is None")
        tasks = ", ".join(_render_task(t) for t in tree.reasoning)
        return f'{{"reasoning": [{tasks}], "answer": {dumps(tree.answer)}}}'

    def parse(self, text: str) -> TaskTree:
        """Parse a whole document; raises ``FormatError`` at the first malformed spot."""
        parser = self.parser()
        return assemble_tree(parser.feed(text) + parser.close())

    def parse_streams(self, texts: Mapping[TaskPath, str]) -> TaskTree:
        """:meth:`parse` of the one stream's text (``texts[()]``)."""
        return self.parse(texts[()])


def _render_task(task: Task) -> str:
    title = "" if task.title is None else f'"title": {dumps(task.title)}, '
    subtasks = "null" if task.subtasks is None else (
        "[" + ", ".join(_render_task(t) for t in task.subtasks) + "]"
    )
    return (f'{{{title}"thought": {dumps(task.thought)}, "tooluse": {render_tooluse(task.tooluse)}, '
            f'"subtasks": {subtasks}, "conclusion": {dumps(task.conclusion)}}}')


@lru_cache(maxsize=64)
def _grammar(max_depth: int, max_fanout: int, tools: tuple[ToolSpec, ...],
             max_string_chars: int | None) -> str:
    start = seq('"{"', field("reasoning", "list_1"), '","', field("answer", "STRING"),
                '"}"')
    rules = ["%llguidance {}", f"start: {start}"]
    for d in range(1, max_depth + 1):
        rules.append(f"list_{d}: {list_rule(f'task_{d}', max_fanout)}")
        sub = f'"null" | list_{d + 1}' if d < max_depth else '"null"'
        rules.append(f"subtasks_{d}: {sub}")
        rules.append(f"task_{d}: {task_rule(title='optional', subtasks=f'subtasks_{d}')}")
    text = "\n".join(rules + common_rules(tools, max_string_chars=max_string_chars)) + "\n"
    validate(text, tools)
    return text
