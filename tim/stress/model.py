"""The default stress model: a tiny random Qwen3 whose tokenizer knows the format's keys."""

from __future__ import annotations

from typing import Any

__all__ = ["FORMAT_TOKENS", "stress_model"]

# The byte-level tiny tokenizer spends one token per character, ~85 tokens of keys per task,
# so a 512-token window would hold a tree only two or three levels deep. A trained BPE merges
# such strings; these added tokens do the same, so structure costs a few tokens per task.
FORMAT_TOKENS = (
    '{"reasoning": [', '[{"title": "', '"}, {"title": "', '"}]', '{"title": "',
    '", "thought": "', '", "tooluse": null', ', "subtasks": ', 'null, "conclusion": "',
    '], "conclusion": "', ', "conclusion": "', '], "answer": "', ', "answer": "', '"}', ', ',
    '", "tooluse": {"tool_name": "', '", "parameters": {', '"n": ', ', "tool_result": ',
)


def stress_model(*, byte_tokens: bool = False, num_layers: int = 2, hidden_size: int = 64,
                 max_position_embeddings: int = 512, seed: int = 0) -> Any:
    """A random-weight Qwen3 ``LoadedModel`` for stress runs (fp32, CPU).

    Its tokenizer is :func:`tim.models.tiny_tokenizer` plus :data:`FORMAT_TOKENS` as added
    tokens (ids 259 and up), unless ``byte_tokens``.

    Examples
    --------
    >>> loaded = stress_model()
    >>> len(loaded.tokenizer.encode('{"title": "a", "thought": "', add_special_tokens=False))
    3
    """
    from tim.models import tiny_model
    from tim.models.loading import LoadedModel
    from tim.models.tiny import NUM_BYTE_TOKENS, SPECIAL_TOKENS

    extra = () if byte_tokens else FORMAT_TOKENS
    loaded = tiny_model("qwen3", num_layers=num_layers, hidden_size=hidden_size,
                        max_position_embeddings=max_position_embeddings,
                        vocab_size=NUM_BYTE_TOKENS + len(SPECIAL_TOKENS) + len(extra), seed=seed)
    tokenizer = loaded.tokenizer
    tokenizer.add_tokens(list(extra))
    suffix = "bytes" if byte_tokens else "format tokens"
    return LoadedModel(loaded.model, tokenizer, f"{loaded.name} random, {suffix}")
