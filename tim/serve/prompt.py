"""A chat request's prompt: tim's format instructions, then the client's messages."""

from __future__ import annotations

from typing import Any

from tim.serve.protocol import Turn

__all__ = ["chat_prompt_ids"]


def chat_prompt_ids(tokenizer: Any, instructions: str, system: str,
                    turns: tuple[Turn, ...]) -> list[int]:
    """Token ids of the prompt for ``turns`` (the last is the user's question).

    The system message is the format's ``instructions``, then the client's ``system`` text.
    With a chat template the turns go through it; without one they are written as plain
    text. One user turn and no system text give the prompt :func:`tim.api.build_prompt`
    gives, so a served run and ``Runtime.reason`` see the same tokens.

    Examples
    --------
    >>> from tim.models import tiny_tokenizer
    >>> tok = tiny_tokenizer()
    >>> ids = chat_prompt_ids(tok, "Answer in JSON.", "", (Turn("user", "2 + 2?"),))
    >>> print(tok.decode(ids))
    <|im_start|>system
    Answer in JSON.<|im_end|>
    <|im_start|>user
    2 + 2?<|im_end|>
    <|im_start|>assistant
    <BLANKLINE>
    """
    system_text = f"{instructions}\n\n{system}" if system else instructions
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system_text}]
        messages += [{"role": turn.role, "content": turn.text} for turn in turns]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if hasattr(ids, "keys"):  # a BatchEncoding in newer transformers
            ids = ids["input_ids"]
        return list(ids)
    earlier = "".join(f"{turn.role.capitalize()}: {turn.text}\n\n" for turn in turns[:-1])
    text = f"{system_text}\n\n{earlier}Question: {turns[-1].text}\n\nAnswer (JSON):\n"
    return tokenizer.encode(text, add_special_tokens=False)
