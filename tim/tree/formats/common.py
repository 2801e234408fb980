"""Text pieces both formats share: JSON quoting, the tool-use object, the tool list."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from tim.tree.task import Task, TaskTree, ToolUse
from tim.tree.toolspec import ToolSpec

__all__ = ["dumps", "tool_result_text", "render_tooluse", "tools_section", "example_tree",
           "tool_example_tree", "worked_examples", "EXAMPLE_QUESTION", "TOOL_EXAMPLE_QUESTION",
           "TOOL_EXAMPLE_NOTE", "example_sections", "tooluse_slot"]


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(value: Any) -> str:
    r"""JSON as a model writes it: ``", "``/``": "`` separators, non-ASCII kept as is,
    except DEL (U+007F), which is escaped because llguidance's JSON strings refuse it raw.

    Examples
    --------
    >>> dumps({"a": ["é\x7f", 1]})
    '{"a": ["é\\u007f", 1]}'
    """
    return json.dumps(value, ensure_ascii=False, allow_nan=False).replace("\x7f", "\\u007f")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def tool_result_text(result_json: str) -> str:
    """The text forced right after ``TOOLUSE_READY``: ``, "tool_result": <json>}``.

    The result is re-serialised with :func:`dumps`, so any valid JSON text is accepted.
    A lone surrogate in a string (which UTF-8 cannot carry, and llguidance refuses as an
    escape) becomes U+FFFD.

    Raises
    ------
    ValueError
        Quoting (the start of) ``result_json`` when it is not valid JSON.

    Examples
    --------
    >>> tool_result_text('{"sum":  3}')
    ', "tool_result": {"sum": 3}}'
    """
    try:
        text = dumps(json.loads(result_json, parse_constant=_reject_constant))
        text = _LONE_SURROGATE.sub("\ufffd", text)
    except (TypeError, ValueError, RecursionError):
        shown = repr(result_json)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise ValueError(f"result_json must be valid JSON, got {shown}") from None
    return f', "tool_result": {text}}}'


def render_tooluse(tooluse: ToolUse | None) -> str:
    """``null`` or the tool-use object, its tail exactly :func:`tool_result_text`."""
    if tooluse is None:
        return "null"
    head = f'{{"tool_name": {dumps(tooluse.tool_name)}, "parameters": {dumps(tooluse.parameters)}'
    return head + tool_result_text(dumps(tooluse.tool_result))


def tools_section(tools: Sequence[ToolSpec]) -> str:
    """The part of the instructions that lists the tools."""
    if not tools:
        return 'No tools are available: always write "tooluse": null.'
    lines = [
        "Tools you can call. To call one, write",
        '"tooluse": {"tool_name": "<name>", "parameters": {<arguments>}}',
        "and stop writing right after the closing } of the parameters: the runtime runs the",
        'tool and writes , "tool_result": <its JSON result>} for you. Then go on with',
        '"subtasks". A task without a call writes "tooluse": null.',
    ]
    for tool in tools:
        lines.append(f"- {tool.name}: {tool.description} Parameters (JSON schema): "
                     f"{dumps(tool.parameters)}")
    return "\n".join(lines)


EXAMPLE_QUESTION = "What is 17 * 23 + 12 * 5?"
TOOL_EXAMPLE_QUESTION = "Is it warm enough to swim in Lisbon today?"
TOOL_EXAMPLE_NOTE = ("The tool in the example (weather) is made up: call only the tools listed "
                     "above, and call one whenever a step needs what it gives.")


def tooluse_slot(tools: Sequence[ToolSpec], tool_example: bool) -> str:
    """What the instructions' task schema shows for ``"tooluse"``: ``null``, or, with the
    tool example on and tools offered, ``null`` or the shape of a call."""
    if tool_example and tools:
        return 'null or {"tool_name": "<name>", "parameters": {<arguments>}}'
    return "null"


def example_tree() -> TaskTree:
    """The worked example both formats' instructions show: 17 * 23 + 12 * 5."""
    return TaskTree([
        Task(title="compute 17 * 23", thought="Split 23 into 20 + 3.",
             subtasks=[Task(title="17 * 20", thought="17 * 2 = 34, times 10.",
                            conclusion="340"),
                       Task(title="17 * 3", thought="17 + 17 + 17.", conclusion="51")],
             conclusion="340 + 51 = 391"),
        Task(title="compute 12 * 5", thought="12 * 5 is half of 12 * 10.", conclusion="60"),
    ], answer="391 + 60 = 451")


def tool_example_tree() -> TaskTree:
    """A generic worked example with a tool call (a made-up ``weather`` tool), for
    instructions that offer tools: it is fitted to no task set, and it shows a call whose
    result the conclusion then uses."""
    weather = ToolUse("weather", {"city": "Lisbon"},
                      tool_result={"temperature_c": 24, "sky": "sunny"})
    return TaskTree([
        Task(title="check the weather", thought="The weather tool knows today's weather.",
             tooluse=weather, conclusion="24 C and sunny in Lisbon"),
        Task(title="decide", thought="24 C and sunny is warm enough for a swim.",
             conclusion="yes"),
    ], answer="Yes: it is 24 C and sunny in Lisbon.")


def worked_examples(tools: Sequence[ToolSpec] = (), *,
                    tool_example: bool = False) -> list[tuple[str, TaskTree]]:
    """The instructions' worked examples as ``(question, tree)`` pairs: the arithmetic one,
    then, when ``tool_example`` is on and tools are offered, the generic tool-call one.

    Examples
    --------
    >>> from tim.tree.toolspec import ToolSpec
    >>> [q for q, _ in worked_examples()]
    ['What is 17 * 23 + 12 * 5?']
    >>> len(worked_examples([ToolSpec("f", "F.", {"type": "object"})], tool_example=True))
    2
    """
    examples = [(EXAMPLE_QUESTION, example_tree())]
    if tool_example and tools:
        examples.append((TOOL_EXAMPLE_QUESTION, tool_example_tree()))
    return examples


def example_sections(examples: Sequence[tuple[str, str]], *, inline: bool, note: bool,
                     lead: str = "") -> list[str]:
    r"""The instructions' last sections: each ``(question, reply)`` example after a line
    ``Example, for "<question>":`` (with ``lead``, a sentence about how to read it:
    ``Example, for "<question>". <lead>:``), or, when the examples come as earlier chat
    turns instead (``inline=False``), one line saying so; then the tool example's note
    when ``note``.

    >>> example_sections([("Q?", "{}")], inline=True, note=False, lead="Read it")
    ['Example, for "Q?". Read it:\n{}']
    """
    if inline:
        head = ". " + lead + ":" if lead else ":"
        sections = [f'Example, for "{q}"{head}\n{reply}' for q, reply in examples]
    else:
        sections = ["The earlier turns of this conversation are worked examples of this "
                    "format." + (f" {lead}." if lead else "")]
    return sections + ([TOOL_EXAMPLE_NOTE] if note else [])
