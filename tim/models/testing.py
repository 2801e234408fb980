"""A dense reference backend and a packed forward, for tests of tim and of engines.

``DenseCausalBackend`` is the simplest correct ``ForwardBackend``: no cache, plain
causal attention inside each packed sequence. ``forward_packed`` runs a model once over a
packed batch under it. Together they are the oracle that every cached, paged or cascade
path is compared against.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from tim.errors import TimError
from tim.models.attention import ATTN_IMPLEMENTATION
from tim.models.context import forward_context

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["DenseCausalBackend", "dense_causal_attention", "forward_packed"]


def dense_causal_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    softmax_scale: float,
    sliding_window: int | None = None,
    softcap: float | None = None,
) -> Tensor:
    """Causal attention of one sequence, in fp32, GQA by repeating kv heads.

    Parameters
    ----------
    q : Tensor
        ``(L, H, D)``.
    k, v : Tensor
        ``(L, Hkv, D)`` with ``H % Hkv == 0``.
    softmax_scale : float
    sliding_window : int, optional
        Query i sees key j iff ``0 <= i - j < sliding_window``.
    softcap : float, optional
        Scores become ``softcap * tanh(scores / softcap)``.

    Returns
    -------
    Tensor
        ``(L, H, D)``, dtype of ``q``.

    Masks, for L = 4 and sliding_window = 2 (rows: queries, columns: keys)::

        causal      window 2
        1 0 0 0     1 0 0 0
        1 1 0 0     1 1 0 0
        1 1 1 0     0 1 1 0
        1 1 1 1     0 0 1 1
    """
    import torch

    seq_len, num_heads, _ = q.shape
    groups = num_heads // k.shape[1]
    kf = k.float().repeat_interleave(groups, dim=1)  # (L, H, D)
    vf = v.float().repeat_interleave(groups, dim=1)  # (L, H, D)
    scores = torch.einsum("ihd,jhd->hij", q.float(), kf) * softmax_scale  # (H, L, L)
    if softcap is not None:
        scores = softcap * torch.tanh(scores / softcap)
    i = torch.arange(seq_len, device=q.device)[:, None]
    j = torch.arange(seq_len, device=q.device)[None, :]
    visible = j <= i  # (L, L)
    if sliding_window is not None:
        visible &= i - j < sliding_window
    scores = scores.masked_fill(~visible, float("-inf"))
    out = torch.einsum("hij,jhd->ihd", scores.softmax(dim=-1), vf)  # (L, H, D)
    return out.to(q.dtype)


class DenseCausalBackend:
    """Causal attention within each packed sequence; nothing cached.

    Parameters
    ----------
    cu_seqlens : sequence of int
        ``(num_seqs + 1,)`` cumulative offsets into the packed batch, starting at 0:
        sequence s is tokens ``cu_seqlens[s]:cu_seqlens[s + 1]``.

    Attributes
    ----------
    layers_called : list of int
        The ``layer_idx`` of every ``attend`` call, in order (for tests).

    Examples
    --------
    >>> import torch
    >>> backend = DenseCausalBackend([0, 2, 5])
    >>> q = torch.randn(5, 4, 8); k = torch.randn(5, 2, 8); v = torch.randn(5, 2, 8)
    >>> out = backend.attend(0, q, k, v, softmax_scale=8**-0.5, sliding_window=None, softcap=None)
    >>> tuple(out.shape), torch.allclose(out[2], v[2].repeat_interleave(2, dim=0))
    ((5, 4, 8), True)
    """

    def __init__(self, cu_seqlens: Sequence[int] | Tensor) -> None:
        offsets = [int(x) for x in cu_seqlens]
        if not offsets or offsets[0] != 0 or any(b < a for a, b in pairwise(offsets)):
            raise ValueError(f"cu_seqlens must start at 0 and never decrease, got {offsets}")
        self.cu_seqlens = tuple(offsets)
        self.layers_called: list[int] = []

    def attend(
        self,
        layer_idx: int,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        *,
        softmax_scale: float,
        sliding_window: int | None,
        softcap: float | None,
    ) -> Tensor:
        """See :meth:`tim.models.context.ForwardBackend.attend`."""
        import torch

        if q.shape[0] != self.cu_seqlens[-1]:
            raise TimError(
                f"batch has {q.shape[0]} tokens but cu_seqlens covers {self.cu_seqlens[-1]}"
            )
        self.layers_called.append(layer_idx)
        parts = [
            dense_causal_attention(
                q[a:b],
                k[a:b],
                v[a:b],
                softmax_scale=softmax_scale,
                sliding_window=sliding_window,
                softcap=softcap,
            )
            for a, b in pairwise(self.cu_seqlens)
        ]
        return torch.cat(parts, dim=0) if parts else q.new_empty(q.shape)  # (T, H, D)


def forward_packed(model: Any, input_ids: Tensor, position_ids: Tensor, backend: Any) -> Tensor:
    """Run ``model`` once over a packed batch, attention going to ``backend``.

    The model is called with ``[1, T]`` inputs, ``use_cache=False`` and no attention
    mask, so transformers builds neither a cache nor a mask.

    Parameters
    ----------
    model : PreTrainedModel
        Switched to tim attention (:func:`tim.models.use_tim_attention`).
    input_ids : Tensor
        ``(T,)`` int64.
    position_ids : Tensor
        ``(T,)`` int64, the RoPE position of every token; any values, gaps allowed.
    backend : ForwardBackend

    Returns
    -------
    Tensor
        ``(T, V)`` logits, model dtype.

    Examples
    --------
    >>> import torch
    >>> from tim.models import tiny_model, use_tim_attention
    >>> model = use_tim_attention(tiny_model("qwen2").model)
    >>> ids = torch.tensor([104, 105, 33, 104, 105])
    >>> pos = torch.tensor([0, 1, 2, 0, 1])
    >>> logits = forward_packed(model, ids, pos, DenseCausalBackend([0, 3, 5]))
    >>> tuple(logits.shape), torch.allclose(logits[3:], logits[:2], atol=1e-5)
    ((5, 259), True)
    """
    import torch

    if getattr(model.config, "_attn_implementation", None) != ATTN_IMPLEMENTATION:
        raise TimError(
            "the model does not use tim attention; call tim.models.use_tim_attention(model) first"
        )
    if input_ids.dim() != 1 or input_ids.shape != position_ids.shape:
        raise ValueError(
            f"input_ids and position_ids must both be (T,), got {tuple(input_ids.shape)} "
            f"and {tuple(position_ids.shape)}"
        )
    with torch.inference_mode(), forward_context(backend):
        out = model(
            input_ids=input_ids[None],  # (1, T)
            position_ids=position_ids[None],  # (1, T)
            attention_mask=None,
            use_cache=False,
        )
    return out.logits[0]  # (T, V)
