"""Incremental detokenization: token ids in, text chunks out, with each token's end offset."""

from __future__ import annotations

from typing import Any

__all__ = ["Detokenizer"]


class Detokenizer:
    """Turns a growing list of token ids into text, one chunk per token.

    Decoding one id at a time breaks multi-byte characters and tokenizers that drop a leading
    space, so each step decodes a short window and emits only the new suffix. A token that ends
    inside a character emits ``""`` and the character comes out with a later token.

    ``char_ends[i]`` is the text length once token ``i`` is in, so a parser offset maps back to
    the first token whose end reaches it.

    Examples
    --------
    >>> class Chars:  # a toy tokenizer: one id per character
    ...     def decode(self, ids, **kw): return "".join(chr(i) for i in ids)
    >>> d = Detokenizer(Chars())
    >>> [d.push(ord(c)) for c in "hey"], d.text, d.char_ends
    (['h', 'e', 'y'], 'hey', [1, 2, 3])
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.token_ids: list[int] = []
        self.char_ends: list[int] = []
        self.text = ""
        self._prefix_offset = 0  # window start: tokens before it are settled
        self._read_offset = 0  # tokens before it have been emitted as text

    def push(self, token_id: int) -> str:
        self.token_ids.append(int(token_id))
        window = self.token_ids[self._prefix_offset :]
        prefix_text = self._decode(self.token_ids[self._prefix_offset : self._read_offset])
        full_text = self._decode(window)
        new_text = ""
        if len(full_text) > len(prefix_text) and not full_text.endswith("\ufffd"):
            new_text = full_text[len(prefix_text) :]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self.token_ids)
        self.text += new_text
        self.char_ends.append(len(self.text))
        return new_text

    def token_at(self, offset: int) -> int:
        """Index of the first token whose text reaches ``offset`` (0 <= offset <= len(text))."""
        lo, hi = 0, len(self.char_ends)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.char_ends[mid] >= offset:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
