"""The prompt of a run: instructions, worked examples and the question, as token ids.

:func:`build_prompt` uses the model's chat template when it has one (instructions as the
system message, worked examples as earlier turns, tool specs through the template's
``tools``), plain text otherwise. :class:`PromptStyle` says which layout a
:class:`tim.Runtime` uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PromptStyle", "template_tools", "build_prompt", "tool_lines", "format_prompt"]


@dataclass(frozen=True)
class PromptStyle:
    """How a :class:`Runtime` lays out its prompt (issue 13 measured each choice).

    Parameters
    ----------
    examples : str
        ``"system"`` (default): the worked examples sit in the instructions (the system
        text); ``"turns"``: each comes as an earlier user question and assistant reply.
    tool_example : bool
        With tools offered, add a generic worked example with a tool call (a made-up
        ``weather`` tool, fitted to no task set) and show a call's shape in the task schema.
    template_tools : bool
        Also pass the tool specs to the model's chat template (``apply_chat_template(...,
        tools=...)``); a template that knows no tools ignores them.
    instructions : bool
        True (default): the format's instructions and worked examples come first. False:
        only a line per tool (:func:`tool_lines`), for a model trained on the format
        (``tim train``), whose window the instructions would not fit.

    Examples
    --------
    >>> PromptStyle(examples="turns")
    PromptStyle(examples='turns', tool_example=False, template_tools=False, instructions=True)
    >>> PromptStyle(examples="user")
    Traceback (most recent call last):
    ValueError: examples must be 'system' or 'turns', got 'user'
    """

    examples: str = "system"
    tool_example: bool = False
    template_tools: bool = False
    instructions: bool = True

    def __post_init__(self) -> None:
        if self.examples not in ("system", "turns"):
            raise ValueError(f"examples must be 'system' or 'turns', got {self.examples!r}")
        for name in ("tool_example", "template_tools", "instructions"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")


def template_tools(specs: Sequence[Any]) -> list[dict[str, Any]]:
    """Tool specs as chat templates take them (OpenAI's function-tool shape)."""
    return [{"type": "function", "function": {"name": s.name, "description": s.description,
                                              "parameters": s.parameters}} for s in specs]


def tool_lines(specs: Sequence[Any]) -> str:
    """One line per tool, ``name(param: type, ...): description``: what a trained model's
    prompt says of its tools.

    Examples
    --------
    >>> from tim.tools import ToolRegistry
    >>> def lookup(key: str) -> str:
    ...     "Return the key that key points to."
    >>> tool_lines(ToolRegistry([lookup]).specs)
    'Tools:\\nlookup(key: string): Return the key that key points to.'
    """
    if not specs:
        return ""
    lines = ["Tools:"]
    for spec in specs:
        params = ", ".join(f"{name}: {schema.get('type', 'any')}" for name, schema in
                           spec.parameters.get("properties", {}).items())
        lines.append(f"{spec.name}({params}): {spec.description}")
    return "\n".join(lines)


def format_prompt(tokenizer: Any, fmt: Any, question: str, *, tools: Sequence[Any] = (),
                  style: PromptStyle | None = None, shared: bool = False) -> list[int]:
    """Token ids of the prompt for ``question`` in format ``fmt`` (a :mod:`tim.tree` format)
    with tool specs ``tools``, laid out by ``style``: what :meth:`tim.Runtime.reason` feeds
    the model, and what ``tim train`` trains on.

    Examples
    --------
    >>> from tim.models import tiny_tokenizer
    >>> from tim.tree import get_format
    >>> ids = format_prompt(tiny_tokenizer(), get_format("thread2"), "2 + 2?",
    ...                     style=PromptStyle(instructions=False))
    >>> tiny_tokenizer().decode(ids)
    '<|im_start|>user\\n2 + 2?<|im_end|>\\n<|im_start|>assistant\\n'
    """
    style = style or PromptStyle()
    if not style.instructions:
        return build_prompt(tokenizer, tool_lines(tools), question)
    turns = (fmt.example_turns(tools, tool_example=style.tool_example)
             if style.examples == "turns" else ())
    instructions = fmt.instructions(tools, shared=shared, tool_example=style.tool_example,
                                    examples_inline=style.examples == "system")
    return build_prompt(tokenizer, instructions, question, turns=turns,
                        tools=tools if style.template_tools else ())


def build_prompt(tokenizer: Any, instructions: str, question: str, *,
                 turns: Sequence[tuple[str, str]] = (), tools: Sequence[Any] = ()) -> list[int]:
    """Token ids of the prompt: the model's chat template when it has one, plain text if not.

    ``turns`` are earlier ``(question, reply)`` exchanges (worked examples) put between the
    instructions and the question. ``tools`` (tool specs) also go to the chat template's
    ``tools`` argument; without a chat template they are left to the instructions. Empty
    ``instructions`` give no system message.
    """
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": instructions}] if instructions else []
        for asked, reply in turns:
            messages += [{"role": "user", "content": asked},
                         {"role": "assistant", "content": reply}]
        messages.append({"role": "user", "content": question})
        extra = {"tools": template_tools(tools)} if tools else {}
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                            **extra)
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # BatchEncoding in newer transformers
            ids = ids["input_ids"]
        return list(ids)
    shown = "".join(f"Question: {asked}\n\nAnswer (JSON):\n{reply}\n\n" for asked, reply in turns)
    head = f"{instructions}\n\n" if instructions else ""
    text = f"{head}{shown}Question: {question}\n\nAnswer (JSON):\n"
    return tokenizer.encode(text, add_special_tokens=False)
