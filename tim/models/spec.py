"""What tim needs to know about a model, read once from the model itself.

``inspect_model`` reads shapes from the config and the attention modules, and RoPE from
the model's own rotary module, so scaled RoPE (linear, llama3, YaRN) comes out exactly as
the model applies it. ``check_supported`` refuses models tim cannot run correctly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tim.errors import UnsupportedModelError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "ModelSpec",
    "inspect_model",
    "check_supported",
    "SHIFTABLE_ROPE_TYPES",
]

# RoPE types whose frequencies are fixed, so rotating a stored key by delta * inv_freq
# moves it exactly. "dynamic" and "longrope" change inv_freq with the sequence length and
# "axial" / M-RoPE rotate by several position axes; none of those can be shifted.
SHIFTABLE_ROPE_TYPES = frozenset({"default", "linear", "llama3", "yarn", "proportional"})

PER_LAYER_ROPE = "per_layer_type"


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """Architecture facts of a loaded causal LM.

    Attributes
    ----------
    arch : str
        ``config.model_type``, e.g. ``"qwen3"``.
    num_layers, num_heads, num_kv_heads, head_dim : int
        Attention shape; ``num_heads % num_kv_heads == 0``.
    vocab_size : int
        Width of the logits.
    max_position_embeddings : int or None
        The context window the model was trained for.
    rope_type : str or None
        ``config.rope_parameters["rope_type"]``; None when the model has no RoPE;
        ``"per_layer_type"`` when each layer type has its own RoPE.
    inv_freq : Tensor or None
        ``(rotary_dim // 2,)`` float32 on CPU: a copy of the rotary module's ``inv_freq``.
    rotary_dim : int
        How many leading channels of each head RoPE rotates (``head_dim`` unless partial).
    attention_scaling : float
        Factor the model multiplies cos and sin by (YaRN); a shift must not apply it again.
    mrope_section : tuple of int or None
        Set for multimodal RoPE (M-RoPE), which tim cannot shift.
    rope_interleaved : bool
        RoPE rotates interleaved pairs ``(x[2i], x[2i+1])`` (Cohere) rather than the halves
        ``(x[i], x[i + D/2])`` (``rope_shift(..., interleaved=...)`` follows it).
    sliding_window : int, tuple or None
        One window for all layers, or a per-layer tuple (None = full attention) when
        layers differ.
    softcap : float or None
        Attention logit soft-capping (``config.attn_logit_softcapping``).
    dtype : torch.dtype
    device : torch.device
    """

    arch: str
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int | None
    rope_type: str | None
    inv_freq: torch.Tensor | None
    rotary_dim: int
    attention_scaling: float
    mrope_section: tuple[int, ...] | None
    sliding_window: int | tuple[int | None, ...] | None
    softcap: float | None
    dtype: torch.dtype
    device: torch.device
    rope_interleaved: bool = False

    def layer_sliding_window(self, layer_idx: int) -> int | None:
        """The sliding window of one layer (None: full attention)."""
        if isinstance(self.sliding_window, tuple):
            return self.sliding_window[layer_idx]
        return self.sliding_window


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    found = [
        m
        for m in model.modules()
        if type(m).__name__.endswith("Attention") and isinstance(getattr(m, "layer_idx", None), int)
    ]
    return sorted(found, key=lambda m: m.layer_idx)


def _rotary_module(model: nn.Module) -> nn.Module | None:
    from torch import Tensor

    for m in model.modules():
        if "Rotary" in type(m).__name__ or isinstance(getattr(m, "inv_freq", None), Tensor):
            return m
    return None


def _rope_parameters(config: Any) -> dict | None:
    params = getattr(config, "rope_parameters", None)
    return dict(params) if params else None


def _sliding_windows(config: Any, attention: list[nn.Module], num_layers: int) -> tuple:
    default = getattr(config, "sliding_window", None)
    if not attention:
        return (default,) * num_layers
    # Qwen2/Qwen3 store the window per layer (None on full-attention layers); Mistral
    # reads config.sliding_window for every layer.
    return tuple(getattr(m, "sliding_window", default) for m in attention)


def inspect_model(model: nn.Module) -> ModelSpec:
    """Read a model's attention shape, RoPE and attention features.

    Parameters
    ----------
    model : PreTrainedModel
        A transformers causal LM.

    Returns
    -------
    ModelSpec

    Examples
    --------
    >>> from tim.models import tiny_model
    >>> spec = inspect_model(tiny_model("qwen3", num_heads=4, num_kv_heads=2, head_dim=16).model)
    >>> spec.arch, spec.num_heads, spec.num_kv_heads, spec.head_dim, spec.rope_type
    ('qwen3', 4, 2, 16, 'default')
    >>> tuple(spec.inv_freq.shape)
    (8,)
    """
    import torch

    config = model.config
    num_heads = int(config.num_attention_heads)
    num_kv_heads = int(getattr(config, "num_key_value_heads", None) or num_heads)
    num_layers = int(config.num_hidden_layers)
    attention = _attention_modules(model)
    head_dim = getattr(attention[0], "head_dim", None) if attention else None
    head_dim = int(head_dim or getattr(config, "head_dim", None) or config.hidden_size // num_heads)
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    vocab_size = int(output.weight.shape[0]) if output is not None else int(config.vocab_size)

    params = _rope_parameters(config)
    rotary = _rotary_module(model)
    rope_type: str | None = None
    inv_freq = None
    attention_scaling = 1.0
    mrope_section = None
    if params is not None or rotary is not None:
        raw_type = getattr(rotary, "rope_type", None) or (params or {}).get("rope_type", "default")
        if isinstance(raw_type, dict):
            rope_type = PER_LAYER_ROPE
        else:
            rope_type = str(raw_type)
            if rotary is not None and isinstance(getattr(rotary, "inv_freq", None), torch.Tensor):
                inv_freq = rotary.inv_freq.detach().to(device="cpu", dtype=torch.float32).clone()
            attention_scaling = float(getattr(rotary, "attention_scaling", 1.0) or 1.0)
        section = (params or {}).get("mrope_section")
        mrope_section = tuple(int(s) for s in section) if section else None
    rotary_dim = 2 * int(inv_freq.numel()) if inv_freq is not None else head_dim

    windows = _sliding_windows(config, attention, num_layers)
    sliding_window = windows[0] if len(set(windows)) == 1 else windows
    softcap = getattr(config, "attn_logit_softcapping", None)
    first = next(model.parameters())
    return ModelSpec(
        arch=str(config.model_type),
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim,
        vocab_size=vocab_size,
        max_position_embeddings=getattr(config, "max_position_embeddings", None),
        rope_type=rope_type,
        inv_freq=inv_freq,
        rotary_dim=rotary_dim,
        attention_scaling=attention_scaling,
        mrope_section=mrope_section,
        sliding_window=sliding_window,
        softcap=float(softcap) if softcap is not None else None,
        dtype=first.dtype,
        device=first.device,
        rope_interleaved=_rope_is_interleaved(attention),
    )


def _rope_is_interleaved(attention: list[nn.Module]) -> bool:
    """Ask the model's own ``rotate_half`` which channels it pairs: the halves give
    ``[-2, -3, 0, 1]`` for ``[0, 1, 2, 3]``, interleaved pairs ``[-1, 0, -3, 2]``. A model
    without one is taken to use the halves, as Llama does."""
    import sys

    import torch

    if not attention:
        return False
    rotate_half = getattr(sys.modules.get(type(attention[0]).__module__), "rotate_half", None)
    if rotate_half is None:
        return False
    return rotate_half(torch.arange(4.0)).tolist() == [-1.0, 0.0, -3.0, 2.0]


def check_supported(spec: ModelSpec, *, positions: str = "shift") -> None:
    """Refuse a model tim cannot run correctly under a position policy.

    Parameters
    ----------
    spec : ModelSpec
        From :func:`inspect_model`.
    positions : {"shift", "reencode", "keep"}
        The position policy the run will use.

    Raises
    ------
    ValueError
        If ``positions`` is not a known policy.
    UnsupportedModelError
        If the model has no RoPE, or ``positions="shift"`` with a RoPE that cannot be
        shifted by one rotation (M-RoPE, dynamic, longrope, axial, per-layer RoPE).

    Examples
    --------
    >>> from tim.models import tiny_model
    >>> llama = tiny_model("llama", rope_parameters={"rope_type": "dynamic", "factor": 2.0})
    >>> check_supported(inspect_model(llama.model), positions="reencode")
    >>> check_supported(inspect_model(llama.model), positions="shift")
    Traceback (most recent call last):
    ...
    tim.errors.UnsupportedModelError: llama uses RoPE type 'dynamic', ...
    """
    from tim.cache import PositionPolicy  # the policies' one owner; tim.cache imports torch

    names = tuple(policy.value for policy in PositionPolicy)
    if positions not in names:
        raise ValueError(f"positions must be one of {names}, got {positions!r}")
    if spec.rope_type is None:
        raise UnsupportedModelError(
            f"{spec.arch} has no rotary position embedding (RoPE); tim needs RoPE models "
            "(Llama, Qwen2, Qwen3, Mistral, ...)"
        )
    if positions != "shift":
        return
    if spec.mrope_section is not None:
        raise UnsupportedModelError(
            f"{spec.arch} uses multimodal RoPE (M-RoPE, mrope_section={list(spec.mrope_section)}), "
            "which cannot be shifted by one rotation; use positions='reencode'"
        )
    if spec.rope_type not in SHIFTABLE_ROPE_TYPES or spec.inv_freq is None:
        raise UnsupportedModelError(
            f"{spec.arch} uses RoPE type {spec.rope_type!r}, which cannot be shifted by one "
            f"rotation (shiftable: {sorted(SHIFTABLE_ROPE_TYPES)}); use positions='reencode'"
        )
