"""The ``tim`` attention function, registered with transformers' ``AttentionInterface``.

Models run unmodified. Each attention layer computes its projections and RoPE as usual,
then calls the function registered under its ``config._attn_implementation``. Ours hands
the packed tensors to the backend of the active forward context and returns its output.

Masks. transformers builds a mask only for implementations listed in
``AttentionMaskInterface``. ``"tim"`` is deliberately *not* listed there, so
``create_causal_mask`` returns early with ``None``: no (T, T) mask is built, and the
packed-sequence detection that would mask gapped ``position_ids`` block-diagonally (and
costs a device-to-host sync) never runs. The backend alone decides what each query sees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tim.errors import TimError, UnsupportedModelError
from tim.models.context import current_backend

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = [
    "ATTN_IMPLEMENTATION",
    "AttentionSwitch",
    "register",
    "tim_attention_forward",
    "use_tim_attention",
]

ATTN_IMPLEMENTATION = "tim"


def tim_attention_forward(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Tensor, None]:
    """Attention for one layer, delegated to the active forward context's backend.

    Parameters
    ----------
    module : nn.Module
        The model's attention module; ``module.layer_idx`` names the layer.
    query : Tensor
        ``(1, H, T, D)``, RoPE applied.
    key, value : Tensor
        ``(1, Hkv, T, D)``.
    attention_mask : None
        Must be None: tim takes the batch layout from the forward context, not a mask.
    scaling : float, optional
        Softmax scale; ``D ** -0.5`` if None.
    dropout : float
        Must be 0 (inference only).
    **kwargs
        ``sliding_window`` and ``softcap`` are read when the model passes them; the rest
        (``position_ids``, ...) is ignored.

    Returns
    -------
    tuple
        ``(out, None)`` with out ``(1, T, H, D)``, as transformers expects.
    """
    backend = current_backend()
    if query.shape[0] != 1:
        raise TimError(
            f"tim attention takes one packed [1, T] batch, got batch size {query.shape[0]}"
        )
    if attention_mask is not None:
        raise TimError(
            "tim attention got an attention_mask; call the model with attention_mask=None "
            "(the forward context carries the batch layout)"
        )
    if dropout:
        raise TimError(
            f"tim attention is inference-only, got dropout={dropout} (call model.eval())"
        )
    # query is a transposed view of a (1, T, H, D) projection, so this is a view, not a copy.
    q = query[0].transpose(0, 1)  # (T, H, D)
    k = key[0].transpose(0, 1)  # (T, Hkv, D)
    v = value[0].transpose(0, 1)  # (T, Hkv, D)
    scale = float(scaling) if scaling is not None else q.shape[-1] ** -0.5
    sliding_window = kwargs.get("sliding_window", getattr(module, "sliding_window", None))
    out = backend.attend(
        module.layer_idx,
        q,
        k,
        v,
        softmax_scale=scale,
        sliding_window=sliding_window,
        softcap=kwargs.get("softcap"),
    )
    return out.unsqueeze(0), None  # (1, T, H, D)


def register() -> None:
    """Register ``"tim"`` with transformers' ``AttentionInterface``. Idempotent.

    Examples
    --------
    >>> from transformers import AttentionInterface
    >>> register()
    >>> AttentionInterface()["tim"] is tim_attention_forward
    True
    """
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_IMPLEMENTATION, tim_attention_forward)


def use_tim_attention(model: nn.Module) -> nn.Module:
    """Switch ``model`` (in place) to the ``tim`` attention function and return it.

    Parameters
    ----------
    model : PreTrainedModel
        A transformers causal LM.

    Raises
    ------
    UnsupportedModelError
        If the model's attention does not go through transformers' attention registry.

    Examples
    --------
    >>> from tim.models import tiny_model
    >>> model = use_tim_attention(tiny_model("llama").model)
    >>> model.config._attn_implementation
    'tim'
    """
    register()
    name = type(model).__name__
    if not hasattr(model, "set_attn_implementation"):
        raise UnsupportedModelError(f"{name} is not a transformers PreTrainedModel")
    try:
        model.set_attn_implementation(ATTN_IMPLEMENTATION)
    except (ValueError, KeyError) as exc:
        raise UnsupportedModelError(f"{name} cannot use the tim attention function: {exc}") from exc
    if model.config._attn_implementation != ATTN_IMPLEMENTATION:
        raise UnsupportedModelError(
            f"{name} does not route attention through transformers' AttentionInterface, "
            "so tim cannot attend over its KV store"
        )
    return model



class AttentionSwitch:
    """Switches one model to the ``tim`` attention function for a ``with`` block only.

    tim's runner wraps each forward in one, so outside its forwards a model handed to tim
    stays the plain Hugging Face model it was, with the attention implementation it had
    (``"sdpa"``, ``"eager"``, ...): between steps, after a run, and after a run that
    raised. :func:`use_tim_attention` is the permanent switch.

    The constructor checks the model (raising as :func:`use_tim_attention` does, with the
    model left as it was) and finds the configs that hold an implementation, so entering
    and leaving cost a few attribute writes, not a walk over the modules.

    Parameters
    ----------
    model : PreTrainedModel
        A transformers causal LM.

    Raises
    ------
    UnsupportedModelError
        If the model cannot use the ``tim`` attention function.

    Examples
    --------
    >>> from tim.models import tiny_model
    >>> model = tiny_model("llama").model
    >>> switch = AttentionSwitch(model)
    >>> with switch:
    ...     model.config._attn_implementation
    'tim'
    >>> model.config._attn_implementation
    'sdpa'
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._configs = _attention_configs(model)
        own = self._read()
        try:
            use_tim_attention(model)
            self._tim = self._read()
        finally:
            self._write(own)
        self._own: list[Any] | None = None

    def __enter__(self) -> nn.Module:
        if self._own is not None:
            raise TimError("the tim attention switch is already on; it does not nest")
        # Read now, not at construction: the user may switch the model between runs.
        self._own = self._read()
        self._write(self._tim)
        return self.model

    def __exit__(self, *exc_info: object) -> None:
        own, self._own = self._own, None
        self._write(own)

    def _read(self) -> list[Any]:
        return [config._attn_implementation_internal for config in self._configs]

    def _write(self, values: list[Any] | None) -> None:
        # Each config gets its own value back: set_attn_implementation(value) would push
        # the top-level value down into sub-configs that had their own.
        for config, value in zip(self._configs, values or (), strict=True):
            config._attn_implementation_internal = value


def _attention_configs(model: nn.Module) -> list[Any]:
    """Every config that ``set_attn_implementation`` may change (the model's, sub-models')."""
    found: dict[int, Any] = {}
    pending = [getattr(module, "config", None) for module in model.modules()]
    while pending:
        config = pending.pop()
        if id(config) in found or not hasattr(config, "_attn_implementation_internal"):
            continue
        found[id(config)] = config
        pending.extend(getattr(config, key, None) for key in getattr(config, "sub_configs", ()))
    return list(found.values())
