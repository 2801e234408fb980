"""The engine: a model, a configuration and tools; :meth:`Engine.run` decodes one tree."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from tim.cache import CacheConfig, KVStore, num_pages_for_tokens
from tim.engine.cascade_cost import CascadeCost, measure_cascade_cost
from tim.engine.choosers import Chooser, SamplingChooser
from tim.engine.config import EngineConfig
from tim.engine.constraint import GrammarSet
from tim.engine.executor import Executor, PagedExecutor
from tim.engine.record import RunEvent, RunRecord
from tim.engine.run import Run
from tim.engine.runner import ModelRunner
from tim.engine.sampler import SamplingParams
from tim.errors import TimError
from tim.kernels.backends import get_backend
from tim.models.spec import check_supported, inspect_model
from tim.tools import ToolRegistry
from tim.tree import get_format

__all__ = ["Engine", "default_chooser"]


def default_chooser(executor: Executor, sampling: SamplingParams,
                    tokenizer: Any = None) -> Chooser:
    """The executor's own chooser when its model samples (a remote server), else tim's
    sampler (``tokenizer`` is for ``sampling.tool_bias``)."""
    own = getattr(executor, "chooser", None)
    if own is None:
        return SamplingChooser(sampling, tokenizer)
    if sampling.tool_bias:
        raise ValueError("tool_bias needs tim's own sampler; a remote server samples for "
                         "itself")
    return own(sampling)


class Engine:
    """Decodes one task tree per :meth:`run` on a Hugging Face causal LM.

    Parameters
    ----------
    model, tokenizer
        A transformers causal LM (any architecture whose attention goes through the
        attention-function registry, with RoPE) and its tokenizer.
    config : EngineConfig
    tools : sequence of callables, or ToolRegistry
        Tools the model may call; the grammar allows exactly their names and parameter
        schemas. Calls run in a thread pool while other streams decode.
    tool_timeout_s : float
        A call still running after this long becomes ``{"error": ...}`` in ``tool_result``.
    backend : str
        The attention backend of :mod:`tim.kernels` (``"auto"``, ``"torch"``,
        ``"torch-cuda"``, ``"sdpa"``, ``"flash"``).
    executor : callable, optional
        Builds the executor of each call (``executor() -> Executor``), e.g.
        :class:`tim.remote.Remote` for an OpenAI-compatible server. Then ``model`` is
        None: the engine needs only the tokenizer and the config. None (the default): the
        local paged-KV executor over ``model``.

    Attributes
    ----------
    max_position : int or None
        The context window runs stay below: ``config.max_position``, else the model's
        ``max_position_embeddings`` (None with a remote executor: no limit).

    Notes
    -----
    An executor whose model samples for itself (a remote server) has a ``chooser(sampling)``
    method; a run without an explicit ``chooser`` then takes its tokens from it. An executor
    with an ``abort()`` method has its requests in flight aborted by :meth:`cancel`.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        config: EngineConfig,
        *,
        tools: Sequence[Callable] | ToolRegistry = (),
        tool_timeout_s: float = 30.0,
        backend: str = "auto",
        executor: Callable[[], Executor] | None = None,
    ) -> None:
        self.model, self.tokenizer, self.config = model, tokenizer, config
        if (model is None) == (executor is None):
            raise ValueError("give the Engine either a model (local executor) or an executor "
                             f"factory with model=None; got model={type(model).__name__}, "
                             f"executor={executor!r}")
        if backend != "auto":
            get_backend(backend)  # an unknown name fails here, naming the known ones
        self.backend = backend
        self.executor_factory = executor
        self.spec = None if model is None else inspect_model(model)
        model_window = None if self.spec is None else self.spec.max_position_embeddings
        self.max_position = config.max_position or model_window  # None: no limit
        if self.spec is not None:
            forks_concurrently = get_format(config.format).forks and config.max_workers > 1
            check_supported(self.spec,
                            positions="shift" if forks_concurrently else config.positions)
        self.format = get_format(config.format)
        self.tools = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        self.tool_timeout_s = tool_timeout_s
        self.grammars = None
        if config.structure == "grammar":
            self.grammars = GrammarSet(self.format, tokenizer, max_depth=config.max_depth,
                                       max_fanout=config.max_fanout, tools=self.tools.specs,
                                       max_string_chars=config.max_string_chars,
                                       vocab_size=self.spec and self.spec.vocab_size)
        self._cancelled = threading.Event()
        self._executors: list[Executor] = []  # of the calls in progress, for cancel()

    def tools_for(self, tools: Sequence[Callable] | ToolRegistry | None) -> ToolRegistry:
        """The registry a run calls: ``tools`` when given (with the engine's specs), else the
        engine's own."""
        if tools is None:
            return self.tools
        registry = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        if registry.specs != self.tools.specs:
            ours = [s.name for s in self.tools.specs]
            theirs = [s.name for s in registry.specs]
            raise ValueError(f"a run's tools must have the engine's specs (the grammar is "
                             f"built for them): the engine has {ours}, the run gave {theirs} "
                             f"(or the same names with other descriptions or parameters)")
        return registry

    def new_runner(self) -> ModelRunner:
        """A model runner over a fresh KV store sized by ``kv_budget_tokens``."""
        cfg, spec = self.config, self.spec
        store = KVStore(
            CacheConfig(
                num_layers=spec.num_layers,
                num_kv_heads=spec.num_kv_heads,
                head_dim=spec.head_dim,
                num_pages=num_pages_for_tokens(cfg.kv_budget_tokens, cfg.page_size),
                page_size=cfg.page_size,
                position_policy=cfg.positions,
                dtype=spec.dtype,
                device=spec.device,
            ),
            rope_inv_freq=spec.inv_freq,
            rope_interleaved=spec.rope_interleaved,
        )
        return ModelRunner(self.model, store, backend=self.backend)

    def new_executor(self) -> Executor:
        """The executor of one call: the factory's, else the local one over a fresh runner
        and KV store."""
        if self.executor_factory is not None:
            return self.executor_factory()
        return PagedExecutor(self.new_runner(), cascade=self.cascade_cost())

    def cascade_cost(self) -> CascadeCost | None:
        """When cascade attention pays: ``cascade_min_saved`` if set, else measured on this
        machine for the model's head shape (once per process); None when off or windowed."""
        cfg, spec = self.config, self.spec
        if not cfg.cascade or any(spec.layer_sliding_window(i) for i in range(spec.num_layers)):
            return None
        if cfg.cascade_min_saved is not None:
            return CascadeCost(cfg.cascade_min_saved)
        return measure_cascade_cost(spec.num_heads, spec.num_kv_heads, spec.head_dim,
                                    dtype=spec.dtype, device=str(spec.device),
                                    backend=self.backend)

    def cancel(self) -> None:
        """Cancel the run in progress or, when none is, the next one; safe from any thread.

        A cancel is kept until a run takes it, so none is lost to timing:

        - during :meth:`run` or :meth:`run_many` (including from ``on_step``), the run stops
          before its next step;
        - before a run starts, that run stops before its first step.

        Either way the run returns normally: its pages are freed as usual and
        ``record.error`` is ``"cancelled"``. A run that finishes first takes the cancel
        with it, unmarked; the next run is not cancelled by it. An executor's requests in
        flight (a remote server's) are aborted at once.
        """
        self._cancelled.set()
        for executor in list(self._executors):
            abort = getattr(executor, "abort", None)
            if abort is not None:
                abort()

    def withdraw_cancel(self) -> None:
        """Drop a cancel that no run has taken yet."""
        self._cancelled.clear()

    def _take_cancel(self, records: Sequence[RunRecord]) -> bool:
        """True if a cancel is pending: every unfinished record is marked, the cancel taken."""
        if not self._cancelled.is_set():
            return False
        for record in records:
            record.error = record.error or "cancelled"
        return True

    # ------------------------------------------------------------------ the loop
    def run(
        self,
        prompt_ids: Sequence[int],
        *,
        sampling: SamplingParams | None = None,
        chooser: Chooser | None = None,
        on_step: Callable[[RunRecord], None] | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
        max_new_tokens: int | None = None,
        tools: Sequence[Callable] | ToolRegistry | None = None,
    ) -> RunRecord:
        """Decode a tree after ``prompt_ids``; always frees every page, even on error.

        ``max_new_tokens`` overrides the config's budget of sampled tokens for this run.
        ``tools`` runs this call with other callables than the engine's, with the same specs
        (names, descriptions, parameters: the grammar was built for them), e.g. a
        question's own closures; other specs raise ``ValueError``.

        Positions stay below :attr:`max_position`: a prompt longer than it raises
        :class:`~tim.errors.PositionWindowError` before any forward, and a stream that would
        be fed at a position ``>= max_position`` ends the run (every stream of it) before
        that forward, with ``record.error == "PositionWindowError: ..."``.

        ``on_step(record)`` is called after every step, ``on_event(event)`` for every
        :class:`~tim.engine.record.RunEvent`. :meth:`cancel` (from any thread, from
        ``on_step``, or before the run starts) ends the run before its next step, with
        ``record.error == "cancelled"``.
        """
        start = time.perf_counter()
        try:
            executor = self.new_executor()
            self._executors.append(executor)
            run = Run(self, list(prompt_ids),
                      chooser or default_chooser(executor, sampling or SamplingParams(),
                                                 self.tokenizer),
                      constrained=chooser is None, on_event=on_event, executor=executor,
                      max_new_tokens=max_new_tokens, tools=self.tools_for(tools))
            try:
                while not run.finished and not self._take_cancel([run.record]):
                    self._step_unless_cancelled([run], executor)
                    if on_step is not None:
                        on_step(run.record)
            finally:
                run.drop_views()
                executor.close()  # no page leaks, whatever happened
                run.record.wall_time_s = time.perf_counter() - start
        finally:
            self._cancelled.clear()  # this run took any cancel made before it ended
            self._executors.clear()
        return run.record

    def run_many(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        sampling: SamplingParams | None = None,
        on_step: Callable[[list[RunRecord]], None] | None = None,
        max_new_tokens: int | None = None,
    ) -> list[RunRecord]:
        """Decode one tree per prompt, all in the same batches over one KV store.

        Every step packs the ready streams of every request into one forward, so requests
        share the model's weight reads the way sibling workers do. ``max_workers`` and
        ``max_new_tokens`` hold per request; ``kv_budget_tokens`` is shared. Request ``i``
        samples with seed ``sampling.seed + i``.
        """
        sampling = sampling or SamplingParams()
        start = time.perf_counter()
        try:
            executor = self.new_executor()
            self._executors.append(executor)
            runs = [
                Run(self, list(p),
                    default_chooser(executor, replace(sampling, seed=sampling.seed + i),
                                    self.tokenizer),
                     constrained=True, on_event=None, executor=executor,
                     max_new_tokens=max_new_tokens)
                for i, p in enumerate(prompts)
            ]
            try:
                while True:
                    running = [run for run in runs if not run.finished]
                    if not running or self._take_cancel([run.record for run in running]):
                        break
                    self._step_unless_cancelled(running, executor)
                    if on_step is not None:
                        on_step([run.record for run in runs])
            finally:
                for run in runs:
                    run.drop_views()
                    run.record.wall_time_s = time.perf_counter() - start
                executor.close()
        finally:
            self._cancelled.clear()  # these runs took any cancel made before they ended
            self._executors.clear()
        return [run.record for run in runs]

    def _step_unless_cancelled(self, runs: list[Run], executor: Executor) -> None:
        """:meth:`step`; an error raised while a cancel is pending (a request the cancel
        aborted) ends the step, and the loop then takes the cancel."""
        try:
            self.step(runs, executor)
        except TimError:
            if not self._cancelled.is_set():
                raise

    def step(self, runs: list[Run], executor: Executor) -> None:
        """One decode step for every request in ``runs``, in one forward:
        schedule -> execute -> postprocess (sample, parse, fork/join, prune, record)."""
        work = [(run, stream, feed) for run in runs for stream, feed in run.prepare()]
        waited = bool(work)  # with nothing to feed anywhere, wait for one tool result
        for run in runs:  # a request with nothing to feed waits for a tool, or has stalled
            if not any(owner is run for owner, _, _ in work):
                waited = run.wait_or_stop(block=not waited) or waited
        if work:
            out = executor.step([feed for _, _, feed in work])
            row = 0  # each run's logits rows follow one another, in feed order
            for run in runs:
                mine = [(stream, feed, placed) for (owner, stream, feed), placed
                        in zip(work, out.positions, strict=True) if owner is run]
                num_rows = sum(1 for _, feed, _ in mine if feed.wants_logits)
                run.postprocess(mine, out.logits[row:row + num_rows])
                row += num_rows
