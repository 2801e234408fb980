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

__all__ = ["ATTN_IMPLEMENTATION", "register", "use_tim_attention", "tim_attention_forward"]

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
