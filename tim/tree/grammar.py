"""Lark grammars for llguidance: the pieces both formats share.

Whitespace is an explicit optional terminal ``W`` between tokens (llguidance's
``%ignore`` does not reach the start of an embedded ``%json`` value). None is allowed
before the first ``{`` or after the last ``}``, so the model stops right after the
document. Depth and fan-out are enforced by unrolling: one rule per depth, each list
``item ("," item){0,max_fanout-1}``. Each tool's ``parameters`` is its own ``%json``
schema, selected by the literal tool name; ``tool_result`` is ``%json {}`` (any JSON).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tim.tree.toolspec import ToolSpec

__all__ = ["check_limits", "key", "seq", "field", "task_rule", "list_rule", "common_rules",
           "string_rule", "validate"]

STRING_CHAR = r'(\\(["\\\/bfnrt]|u[0-9a-fA-F]{4})|[^"\\\x00-\x1F])'
W = r"W: /[ \t\n\r]{1,32}/"  # bounded, so a model cannot loop on whitespace forever


MAX_TITLE_CHARS = 80  # a title names a step; a runaway title is the usual small-model failure


def string_rule(max_chars: int | None = None, *, name: str = "STRING") -> str:
    """A JSON-string terminal of at most ``max_chars`` characters."""
    repeat = "*" if max_chars is None else f"{{0,{max_chars}}}"
    return f'{name}: /"{STRING_CHAR}{repeat}"/'


def check_limits(*, max_depth: int, max_fanout: int, tools: Sequence[ToolSpec],
                 depth: int, max_allowed_depth: int) -> None:
    """Raise ``ValueError`` quoting a bad grammar parameter."""
    for name, value in (("max_depth", max_depth), ("max_fanout", max_fanout)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or not (
        0 <= depth <= max_allowed_depth
    ):
        raise ValueError(f"depth must be an int in [0, {max_allowed_depth}], got {depth!r}")
    names = [t.name for t in tools if isinstance(t, ToolSpec)]
    if len(names) != len(tools):
        raise ValueError(f"tools must be ToolSpec instances, got {list(tools)!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"tool names must be unique, got {names!r}")


def key(name: str) -> str:
    """The Lark literal for the JSON key ``name``, quotes included: ``"\\"name\\""``."""
    return json.dumps(json.dumps(name))


def seq(*parts: str) -> str:
    """Join Lark items with optional whitespace between them."""
    return " W? ".join(parts)


def field(name: str, value: str) -> str:
    """``"name": value`` as Lark."""
    return seq(key(name), '":"', value)


def list_rule(item: str, max_fanout: int) -> str:
    """``[item, ...]`` with 1..max_fanout items."""
    more = f' (W? "," W? {item}){{0,{max_fanout - 1}}}' if max_fanout > 1 else ""
    return f'"[" W? {item}{more} W? "]"'


def task_rule(*, title: str, subtasks: str) -> str:
    """A task object; ``title`` is ``"required"`` or ``"optional"``."""
    rest = seq(field("thought", "STRING"), '","', field("tooluse", "tooluse"), '","',
               field("subtasks", subtasks), '","', field("conclusion", "STRING"), '"}"')
    if title == "required":
        return seq('"{"', field("title", "TITLE"), '","', rest)
    return f'"{{" (W? {seq(field("title", "TITLE"), chr(34) + "," + chr(34))})? W? {rest}'


def common_rules(tools: Sequence[ToolSpec], *, with_tooluse: bool = True,
                 max_string_chars: int | None = None) -> list[str]:
    """``tooluse`` and the per-tool parameter schemas (if asked for), ``STRING`` and ``W``."""
    title_chars = min(max_string_chars or MAX_TITLE_CHARS, MAX_TITLE_CHARS)
    string = string_rule(max_string_chars) + "\n" + string_rule(title_chars, name="TITLE")
    if not with_tooluse:
        return [string, W]
    if not tools:
        return ['tooluse: "null"', string, W]
    calls = " | ".join(f"call_{i}" for i in range(len(tools)))
    rules = [
        'tooluse: "null" | ' + seq('"{"', field("tool_name", "call"), '","',
                                   field("tool_result", "result"), '"}"'),
        f"call: {calls}",
        "result: %json {}",
    ]
    for i, tool in enumerate(tools):
        rules.append(f"call_{i}: " + seq(key(tool.name), '","', field("parameters", f"params_{i}")))
        rules.append(f"params_{i}: %json {json.dumps(tool.parameters)}")
    return [*rules, string, W]


def validate(grammar: str, tools: Sequence[ToolSpec]) -> None:
    """Ask llguidance to compile ``grammar``; raise ``ValueError`` naming a bad tool schema."""
    from llguidance import LLMatcher  # imported on use: building the text needs no llguidance

    for tool in tools:
        error = LLMatcher.validate_grammar(LLMatcher.grammar_from_json_schema(tool.parameters))
        if error:
            raise ValueError(f"llguidance rejects the parameter schema of tool {tool.name!r}: "
                             f"{error}")
    error = LLMatcher.validate_grammar(grammar)
    if error:
        raise ValueError(f"llguidance rejects the grammar: {error}")
