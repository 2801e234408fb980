"""What goes over the wire: a ``/v1/completions`` request body and the answer's tokens.

The body asks for token ids back (vLLM's ``return_token_ids``) and the sampled token's raw
log-prob (``logprobs: 0``), never stops at EOS (the grammar decides where a stream ends),
and carries a grammar mask as ``allowed_token_ids`` when one token must obey it.
"""

from __future__ import annotations

from typing import Any

import torch

from tim.remote.client import RemoteError

__all__ = ["completion_body", "parse_completion", "mask_allows", "allowed_ids"]


def completion_body(model: str, prompt: list[int], *, max_tokens: int, seed: int,
                    params: dict[str, Any], mask: torch.Tensor | None = None) -> dict[str, Any]:
    """The JSON body of one request; ``params``: sampling fields (temperature, top_p, top_k).

    Examples
    --------
    >>> mask = torch.tensor([0b1010], dtype=torch.int32)
    >>> completion_body("m", [1, 2], max_tokens=1, seed=7, params={}, mask=mask)["allowed_token_ids"]
    [1, 3]
    """
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "logprobs": 0,
            "return_token_ids": True, "ignore_eos": True, "seed": seed, **params}
    if mask is not None:
        body["allowed_token_ids"] = allowed_ids(mask)
    return body


def mask_allows(mask: torch.Tensor, token: int) -> bool:
    """Bit ``token`` of an llguidance bitmask row (bit j of word w: token 32 * w + j)."""
    word = token >> 5
    return word < mask.numel() and bool((int(mask[word]) >> (token & 31)) & 1)


def allowed_ids(mask: torch.Tensor) -> list[int]:
    """The token ids a bitmask row ``(ceil(V / 32),)`` int32 allows, ascending."""
    bits = torch.arange(32, dtype=torch.int32)
    allowed = ((mask.unsqueeze(-1) >> bits) & 1).bool().reshape(-1)  # (W * 32,)
    return allowed.nonzero().squeeze(1).tolist()


def parse_completion(answer: dict[str, Any], server: str, what: str
                     ) -> tuple[list[int], list[float]]:
    """``(token ids, log-probs)`` of the first choice of a ``/v1/completions`` answer."""
    try:
        choice = answer["choices"][0]
        tokens = [int(t) for t in choice["token_ids"]]
        logprobs = [float(lp) for lp in choice["logprobs"]["token_logprobs"]]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise RemoteError(f"{server} answered the {what} without token ids and log-probs "
                          f"({exc!r}); it needs vLLM's 'return_token_ids' and 'logprobs'") from exc
    if not tokens or len(tokens) != len(logprobs):
        raise RemoteError(f"{server} answered the {what} with {len(tokens)} tokens and "
                          f"{len(logprobs)} log-probs (finish_reason "
                          f"{choice.get('finish_reason')!r}); expected the same number, >= 1")
    return tokens, logprobs
