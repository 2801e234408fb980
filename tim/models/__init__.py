"""Models: loading, inspection, and the ``tim`` attention function for transformers.

- :func:`load_model` loads the bundled default, a GGUF file, an HF folder or id, or a
  ``(model, tokenizer)`` pair; :func:`tiny_model` builds random-weight models offline.
- :func:`inspect_model` reads a :class:`ModelSpec`; :func:`check_supported` refuses
  models tim cannot run under a position policy.
- :func:`use_tim_attention` routes a model's attention through the backend of the active
  :func:`forward_context` (the only ambient state in tim); :class:`AttentionSwitch` does
  so for one ``with`` block and then restores the model's own attention.

Importing this package imports neither torch nor transformers.
"""

from tim.models.attention import (
    ATTN_IMPLEMENTATION,
    AttentionSwitch,
    register,
    use_tim_attention,
)
from tim.models.bundled import BUNDLED_MODELS, DEFAULT_MODEL, cache_dir
from tim.models.context import ForwardBackend, current_backend, forward_context
from tim.models.loading import LoadedModel, load_model
from tim.models.spec import ModelSpec, check_supported, inspect_model
from tim.models.tiny import TINY_ARCHS, tiny_model, tiny_tokenizer

__all__ = [
    "ATTN_IMPLEMENTATION",
    "AttentionSwitch",
    "BUNDLED_MODELS",
    "DEFAULT_MODEL",
    "ForwardBackend",
    "LoadedModel",
    "ModelSpec",
    "TINY_ARCHS",
    "cache_dir",
    "check_supported",
    "current_backend",
    "forward_context",
    "inspect_model",
    "load_model",
    "register",
    "tiny_model",
    "tiny_tokenizer",
    "use_tim_attention",
]
