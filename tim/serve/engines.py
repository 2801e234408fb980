"""One :class:`~tim.engine.engine.Engine` per tree limit a request asks for, over one model.

A request may ask for a shallower or narrower tree than the server's (``tim.max_depth``,
``tim.max_fanout``). Those limits live in the grammar, so each pair gets its own engine;
all of them share the model, the tokenizer and the tools, and their runs decode in the
same batches (:class:`~tim.serve.batcher.Batcher` steps runs of any of them together).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.tools import ToolRegistry

__all__ = ["EngineSet"]


class EngineSet:
    """Engines by ``(max_depth, max_fanout)``, built on first use and kept (newest ``max_kept``).

    Parameters
    ----------
    model, tokenizer
        The loaded model, shared by every engine.
    config : EngineConfig
        The server's configuration; its ``max_depth`` and ``max_fanout`` are the largest a
        request may ask for, and :attr:`base` uses them.
    tools : sequence of callables
        The server's tools, offered to every request.

    Examples
    --------
    >>> from tim.models import tiny_model
    >>> lm = tiny_model("qwen3", num_layers=1)
    >>> engines = EngineSet(lm.model, lm.tokenizer, EngineConfig(max_depth=3, max_fanout=2))
    >>> engines.get(1, 2).config.max_depth, engines.get(3, 2) is engines.base
    (1, True)
    """

    def __init__(self, model: Any, tokenizer: Any, config: EngineConfig, *,
                 tools: Sequence[Callable] = (), tool_timeout_s: float = 30.0,
                 backend: str = "auto", max_kept: int = 8) -> None:
        self._model, self._tokenizer = model, tokenizer
        self._tools = ToolRegistry(tools)
        self._tool_timeout_s, self._backend, self._max_kept = tool_timeout_s, backend, max_kept
        self._lock = threading.Lock()
        self.base = self._build(config)
        self._engines: OrderedDict[tuple[int, int], Engine] = OrderedDict()

    @property
    def tool_names(self) -> list[str]:
        return [spec.name for spec in self._tools.specs]

    def get(self, max_depth: int, max_fanout: int) -> Engine:
        """The engine whose grammar allows ``max_depth`` and ``max_fanout``; built once."""
        base = self.base.config
        if (max_depth, max_fanout) == (base.max_depth, base.max_fanout):
            return self.base
        key = (max_depth, max_fanout)
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = self._build(replace(base, max_depth=max_depth, max_fanout=max_fanout))
                self._engines[key] = engine
                while len(self._engines) > self._max_kept:  # live runs keep their own reference
                    self._engines.popitem(last=False)
            self._engines.move_to_end(key)
            return engine

    def _build(self, config: EngineConfig) -> Engine:
        return Engine(self._model, self._tokenizer, config, tools=self._tools,
                      tool_timeout_s=self._tool_timeout_s, backend=self._backend)
