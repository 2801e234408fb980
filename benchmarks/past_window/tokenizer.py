"""A byte-level BPE trained on the spot on both trace styles.

Digits are split one per token (as Llama's tokenizer does), so paths, tool results and sums
are spelled digit by digit; everything else may merge, so a format's JSON keys become a few
tokens, as they would with a real model's tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["EOS", "train_tokenizer", "encode_segments"]

EOS = "<|endoftext|>"


def train_tokenizer(texts: Iterable[str], *, vocab_size: int) -> Any:
    """A ``PreTrainedTokenizerFast`` with ``vocab_size`` entries at most, ``EOS`` as eos and pad.

    Examples
    --------
    >>> tok = train_tokenizer(['{"title": "p01"}'] * 20, vocab_size=300)
    >>> tok.decode(tok.encode('{"title": "p10"}'))
    '{"title": "p10"}'
    >>> [tok.decode([i]) for i in tok.encode("p10")]
    ['p', '1', '0']
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 260:
        raise ValueError(f"vocab_size must be an int >= 260 (the bytes and EOS), got {vocab_size!r}")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS, pad_token=EOS,
                                   clean_up_tokenization_spaces=False)


def encode_segments(tokenizer: Any, segments: Iterable[Any]) -> tuple[list[int], list[bool]]:
    """Token ids of a trace and, per token, whether the runtime forces it.

    Each segment is encoded on its own, as the runtime encodes a forced text on its own.
    """
    ids: list[int] = []
    forced: list[bool] = []
    for seg in segments:
        new = tokenizer.encode(seg.text, add_special_tokens=False)
        ids += new
        forced += [seg.forced] * len(new)
    return ids, forced
