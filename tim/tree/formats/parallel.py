"""``parallel``: the Thread-2 tree, written so that siblings can fork.

Every task that splits writes a **plan** (its children's titles) and stops at the
plan's ``]``: that is the fork (``SUBTASKS_CLOSED``). Each child is decoded in its own
**stream**, which the runtime starts with :meth:`ParallelFormat.child_header`. When all
children are done (the join), the runtime forces :meth:`ParallelFormat.join_text` into
the parent's stream and the parent writes its conclusion. The top-level ``reasoning`` list
is a plan too: the root stream is ``{"reasoning": [{"title": ...}, ...], "answer": "..."}``
and the answer is written after the join::

    stream ()    {"reasoning": [{"title": "A"}, {"title": "B"}], "answer": "..."}
                                                             ^ fork     ^^^^^^^^^^^^ join text
    stream (0,)  {"title": "A", "thought": "...", "tooluse": null,
                  "subtasks": [{"title": "A.1"}], "conclusion": "..."}
    stream (0,0) {"title": "A.1", "thought": ... }

A stream's path is the path of its task (``()`` for the root stream); parsers emit event
paths in the whole tree, so :func:`~tim.tree.build.assemble_tree` joins all streams' events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from tim.errors import FormatError
from tim.tree.build import assemble_tree
from tim.tree.events import EventKind
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

__all__ = ["ParallelFormat", "ParallelParser"]


class ParallelParser(StreamParser):
    """Incremental parser of one ``parallel`` stream: the root's (``path=()``) or a child's.

    Examples
    --------
    >>> p = ParallelParser((1,))
    >>> events = p.feed('{"title": "B", "thought": "t", "tooluse": null, "subtasks": '
    ...                 '[{"title": "B.1"}]')
    >>> [(e.kind.value, e.path) for e in events][-3:]
    [('subtasks_opened', (1,)), ('plan_item', (1, 0)), ('subtasks_closed', (1,))]
    """

    title_required = True

    def _document(self) -> Reader:
        if self.path:
            yield from self._task(self.path, (yield))
        else:
            yield from self._root()

    def _subtask_item(self, path: TaskPath, tok) -> Reader:
        yield from self._expect("{", tok)
        yield from self._key("title")
        title = yield from self._string(path)
        tok = yield from self._expect("}")
        self._emit(EventKind.PLAN_ITEM, tok.end, path, field="title", value=title)


class ParallelFormat:
    """The ``parallel`` format: prompt text, grammars per stream, parser, forced texts.

    Examples
    --------
    >>> fmt = ParallelFormat()
    >>> tree = TaskTree([Task("Easy.", "4", title="add")], "2 + 2 = 4")
    >>> streams = fmt.render(tree)
    >>> streams[()]
    '{"reasoning": [{"title": "add"}], "answer": "2 + 2 = 4"}'
    >>> streams[(0,)].startswith(fmt.child_header("add"))
    True
    >>> fmt.parse(streams) == tree
    True
    """

    name = "parallel"
    forks = True  # SUBTASKS_CLOSED forks one child stream per plan item

    def instructions(self, tools: Sequence[ToolSpec] = (), *, shared: bool = False,
                     tool_example: bool = False, examples_inline: bool = True) -> str:
        """Text that teaches an instruct model the format, with worked examples.

        With ``shared``, the collaboration prompt for ``siblings="shared"``: each worker is
        told it is one of several that see each other's progress, and to avoid duplicating
        their work (in the spirit of Hogwild! Inference's prompt). ``tool_example`` adds,
        when tools are offered, a generic example with a tool call
        (``common.tool_example_tree``). With ``examples_inline=False`` the examples are left
        out of this text, to be given as earlier chat turns (:meth:`example_turns`).
        """
        examples = self.example_turns(tools, tool_example=tool_example)
        steps = (
            "Each step is then worked out as its own task, apart from the others and maybe at "
            "the same time, so steps must not need each other's results."
        ) if not shared else (
            "Each step is then worked out as its own task by one of several workers writing at "
            "the same time, one worker per step. You are one of them. Just before your own "
            "task you see what the other workers have written so far, growing as they write, "
            "and they see yours. Do not redo what another worker is doing: use their results "
            "when they help, and pick up what nobody is doing yet."
        )
        return "\n\n".join([
            "Reason by breaking the problem into a tree of tasks, written as JSON. Start with "
            "the plan, the titles of the steps, and stop after its closing ]:\n"
            '{"reasoning": [{"title": "<step 1>"}, {"title": "<step 2>"}]',
            steps + " A task is:\n"
            '{"title": "<its title>", "thought": "<your thinking>", "tooluse": '
            + tooluse_slot(tools, tool_example) + ', '
            '"subtasks": null or [{"title": "<substep>"}, ...], "conclusion": "<its result>"}',
            "Rules:\n"
            "- The title and the start of the thought are written for you.\n"
            "- A task that splits writes only its substeps' titles and stops after ]. The "
            "finished substep tasks then appear right after that ], and you go on with the "
            'conclusion. Otherwise write "subtasks": null.\n'
            '- After all steps, write the final result in "answer".\n'
            "- Keys go in exactly this order. Strings are JSON strings: escape \" and \\ and "
            "write newlines as \\n.\n"
            "- Make each conclusion self-contained: the substeps may be hidden later.",
            tools_section(tools),
            *example_sections(examples, inline=examples_inline, note=tool_example and bool(tools),
                              lead="Every task after a ] was written separately and put there "
                                   "when it was done"),
        ])

    def example_turns(self, tools: Sequence[ToolSpec] = (), *,
                      tool_example: bool = False) -> list[tuple[str, str]]:
        """The worked examples as ``(question, reply)`` chat turns: each reply is the root
        stream's view with every child's stream after its fork (:meth:`view_text`)."""
        return [(q, self.view_text(self.render(t)))
                for q, t in worked_examples(tools, tool_example=tool_example)]

    def grammar(self, *, max_depth: int, max_fanout: int, tools: Sequence[ToolSpec] = (),
                depth: int = 0, max_string_chars: int | None = None) -> str:
        """The llguidance Lark grammar of one stream, forced texts included.

        Parameters
        ----------
        max_depth : int
            Top-level tasks have depth 1; a task at ``max_depth`` writes ``"subtasks": null``.
        max_fanout : int
            Every plan (the top-level one included) has 1..max_fanout items.
        tools : sequence of ToolSpec
            The allowed tools and their parameter schemas; none means ``"tooluse": null``.
        max_string_chars : int, optional
            Longest string (title, thought, conclusion, answer) the grammar allows.
        depth : int
            The stream's depth, ``len(path)``: 0 for the root stream, d for a child at depth
            d. A child grammar starts at the child's ``{``, so a fresh matcher accepts
            :meth:`child_header` as the stream's first tokens.

        Raises
        ------
        ValueError
            Quoting a bad parameter (``depth`` outside 0..max_depth included), or naming a
            tool whose schema llguidance rejects.

        Examples
        --------
        >>> g = ParallelFormat().grammar(max_depth=2, max_fanout=3, depth=2)
        >>> 'subtasks: "null"' in g
        True
        """
        tools = tuple(tools)
        check_limits(max_depth=max_depth, max_fanout=max_fanout, tools=tools, depth=depth,
                     max_allowed_depth=max_depth)
        return _grammar(max_depth, max_fanout, tools, depth, max_string_chars)

    def parser(self, path: TaskPath = ()) -> ParallelParser:
        """A fresh parser for the stream of the task at ``path`` (``()``: the root stream)."""
        path = tuple(path)
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in path):
            raise ValueError(f"path must be a tuple of ints >= 0, got {path!r}")
        return ParallelParser(path)

    def tool_result_text(self, result_json: str) -> str:
        """The text to force right after ``TOOLUSE_READY`` (see ``common.tool_result_text``)."""
        return tool_result_text(result_json)

    def child_header(self, title: str) -> str:
        """The forced start of a child's stream: ``{"title": <title>, "thought": "``."""
        if not isinstance(title, str):
            raise ValueError(f"title must be a str, got {title!r}")
        return f'{{"title": {dumps(title)}, "thought": "'

    def join_text(self, depth: int) -> str:
        """Forced into the parent stream at the join, right after the fork's ``]``.

        ``, "answer": "`` for the root stream (``depth=0``), else ``, "conclusion": "``.
        """
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be an int >= 0, got {depth!r}")
        return ', "answer": "' if depth == 0 else ', "conclusion": "'

    def render(self, tree: TaskTree) -> dict[TaskPath, str]:
        """Each stream's text, keyed by stream path in start order (root first).

        Raises ``ValueError`` naming a task without a title, or an unfinished tree.
        """
        if tree.answer is None:
            raise ValueError("render needs a finished tree: tree.answer is None")
        streams = {(): f'{{"reasoning": {_plan(tree.reasoning, ())}, "answer": '
                       f"{dumps(tree.answer)}}}"}
        for path, task in tree.walk():
            subtasks = "null" if task.subtasks is None else _plan(task.subtasks, path)
            streams[path] = (
                f'{{"title": {dumps(task.title)}, "thought": {dumps(task.thought)}, '
                f'"tooluse": {render_tooluse(task.tooluse)}, "subtasks": {subtasks}, '
                f'"conclusion": {dumps(task.conclusion)}}}'
            )
        return streams

    def parse_streams(self, texts: Mapping[TaskPath, str]) -> TaskTree:
        """:meth:`parse` (the parallel format is read from its streams already)."""
        return self.parse(texts)

    def parse(self, streams: Mapping[TaskPath, str]) -> TaskTree:
        """Parse every stream and assemble the tree; raises ``FormatError`` when malformed.

        ``streams`` needs exactly the root stream plus one stream per plan item.
        """
        events = []
        for path, text in streams.items():
            events += self._parse_stream(path, text)
        planned = {e.path for e in events if e.kind is EventKind.PLAN_ITEM}
        if () not in streams or set(streams) - {()} != planned:
            missing = sorted(planned - set(streams))[:3]
            extra = sorted(set(streams) - planned - {()})[:3]
            raise FormatError(f"streams do not match the plans: missing {missing}, "
                              f"unplanned {extra}, root stream given: {() in streams}")
        return assemble_tree(events)

    def view_text(self, streams: Mapping[TaskPath, str], path: TaskPath = ()) -> str:
        """What a stream's reader sees with no pruning: each fork's ``]`` is followed by
        the children's full views, in plan order."""
        events = self._parse_stream(path, streams[path])
        forks = [e.offset for e in events
                 if e.kind is EventKind.SUBTASKS_CLOSED and e.path == path]
        if not forks:
            return streams[path]
        num_children = sum(1 for e in events if e.kind is EventKind.PLAN_ITEM)
        children = "".join(self.view_text(streams, (*path, i)) for i in range(num_children))
        return streams[path][:forks[0]] + children + streams[path][forks[0]:]

    def _parse_stream(self, path: TaskPath, text: str) -> list:
        parser = self.parser(path)
        events = parser.feed(text) + parser.close()
        if events and events[-1].kind is EventKind.MALFORMED:
            raise FormatError(f"stream {path}: {events[-1].message}")
        return events


def _plan(tasks: list[Task], parent: TaskPath) -> str:
    for i, task in enumerate(tasks):
        if task.title is None:
            raise ValueError(f"the parallel format needs a title on every task; task "
                             f"{(*parent, i)} has none")
    return "[" + ", ".join(f'{{"title": {dumps(t.title)}}}' for t in tasks) + "]"


@lru_cache(maxsize=64)
def _grammar(max_depth: int, max_fanout: int, tools: tuple[ToolSpec, ...], depth: int,
             max_string_chars: int | None) -> str:
    item = seq('"{"', field("title", "TITLE"), '"}"')
    rules = ["%llguidance {}"]
    if depth == 0:
        rules.append("start: " + seq('"{"', field("reasoning", "plan"), '","',
                                     field("answer", "STRING"), '"}"'))
    else:
        rules.append("start: " + task_rule(title="required", subtasks="subtasks"))
        rules.append('subtasks: "null"' + (" | plan" if depth < max_depth else ""))
    if depth < max_depth:
        rules += [f"plan: {list_rule('item', max_fanout)}", f"item: {item}"]
    strings = common_rules(tools, with_tooluse=depth > 0, max_string_chars=max_string_chars)
    text = "\n".join(rules + strings) + "\n"
    validate(text, tools)
    return text
