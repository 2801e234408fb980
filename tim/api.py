"""The public Python surface: :class:`Runtime` turns a question into a :class:`Result`."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.engine.record import RunEvent, RunRecord
from tim.engine.sampler import SamplingParams
from tim.models.loading import LoadedModel, load_model
from tim.prompt import PromptStyle, build_prompt, format_prompt, template_tools
from tim.remote.entry import load_tokenizer, remote_for
from tim.result import Result
from tim.tools import ToolRegistry
from tim.tree import get_format

__all__ = ["Runtime", "build_prompt", "PromptStyle", "template_tools"]


def _check_question(question: Any) -> None:
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-empty string, got {question!r}")


class Runtime:
    """A model plus a decoding configuration; :meth:`reason` runs one question.

    Parameters
    ----------
    model : str or (model, tokenizer)
        ``"smollm2-135m"`` (the bundled default), an HF id or local path, a ``.gguf`` file,
        or an already-built ``(model, tokenizer)`` pair; or ``"openai:URL"`` (e.g.
        ``"openai:http://127.0.0.1:8000/v1"``): an OpenAI-compatible server such as vLLM
        runs the model and tim orchestrates (docs/scale-out.md).
    served_model : str, optional
        With ``"openai:URL"``: the server's model name (vLLM's ``--served-model-name``).
    tokenizer : tokenizer or str, optional
        With ``"openai:URL"``: the served model's tokenizer, or a bundled name, folder or
        hub id to load it from (prompts go to the server as token ids).
    format : str
        ``"parallel"`` (siblings decode concurrently) or ``"thread2"`` (TIM's inline format).
    max_workers, pruning, positions, max_depth, max_fanout
        See :class:`tim.engine.config.EngineConfig`. ``positions`` defaults to ``"shift"``
        in-process and ``"reencode"`` (the only one it supports) on a server.
    kv_budget_tokens : int, optional
        KV slots for the whole tree; default 32768.
    max_position : int, optional
        The context window: positions stay below it. A run that would feed a position at or
        past it ends before that forward, with ``result.error`` starting
        ``"PositionWindowError: "``; a prompt longer than it raises
        :class:`~tim.errors.PositionWindowError`. None (the default): the model's
        ``max_position_embeddings``; no limit on a server unless given. ``positions="shift"``
        with pruning keeps a long tree below it (:class:`tim.engine.config.EngineConfig`).
    device, dtype
        Where and in what precision a loaded model runs (``"auto"``: CUDA if present).
    backend : str
        Attention backend of :mod:`tim.kernels` (``"auto"`` picks the best for the device).
    structure : str
        ``"grammar"`` (default) or ``"free"``.
    max_string_chars : int, optional
        Longest string the grammar lets a task field hold (None: no cap).
    siblings : str
        ``"isolated"`` (default) or ``"shared"``: sibling workers see each other's tokens as
        they write them (Hogwild-style; ``parallel`` format, positions ``shift`` or ``keep``).
    collaboration_prompt : bool
        With ``siblings="shared"``, tell the model in its instructions that it is one of
        several workers that see each other and should not duplicate their work (default).
        False keeps the isolated instructions, to measure what the prompt does.
    prompt_style : PromptStyle, optional
        Where the worked examples go, whether a tool-call example is added, whether the chat
        template sees the tools (default ``PromptStyle()``).
    tool_bias : float
        Nats added to a tool call at every ``tooluse`` choice (:mod:`tim.engine.tool_bias`);
        0 (default) leaves the model's choice alone. Needs tim's own sampler.
    seed : int
        Seeds sampling; each stream draws from its own generator.

    One :class:`~tim.engine.engine.Engine` (grammar, tokenizer tables, tool registry) is
    built on the first call and reused by the next ones; it is rebuilt only when a call
    offers other tools.

    Examples
    --------
    >>> from tim.models import tiny_model
    >>> rt = Runtime(model=tiny_model("qwen3")[:2], format="thread2", max_depth=1)
    >>> result = rt.reason("2 + 2?", max_new_tokens=64, temperature=0)
    >>> result.stats.tokens_generated <= 64
    True
    """

    def __init__(
        self,
        model: Any = "smollm2-135m",
        *,
        format: str = "parallel",
        max_workers: int = 8,
        pruning: Any = "buffer:1",
        positions: str | None = None,
        max_depth: int = 4,
        max_fanout: int = 6,
        kv_budget_tokens: int | None = None,
        max_position: int | None = None,
        device: str | None = "auto",
        dtype: Any = None,
        backend: str = "auto",
        structure: str = "grammar",
        max_string_chars: int | None = None,
        siblings: str = "isolated",
        collaboration_prompt: bool = True,
        prompt_style: PromptStyle | None = None,
        tool_bias: float = 0.0,
        seed: int = 0,
        served_model: str | None = None,
        tokenizer: Any = None,
    ) -> None:
        self.remote = remote_for(model, served_model, tokenizer)  # None: the model runs here
        positions = positions or ("reencode" if self.remote else "shift")
        self.config = EngineConfig(
            format=format, max_workers=max_workers, pruning=pruning, positions=positions,
            max_depth=max_depth, max_fanout=max_fanout, structure=structure,
            kv_budget_tokens=kv_budget_tokens or 32768, max_string_chars=max_string_chars,
            siblings=siblings, max_position=max_position,
        )
        self.collaboration_prompt = collaboration_prompt
        if prompt_style is not None and not isinstance(prompt_style, PromptStyle):
            raise ValueError(f"prompt_style must be a PromptStyle, got {prompt_style!r}")
        self.prompt_style = prompt_style or PromptStyle()
        self.loaded = (LoadedModel(None, load_tokenizer(tokenizer), served_model)
                       if self.remote else load_model(model, device=device, dtype=dtype))
        self.backend, self.seed = backend, seed
        self.tool_bias = SamplingParams(tool_bias=tool_bias).tool_bias  # checked here
        self.format = get_format(format)
        # Runtime.cancel() reaches the engine of the call in progress, or the next call's.
        self._lock = threading.Lock()
        self._active: Engine | None = None
        self._cancel_next = False
        self._engine: Engine | None = None
        self._engine_specs: tuple = ()

    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer

    def instructions(self, tools: Sequence[Any] = ()) -> str:
        """The format's instructions for this configuration (tool specs ``tools``): with the
        collaboration prompt when siblings are shared and ``collaboration_prompt`` is on."""
        shared = self.config.siblings == "shared" and self.collaboration_prompt
        style = self.prompt_style
        return self.format.instructions(tools, shared=shared, tool_example=style.tool_example,
                                        examples_inline=style.examples == "system")

    def prompt(self, question: str, tools: Sequence[Any] = ()) -> list[int]:
        """Token ids of the prompt for ``question`` with tool specs ``tools``, laid out by
        :attr:`prompt_style`: what :meth:`reason` feeds the model."""
        shared = self.config.siblings == "shared" and self.collaboration_prompt
        return format_prompt(self.tokenizer, self.format, question, tools=tools,
                             style=self.prompt_style, shared=shared)

    def engine(self, *, tools: Sequence[Callable] = ()) -> Engine:
        """The :class:`~tim.engine.engine.Engine` of this runtime's model and configuration,
        built once and rebuilt only when the specs of ``tools`` (names, descriptions,
        parameters) differ from the last call's: a question's own closures with the same
        signatures reuse it, each call running its own callables."""
        specs = ToolRegistry(tools).specs
        if self._engine is None or specs != self._engine_specs:
            self._engine = Engine(self.loaded.model, self.tokenizer, self.config, tools=tools,
                                  backend=self.backend, executor=self.remote)
            self._engine_specs = specs
        return self._engine

    def reason(
        self,
        question: str,
        *,
        tools: Sequence[Callable] = (),
        max_new_tokens: int = 4096,
        temperature: float = 0.7,
        top_p: float = 0.95,
        top_k: int = 0,
        on_step: Callable[[RunRecord], None] | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
    ) -> Result:
        """Reason about ``question`` as a task tree; return the answer, tree and stats.

        ``on_step(record)`` runs after every decode step and ``on_event(event)`` for every
        :class:`~tim.engine.record.RunEvent` (tokens, tasks, tools, forks, joins, pruning).
        """
        _check_question(question)
        engine = self.engine(tools=tools)
        sampling = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k,
                                  seed=self.seed, tool_bias=self.tool_bias)
        return self._reason(engine, question, sampling, max_new_tokens=max_new_tokens,
                            on_step=on_step, on_event=on_event, tools=tools)

    def _reason(self, engine: Engine, question: str, sampling: SamplingParams, *,
                max_new_tokens: int, on_step: Callable[[RunRecord], None] | None,
                on_event: Callable[[RunEvent], None] | None,
                tools: Sequence[Callable] = ()) -> Result:
        prompt = self.prompt(question, engine.tools.specs)
        with self._activated(engine):
            record = engine.run(prompt, sampling=sampling, on_step=on_step, on_event=on_event,
                                max_new_tokens=max_new_tokens, tools=tools)
        return Result.of(record, question=question, model=self.loaded.name)

    @contextmanager
    def _activated(self, engine: Engine) -> Iterator[Engine]:
        """Make ``engine`` the target of :meth:`cancel` while the block runs."""
        with self._lock:
            self._active = engine
            if self._cancel_next:  # cancelled before this call reached its engine
                self._cancel_next = False
                engine.cancel()
        try:
            yield engine
        finally:
            with self._lock:
                self._active = None

    def reason_many(
        self,
        questions: Sequence[str],
        *,
        max_new_tokens: int = 4096,
        temperature: float = 0.7,
        top_p: float = 0.95,
        top_k: int = 0,
    ) -> list[Result]:
        """Reason about several questions at once: their streams share every forward.

        Each question gets its own tree, budget and sampling seed (``seed + i``); the KV
        budget is shared. Tools are not offered here (use :meth:`reason`).

        Examples
        --------
        >>> from tim.models import tiny_model
        >>> rt = Runtime(model=tiny_model("qwen3")[:2], format="thread2", max_depth=1)
        >>> results = rt.reason_many(["2 + 2?", "3 + 3?"], max_new_tokens=20)
        >>> [r.question for r in results]
        ['2 + 2?', '3 + 3?']
        """
        for question in questions:
            _check_question(question)
        engine = self.engine()
        prompts = [self.prompt(q) for q in questions]
        sampling = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k,
                                  seed=self.seed, tool_bias=self.tool_bias)
        with self._activated(engine):
            records = engine.run_many(prompts, sampling=sampling, max_new_tokens=max_new_tokens)
        return [Result.of(r, question=q, model=self.loaded.name)
                for r, q in zip(records, questions, strict=True)]

    def cancel(self) -> None:
        """Cancel the :meth:`reason` (or :meth:`reason_many`, :meth:`stream`) in progress.

        Safe from any thread and from ``on_step``. The call in progress stops before its
        next decode step; with none in progress, the next call stops before its first. Either
        way every KV page is freed and the result's ``error`` is ``"cancelled"``.

        Examples
        --------
        >>> from tim.models import tiny_model
        >>> rt = Runtime(model=tiny_model("qwen3")[:2], format="thread2", max_depth=1)
        >>> rt.cancel()
        >>> result = rt.reason("2 + 2?", max_new_tokens=64)
        >>> result.error, result.stats.num_steps
        ('cancelled', 0)
        """
        with self._lock:
            if self._active is not None:
                self._active.cancel()
            else:
                self._cancel_next = True

    def stream(
        self,
        question: str,
        *,
        tools: Sequence[Callable] = (),
        max_new_tokens: int = 4096,
        temperature: float = 0.7,
        top_p: float = 0.95,
        top_k: int = 0,
        on_step: Callable[[RunRecord], None] | None = None,
    ) -> Iterator[RunEvent | Result]:
        """Like :meth:`reason`, but yields live :class:`~tim.engine.record.RunEvent` s as the
        tree is decoded, then the :class:`Result` last. Leaving the loop early cancels the run.

        Examples
        --------
        >>> from tim.models import tiny_model
        >>> rt = Runtime(model=tiny_model("qwen3")[:2], format="thread2", max_depth=1)
        >>> items = list(rt.stream("2 + 2?", max_new_tokens=30, temperature=0))
        >>> items[0].kind, type(items[-1]).__name__
        ('token', 'Result')
        """
        _check_question(question)
        engine = self.engine(tools=tools)
        sampling = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k,
                                  seed=self.seed, tool_bias=self.tool_bias)
        events: queue.Queue = queue.Queue()
        done = object()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["result"] = self._reason(engine, question, sampling,
                                                 max_new_tokens=max_new_tokens,
                                                 on_step=on_step, on_event=events.put,
                                                 tools=tools)
            except BaseException as exc:  # handed to the consumer below
                outcome["error"] = exc
            finally:
                events.put(done)

        worker = threading.Thread(target=work, name="tim-stream", daemon=True)
        worker.start()
        try:
            while (item := events.get()) is not done:
                yield item
        finally:
            if worker.is_alive():  # left early: cancel this call's run only
                engine.cancel()
                worker.join()
                engine.withdraw_cancel()  # (the run may have ended before it took it)
        if "error" in outcome:
            raise outcome["error"]
        yield outcome["result"]
