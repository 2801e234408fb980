"""Models trained for tim's format, shipped inside the package as LoRA adapters.

A trained model is a small adapter folder in ``tim/models/trained/<name>/`` over a bundled
base model (:mod:`tim.models.bundled`)::

    adapter_config.json          r, lora_alpha, target modules (peft's layout)
    adapter_model.safetensors    the LoRA matrices; its size and SHA-256 are recorded here
    card.json                    how it was trained (``tim train``'s card)

Loading it needs no network beyond the base model's first fetch, and no ``peft``:
:func:`merge_lora` adds ``scale * B @ A`` into each target weight, the update peft's
``merge_and_unload`` makes (``tests/models/test_trained.py`` checks one against the other).
A file of the wrong size or hash is refused before anything is merged.

A trained model answers the questions it was trained on, in the way it was trained to:
:meth:`TrainedModel.runtime_options` gives the :class:`tim.Runtime` settings (pruning,
positions, window, prompt without instructions) that its views came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from tim.errors import TimError
from tim.models.parts import file_sha256

__all__ = ["TRAINED_MODELS", "TrainedModel", "adapter_problem", "merge_lora", "package_adapter"]

ADAPTER_FILE = "adapter_model.safetensors"
_SHIPPED = Path(__file__).parent / "trained"


class TrainedModel(NamedTuple):
    """An adapter shipped in the package, and the runtime settings it was trained under."""

    name: str
    title: str
    base: str  # a bundled model name
    size: int  # bytes of the adapter file
    sha256: str  # of the adapter file
    families: tuple[str, ...]  # the task families it was trained on (tim.train.families)
    window: int  # the max_position it runs under
    pruning: str
    positions: str
    max_depth: int
    max_fanout: int

    @property
    def folder(self) -> Path:
        return _SHIPPED / self.name

    def card(self) -> dict[str, Any]:
        """The training card ``tim train`` wrote for this adapter."""
        return json.loads((self.folder / "card.json").read_text())

    def runtime_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`tim.Runtime` that match how the model was trained."""
        from tim.prompt import PromptStyle

        return dict(pruning=self.pruning, positions=self.positions, max_position=self.window,
                    max_depth=self.max_depth, max_fanout=self.max_fanout,
                    prompt_style=PromptStyle(instructions=False))


TRAINED_MODELS: dict[str, TrainedModel] = {
    "smollm2-135m-tree": TrainedModel(
        name="smollm2-135m-tree",
        title="SmolLM2-135M-Instruct + a LoRA adapter (r=16) trained by tim train for tim's "
              "task trees",
        base="smollm2-135m",
        # measured on the file when it was packaged (package_adapter); checked on every load
        size=19_593_064,
        sha256="b83c9f861602a23d9b7498c4cfdadde721f8befe5f2c5724e652cff8b9207e36",
        families=("records", "chain", "search"),
        window=640,  # docs/training.md: the prompt plus the longest view at size 6
        pruning="buffer:0@conclusion",
        positions="shift",
        max_depth=12,
        max_fanout=4,
    ),
}


def adapter_problem(adapter_dir: Path, *, size: int | None = None,
                    sha256: str | None = None) -> str | None:
    """What is wrong with an adapter folder (None when it is sound): a missing file, or an
    adapter file of the wrong size or SHA-256 (when they are given)."""
    for name in ("adapter_config.json", ADAPTER_FILE):
        if not (adapter_dir / name).is_file():
            return f"{name} is missing from {adapter_dir}"
    path = adapter_dir / ADAPTER_FILE
    if size is not None and path.stat().st_size != size:
        return f"{ADAPTER_FILE} is {path.stat().st_size:,} bytes, expected {size:,}"
    if sha256 is not None and file_sha256(path) != sha256:
        return f"{ADAPTER_FILE} is corrupt: its SHA-256 does not match the recorded one"
    return None


def merge_lora(model: Any, adapter_dir: Path | str) -> int:
    """Merge a peft LoRA adapter folder into ``model``'s weights in place.

    Each target linear weight ``W`` (out x in) becomes ``W + scale * B @ A`` with
    ``scale = lora_alpha / r`` (``/ sqrt(r)`` under rsLoRA). Returns how many weights
    changed.

    Raises
    ------
    TimError
        If the adapter uses what this merge does not implement (DoRA, biases, saved
        modules, fan-in-fan-out weights), or names a module the model lacks.
    """
    import torch
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    unsupported = [key for key, ok in (("use_dora", False), ("fan_in_fan_out", False))
                   if config.get(key, ok) != ok]
    if config.get("bias", "none") != "none":
        unsupported.append(f"bias={config['bias']!r}")
    for key in ("modules_to_save", "rank_pattern", "alpha_pattern"):
        if config.get(key):
            unsupported.append(key)
    if unsupported:
        raise TimError(f"the adapter in {adapter_dir} uses {', '.join(unsupported)}, which "
                       "tim's merge does not implement; merge it with peft instead")
    r = int(config["r"])
    scale = config["lora_alpha"] / (r ** 0.5 if config.get("use_rslora") else r)
    tensors = load_file(str(adapter_dir / ADAPTER_FILE))
    modules = dict(model.named_modules())
    merged = 0
    for key in sorted(tensors):
        if not key.endswith(".lora_A.weight"):
            continue
        path = key.removesuffix(".lora_A.weight").removeprefix("base_model.model.")
        module = modules.get(path)
        b_key = key.replace(".lora_A.", ".lora_B.")
        if module is None or not hasattr(module, "weight") or b_key not in tensors:
            raise TimError(f"the adapter in {adapter_dir} does not fit this model: "
                           f"{path!r} is not one of its linear layers (a different base?)")
        delta = tensors[b_key].float() @ tensors[key].float()
        if delta.shape != module.weight.shape:
            raise TimError(f"the adapter in {adapter_dir} does not fit this model: {path} is "
                           f"{tuple(module.weight.shape)}, the adapter's update "
                           f"{tuple(delta.shape)}")
        with torch.no_grad():
            module.weight.copy_((module.weight.float() + scale * delta).to(module.weight.dtype))
        merged += 1
    if merged == 0:
        raise TimError(f"the adapter in {adapter_dir} holds no LoRA weights")
    return merged


def package_adapter(out_dir: Path | str, dest: Path | str) -> tuple[int, str]:
    """Copy a ``tim train`` LoRA output into ``dest`` as a shipped adapter folder; returns
    the adapter file's size and SHA-256, for its :class:`TrainedModel` entry.

    Only what loading needs goes in: the adapter file, its config (with the base model's
    local path replaced by the card's model name, so no machine's path is shipped) and the
    card.
    """
    import shutil

    out_dir, dest = Path(out_dir), Path(dest)
    card = json.loads((out_dir / "card.json").read_text())
    if card.get("method") != "lora":
        raise TimError(f"{out_dir} holds a full fine-tune; only LoRA adapters are shipped")
    problem = adapter_problem(out_dir / "adapter")
    if problem is not None:
        raise TimError(f"{out_dir}: {problem}")
    dest.mkdir(parents=True, exist_ok=True)
    config = json.loads((out_dir / "adapter" / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = card["base_model"]
    (dest / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(out_dir / "adapter" / ADAPTER_FILE, dest / ADAPTER_FILE)
    (dest / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return (dest / ADAPTER_FILE).stat().st_size, file_sha256(dest / ADAPTER_FILE)
