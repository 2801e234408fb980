"""tim: recursive subtask-tree reasoning with bounded KV memory.

``import tim`` stays light: torch, transformers and the engine load on first use of a name
below (``tim.Runtime``, ...), never at import.

Examples
--------
>>> import tim
>>> rt = tim.Runtime(model="tiny-qwen3", format="thread2", max_depth=1)  # doctest: +SKIP
>>> result = rt.reason("2 + 2?")                                        # doctest: +SKIP
>>> result.answer, result.tree, result.stats                            # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from tim.errors import TimError

__all__ = ["Runtime", "Result", "Stats", "Engine", "EngineConfig", "TimError", "__version__"]
__version__ = "0.1.0"

_LAZY = {
    "Runtime": "tim.api",
    "Result": "tim.result",
    "Stats": "tim.result",
    "Engine": "tim.engine.engine",
    "EngineConfig": "tim.engine.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tim' has no attribute {name!r}")
