"""A decoding-time preference for tool calls: ``SamplingParams(tool_bias=b)``.

Where a task chooses its ``tooluse`` (right after the key ``"tooluse"``), the tokens that
would start a call (``{``) get ``b`` added to their logits before the choice; nothing else
changes. Small instruct models put a few per cent on the call there (Qwen2.5-Coder-0.5B:
2-6% against 92-98% on ``null``, measured in docs/evaluation.md), so greedy decoding never
calls; a bias of a few nats lets the ones that lean towards a call make it. The bias is not a
hint about any task: it applies at every ``tooluse`` choice, and the grammar still decides
which calls are well formed. Recorded log-probabilities stay the model's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch

__all__ = ["ToolBias", "choice_tail", "starts_call", "token_pieces", "call_starts"]

KEY = '"tooluse'  # the closing quote may come in one token with the colon and the choice


def choice_tail(text: str) -> str | None:
    """The text after the last ``"tooluse`` if the choice is still to be written (at most
    the closing quote, a colon and whitespace follow it), else None.

    >>> choice_tail('{"title": "a", "thought": "b", "tooluse":'), choice_tail('"tooluse": n')
    ('":', None)
    >>> choice_tail('"tooluse'), choice_tail('"tooluse": '), choice_tail('"tooluses"')
    ('', '": ', None)
    """
    at = text.rfind(KEY)
    if at < 0:
        return None
    tail = text[at + len(KEY):]
    return tail if tail == "" or (tail[0] == '"' and tail[1:].strip() in ("", ":")) else None


def starts_call(tail: str, piece: str) -> bool:
    """Whether ``piece`` written after ``tail`` (see :func:`choice_tail`) starts a call.

    >>> starts_call('":', ' {"'), starts_call('":', ' null'), starts_call("", '": {"')
    (True, False, True)
    """
    text = tail + piece
    head, colon, after = text[1:].partition(":")
    return text.startswith('"') and bool(colon) and not head.strip() and \
        after.lstrip().startswith("{")


@lru_cache(maxsize=4)
def token_pieces(tokenizer: Any, size: int) -> tuple[str, ...]:
    """Every token's text on its own (ids past the tokenizer's vocabulary: empty)."""
    n = len(tokenizer)
    return tuple(tokenizer.decode([i]) if i < n else "" for i in range(size))


@lru_cache(maxsize=16)
def call_starts(tokenizer: Any, tail: str, size: int) -> torch.Tensor:
    """(size,) bool: the tokens whose text, written after ``tail``, starts a call. Computed
    once per tokenizer and tail (a pass over the vocabulary), not once per run."""
    return torch.tensor([starts_call(tail, piece) for piece in token_pieces(tokenizer, size)])


class ToolBias:
    """``bias`` added to the call-starting tokens of every stream at its ``tooluse`` choice.

    Parameters
    ----------
    tokenizer : the model's tokenizer
    bias : float
        Nats added to the logits of the tokens that start a call; 0 changes nothing.
    """

    def __init__(self, tokenizer: Any, bias: float) -> None:
        self.tokenizer = tokenizer
        self.bias = float(bias)

    def rows(self, streams: Sequence[Any], logits: torch.Tensor) -> torch.Tensor | None:
        """(B, V) biases for ``streams``' rows of ``logits``, or None when no stream is at a
        ``tooluse`` choice."""
        tails = [choice_tail(stream.detok.text) for stream in streams]
        if self.bias == 0 or all(tail is None for tail in tails):
            return None
        vocab = logits.shape[1]
        starts = torch.stack([torch.zeros(vocab, dtype=torch.bool) if tail is None
                              else call_starts(self.tokenizer, tail, vocab) for tail in tails])
        return (starts * self.bias).to(device=logits.device, dtype=torch.float32)
