"""Text pieces both formats share: JSON quoting, the tool-use object, the tool list."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from tim.tree.task import Task, TaskTree, ToolUse
from tim.tree.toolspec import ToolSpec

__all__ = ["dumps", "tool_result_text", "render_tooluse", "tools_section", "example_tree"]


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
