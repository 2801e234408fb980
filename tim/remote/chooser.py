"""The chooser of a remote run: the server samples; tim's grammar checks every token.

Streams keep their own llguidance matchers (one owner of the grammar state, as in a local
run): the server's structured outputs start a grammar at the first generated token, but a
stream resumes mid-document after every forced text, tool result or join, so the server
decodes freely and each token it proposes is checked against the stream's mask. A token
the mask rejects is asked again, alone, with ``allowed_token_ids`` set to the mask. For
greedy decoding that gives exactly the masked argmax a local run takes; for plain
temperature sampling, exactly the masked distribution (a rejected draw is redrawn from the
allowed tokens); ``top_p`` / ``top_k`` are then applied over the unmasked distribution for
the first draw, so they differ slightly from a local run's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from tim.engine.sampler import SamplingParams
from tim.remote.executor import RemoteExecutor, TokenRequest

__all__ = ["ServerChooser", "request_seed"]


class ServerChooser:
    """A :class:`~tim.engine.choosers.Chooser` that takes the server's tokens.

    Parameters
    ----------
    executor : RemoteExecutor
        The executor whose views the streams hold.
    params : SamplingParams
        Passed through to every request (temperature, top_p, top_k; seeds per request).
    """

    def __init__(self, executor: RemoteExecutor, params: SamplingParams) -> None:
        self.executor, self.params, self.seed = executor, params, params.seed
        self.body = {"temperature": params.temperature, "top_p": params.top_p,
                     "top_k": params.top_k or -1}

    def choose(self, streams: Sequence[Any], logits: torch.Tensor,
               bitmask: torch.Tensor | None = None) -> list[tuple[int, float]]:
        """One ``(token, server log-prob)`` per stream; ``logits`` is ``(B, 0)`` (unused);
        ``bitmask`` (B, ceil(V / 32)) int32: each stream's grammar mask, if any."""
        requests = [
            TokenRequest(stream.view, stream.path,
                         request_seed(self.seed, stream.path, stream.view.num_tokens),
                         None if bitmask is None else bitmask[row])
            for row, stream in enumerate(streams)
        ]
        return self.executor.next_tokens(requests, self.body)


def request_seed(seed: int, stream: Any, num_tokens: int) -> int:
    """The seed of a stream's request at a view length: the same run asks the same."""
    digest = hashlib.blake2b(f"{seed}:{stream!r}:{num_tokens}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF
