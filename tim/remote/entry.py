"""``tim.Runtime(model="openai:URL", served_model=..., tokenizer=...)``: the remote to
drive, and the served model's tokenizer (prompts go to the server as token ids)."""

from __future__ import annotations

from typing import Any

from tim.models.loading import load_model

__all__ = ["remote_for", "load_tokenizer"]


def remote_for(model: Any, served_model: str | None, tokenizer: Any) -> Any:
    """``model="openai:URL"``: the :class:`tim.remote.Remote` to drive; else None."""
    if not (isinstance(model, str) and model.startswith("openai:")):
        if served_model is not None or tokenizer is not None:
            raise ValueError("served_model= and tokenizer= go with model='openai:URL', got "
                             f"model={model!r}")
        return None
    if not served_model or tokenizer is None:
        raise ValueError("model='openai:URL' needs served_model= (the server's model name) "
                         "and tokenizer= (its tokenizer, or where to load it from)")
    from tim.remote import Remote

    return Remote(model.removeprefix("openai:"), served_model)


def load_tokenizer(spec: Any) -> Any:
    """A tokenizer as given, or loaded from a bundled name, a folder or a hub id."""
    if not isinstance(spec, str):
        return spec
    from transformers import AutoTokenizer

    from tim.models.bundled import BUNDLED_MODELS, bundled_hf_dir

    if spec in BUNDLED_MODELS:
        folder = bundled_hf_dir(BUNDLED_MODELS[spec])
        if not folder.exists():  # converted from the bundled GGUF on first use
            load_model(spec, device="cpu")
        spec = str(folder)
    return AutoTokenizer.from_pretrained(spec)
