"""Grammar-constrained decoding: one llguidance matcher per stream, masks applied in torch."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import torch

from tim.errors import TimError
from tim.tree import ToolSpec

__all__ = ["GrammarSet", "StreamGrammar"]


class StreamGrammar:
    """The matcher of one stream. Every token the stream writes, sampled or forced, goes
    through :meth:`consume`, so the matcher is always at the stream's end."""

    def __init__(self, matcher: Any) -> None:
        self.matcher = matcher

    @property
    def error(self) -> str | None:
        return self.matcher.get_error() if self.matcher.is_error() else None

    def fill_mask(self, bitmask: torch.Tensor, row: int) -> None:
        """Write the allowed-token bits of the next token into ``bitmask[row]`` (int32, CPU)."""
        words = bitmask[row]  # (W,) int32, contiguous
        self.matcher.unsafe_compute_mask_ptr(words.data_ptr(), words.numel() * 4)

    def consume(self, token_ids: Sequence[int]) -> bool:
        """Advance over ``token_ids``; False (and :attr:`error` set) when the grammar rejects."""
        if not token_ids:
            return True
        return bool(self.matcher.consume_tokens(list(token_ids))) and not self.matcher.is_error()


class GrammarSet:
    """Builds matchers for a format's streams; compiled grammars are cached per depth.

    Parameters
    ----------
    fmt
        A :class:`tim.tree.Format`.
    tokenizer
        The Hugging Face tokenizer (fast); wrapped once for llguidance.
    max_depth, max_fanout : int
        Limits the grammar enforces.
    tools : sequence of ToolSpec
        Allowed tool names and their parameter schemas.
    """

    def __init__(self, fmt: Any, tokenizer: Any, *, max_depth: int, max_fanout: int,
                 tools: Sequence[ToolSpec] = (), max_string_chars: int | None = None,
                 vocab_size: int | None = None) -> None:
        import llguidance
        import llguidance.hf

        try:
            self.lltokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)
        except Exception as exc:  # llguidance needs a fast (tokenizers-backed) tokenizer
            raise TimError(
                f"cannot build a grammar for tokenizer {type(tokenizer).__name__}: {exc}; "
                "pass structure='free' to decode without a grammar"
            ) from exc
        self._llguidance = llguidance
        self.fmt, self.max_depth, self.max_fanout = fmt, max_depth, max_fanout
        self.tools = tuple(tools)
        self.max_string_chars = max_string_chars
        self.vocab_size = self.lltokenizer.vocab_size

    @cache  # noqa: B019 - one GrammarSet per engine; the cache dies with it
    def _grammar(self, depth: int) -> str:
        return self.fmt.grammar(max_depth=self.max_depth, max_fanout=self.max_fanout,
                                tools=self.tools, depth=depth,
                                max_string_chars=self.max_string_chars)

    def for_stream(self, depth: int) -> StreamGrammar:
        matcher = self._llguidance.LLMatcher(self.lltokenizer, self._grammar(depth), log_level=1)
        if matcher.is_error():
            raise TimError(f"llguidance rejected the {self.fmt.name} grammar: "
                           f"{matcher.get_error()}")
        return StreamGrammar(matcher)

    def new_bitmask(self, num_rows: int) -> torch.Tensor:
        """(num_rows, ceil(V / 32)) int32, all allowed until a matcher fills its row.

        Built here rather than with ``llguidance.torch``, whose import pulls in
        torch.compile machinery (seconds of start-up) for helpers tim does not use.
        """
        return torch.full((num_rows, (self.vocab_size + 31) // 32), -1, dtype=torch.int32)

    def masks(self, grammars: list[StreamGrammar]) -> torch.Tensor:
        """The bitmask of one sampling step: row ``i`` filled by ``grammars[i]``."""
        bitmask = self.new_bitmask(len(grammars))
        for row, grammar in enumerate(grammars):
            grammar.fill_mask(bitmask, row)
        return bitmask
