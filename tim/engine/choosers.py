"""Who picks the next token: the sampler, or a replay of a recorded run or text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch

from tim.engine.sampler import SamplingParams, sample
from tim.engine.tool_bias import ToolBias
from tim.errors import TimError
from tim.tree import TaskPath

__all__ = ["Chooser", "SamplingChooser", "TokenReplay", "TextReplay"]


class Chooser(Protocol):
    seed: int

    def choose(self, streams: Sequence[Any], logits: torch.Tensor,
               bitmask: torch.Tensor | None = None) -> list[tuple[int, float]]:
        """One ``(token id, raw model log-probability)`` per stream; ``logits`` is (B, V);
        ``bitmask`` (B, ceil(V / 32)) int32 holds each stream's grammar mask, if any."""
        ...


class SamplingChooser:
    """Sample from the model (greedy when ``temperature == 0``), one generator per stream."""

    def __init__(self, params: SamplingParams, tokenizer: Any = None) -> None:
        self.params = params
        self.seed = params.seed
        self.tool_bias = None
        if params.tool_bias:
            if tokenizer is None:
                raise ValueError("tool_bias needs the tokenizer, to find the tokens that "
                                 "start a call")
            self.tool_bias = ToolBias(tokenizer, params.tool_bias)

    def choose(self, streams: Sequence[Any], logits: torch.Tensor,
               bitmask: torch.Tensor | None = None) -> list[tuple[int, float]]:
        bias = None if self.tool_bias is None else self.tool_bias.rows(streams, logits)
        out = sample(logits, self.params, [s.rng for s in streams], bitmask, bias)
        return list(zip(out.token_ids.tolist(), out.logprobs.tolist(), strict=True))


def _raw_logprobs(logits: torch.Tensor, tokens: list[int]) -> list[float]:
    logprobs = torch.log_softmax(logits.float(), dim=-1)  # (B, V)
    return logprobs[torch.arange(len(tokens)), torch.tensor(tokens)].tolist()


class TokenReplay:
    """Teacher-force the sampled tokens of a recorded run, stream by stream.

    Forced tokens (headers, tool results, join text) are produced by the runtime again, so
    only the sampled ones are replayed; the tree, forks and evictions follow from them.
    """

    seed = 0

    def __init__(self, sampled: Mapping[TaskPath, Sequence[int]]) -> None:
        self._tokens = {path: list(ids) for path, ids in sampled.items()}
        self._next = dict.fromkeys(self._tokens, 0)

    @classmethod
    def from_record(cls, record: Any) -> TokenReplay:
        return cls({
            path: [t for t, forced in zip(s.token_ids, s.forced, strict=True) if not forced]
            for path, s in record.streams.items()
        })

    def choose(self, streams: Sequence[Any], logits: torch.Tensor,
               bitmask: torch.Tensor | None = None) -> list[tuple[int, float]]:
        tokens = []
        for stream in streams:
            recorded = self._tokens.get(stream.path)
            i = self._next.get(stream.path, 0)
            if recorded is None or i >= len(recorded):
                raise TimError(f"replay: stream {list(stream.path)} asks for token {i + 1}, "
                               f"but the record has {0 if recorded is None else len(recorded)}")
            tokens.append(recorded[i])
            self._next[stream.path] = i + 1
        return list(zip(tokens, _raw_logprobs(logits, tokens), strict=True))


class TextReplay:
    """Teacher-force each stream's expected text, tokenized as it goes.

    The next token is the first token of the stream's remaining text, so forced parts that
    the runtime inserts itself (headers, tool results, join text) are skipped naturally. Used
    to drive a real tree shape through random weights.
    """

    seed = 0

    def __init__(self, texts: Mapping[TaskPath, str], tokenizer: Any, *, window: int = 256) -> None:
        self.texts, self.tokenizer, self.window = dict(texts), tokenizer, window

    def choose(self, streams: Sequence[Any], logits: torch.Tensor,
               bitmask: torch.Tensor | None = None) -> list[tuple[int, float]]:
        tokens = [self._next_token(stream) for stream in streams]
        return list(zip(tokens, _raw_logprobs(logits, tokens), strict=True))

    def _next_token(self, stream: Any) -> int:
        text, ends = stream.detok.text, stream.detok.char_ends
        expected = self.texts.get(stream.path)
        if expected is None or not expected.startswith(text) or len(text) >= len(expected):
            raise TimError(f"text replay: stream {list(stream.path)} diverged from its text "
                           f"after {len(text)} characters")
        # tokens pushed since the last character boundary (a multi-byte character in flight)
        j = len(ends)
        while j > 0 and ends[j - 1] == len(text):
            j -= 1
        emitted = len(text) > 0 and (j == 0 or ends[j - 1] < len(text))
        in_flight = len(ends) - j - int(emitted)
        ids = self.tokenizer.encode(expected[len(text): len(text) + self.window],
                                    add_special_tokens=False)
        return ids[in_flight]
