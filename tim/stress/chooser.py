"""The stress chooser: structure from a fixed shape, content sampled from the model."""

from __future__ import annotations

import bisect
import itertools
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tim.errors import TimError
from tim.stress.shape import Content, Forced, Segment
from tim.tree import TaskPath

__all__ = ["ShapeChooser", "StructureError", "allowed_token_mask"]


class StructureError(TimError):
    """A stream's text left the forced shape (a tokenizer that does not round-trip the
    structural text, or a forced text other than the one expected)."""


def allowed_token_mask(tokenizer: Any, vocab_size: int) -> torch.Tensor:
    """(vocab_size,) bool: tokens that may appear inside a JSON string as sampled content.

    A token is allowed when it decodes, on its own, to whole characters none of which is
    ``"``, ``\\``, a control character or U+FFFD (a cut multi-byte character). Special and
    added tokens, and ids past the tokenizer (padding of the logit width), are not.

    Examples
    --------
    >>> from tim.models import tiny_tokenizer
    >>> mask = allowed_token_mask(tiny_tokenizer(), 259)
    >>> [bool(mask[ord(c)]) for c in 'a "\\\\\\n'], int(mask.sum())
    ([True, True, False, False, False], 93)
    """
    num_ids = min(vocab_size, len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in range(num_ids)], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
    excluded = set(getattr(tokenizer, "all_special_ids", ()))
    excluded |= set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    for i, text in enumerate(texts):
        mask[i] = bool(text) and i not in excluded and all(
            c not in '"\\\ufffd' and unicodedata.category(c) not in ("Cc", "Cs") for c in text
        )
    if not mask.any():
        raise TimError("no token of this tokenizer can be sampled inside a JSON string")
    return mask


@dataclass
class _Cursor:
    index: int = 0  # current segment
    start: int = 0  # text offset where it begins
    count: int = 0  # tokens sampled into it (Content)


class ShapeChooser:
    """A :class:`~tim.engine.choosers.Chooser` that writes a fixed tree shape.

    At a :class:`Content` segment it samples from the model's logits over the allowed
    tokens (greedy when ``temperature == 0``, else from each stream's own seeded generator)
    and counts them; once the field's budget is spent it writes the next
    :class:`~tim.stress.shape.Literal` token by token, the first token of what is left.
    Text the runtime forces (child headers, join texts, tool results) is already in the
    stream when it asks for its next token, so :class:`Forced` segments are only checked,
    as :class:`~tim.engine.choosers.TextReplay` skips them.

    Parameters
    ----------
    segments : mapping of stream path -> list of Segment
        From :func:`tim.stress.shape.stream_segments`.
    tokenizer
        The model's tokenizer.
    allowed : (V,) bool tensor
        From :func:`allowed_token_mask`; V is the logit width.
    temperature : float
    seed : int
    """

    def __init__(self, segments: Mapping[TaskPath, Sequence[Segment]], tokenizer: Any,
                 allowed: torch.Tensor, *, temperature: float = 0.0, seed: int = 0) -> None:
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}")
        self.segments = {path: list(segs) for path, segs in segments.items()}
        self.tokenizer, self.temperature, self.seed = tokenizer, temperature, seed
        self._penalty = torch.where(allowed, 0.0, float("-inf"))  # (V,) additive mask
        self._cursors: dict[TaskPath, _Cursor] = {}
        self.content: dict[str, list[int]] = {}  # field key -> sampled token ids
        self._encoded: dict[str, tuple[list[int], list[int]]] = {}  # literal -> ids, char ends

    def choose(self, streams: Sequence[Any], logits: torch.Tensor,
               bitmask: torch.Tensor | None = None) -> list[tuple[int, float]]:
        logits = logits.float().cpu()  # (B, V); the streams' generators live on the CPU
        tokens = [self._next_token(stream, logits[row]) for row, stream in enumerate(streams)]
        logz = torch.logsumexp(logits, dim=-1)  # (B,)
        picked = logits[torch.arange(len(tokens)), torch.tensor(tokens)] - logz
        return list(zip(tokens, picked.tolist(), strict=True))

    def _next_token(self, stream: Any, logits: torch.Tensor) -> int:
        path, text = stream.path, stream.detok.text
        segs = self.segments.get(path)
        if segs is None:
            raise StructureError(f"stream {list(path)} is not part of the forced shape")
        cur = self._cursors.setdefault(path, _Cursor())
        while cur.index < len(segs):
            seg = segs[cur.index]
            if isinstance(seg, Content):
                if cur.count < seg.num_tokens:
                    cur.count += 1
                    token = self._sample(logits, stream.rng)
                    self.content.setdefault(seg.key, []).append(token)
                    return token
                cur.index, cur.start, cur.count = cur.index + 1, len(text), 0
                continue
            written = text[cur.start:]
            if len(written) >= len(seg.text):
                if not written.startswith(seg.text):
                    raise self._diverged(path, seg, written)
                cur.index, cur.start = cur.index + 1, cur.start + len(seg.text)
                continue
            if not seg.text.startswith(written):
                raise self._diverged(path, seg, written)
            if isinstance(seg, Forced):
                raise StructureError(f"stream {list(path)}: the runtime did not force "
                                     f"{seg.text!r} (found {written!r})")
            return self._literal_token(seg.text, len(written))
        raise StructureError(f"stream {list(path)} asks for a token after the end of its shape")

    def _literal_token(self, text: str, offset: int) -> int:
        """The next token of ``text`` once ``offset`` characters of it are written."""
        if text not in self._encoded:
            # structural text is ASCII, so every token of its encoding ends on a character
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            ends = list(itertools.accumulate(
                len(self.tokenizer.decode([i], clean_up_tokenization_spaces=False)) for i in ids))
            self._encoded[text] = (ids, ends if ends and ends[-1] == len(text) else [])
        ids, ends = self._encoded[text]
        k = bisect.bisect_left(ends, offset)
        if offset == 0 and ids:
            return ids[0]
        if k < len(ends) and ends[k] == offset and k + 1 < len(ids):
            return ids[k + 1]
        rest = text[offset:offset + 64]  # written text ends inside a token: encode the rest
        return self.tokenizer.encode(rest, add_special_tokens=False)[0]

    def _sample(self, logits: torch.Tensor, rng: torch.Generator) -> int:
        masked = logits + self._penalty  # (V,)
        if self.temperature == 0:
            return int(masked.argmax())
        probs = torch.softmax(masked / self.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=rng))

    @staticmethod
    def _diverged(path: TaskPath, seg: Segment, written: str) -> StructureError:
        return StructureError(f"stream {list(path)} left its shape: expected {seg.text!r}, "
                              f"the stream has {written[:len(seg.text)]!r}")
