"""Move stored post-RoPE keys to new positions by one rotation, without recomputing them.

Hugging Face's RoPE (the ``rotate_half`` convention) turns a key ``x`` at position ``p`` into::

    rope(x, p) = s * (x * cos(p θ) + rotate_half(x) * sin(p θ)) = s * R(p) x

with ``θ = cat(inv_freq, inv_freq)`` and ``s`` the rotary module's ``attention_scaling`` (YaRN's
mscale; 1 for most types). ``R`` is a rotation of each pair ``(x_i, x_{i + D_rot/2})``, so
``R(Δ) R(p) = R(p + Δ)`` and::

    R(Δ) rope(x, p) = s * R(p + Δ) x = rope(x, p + Δ)

The scale ``s`` is already inside the stored key and passes through the rotation unchanged,
which is why :func:`rope_shift` takes no scaling argument.
"""

from __future__ import annotations

import torch

from tim.errors import UnsupportedModelError

__all__ = ["rope_shift", "check_rope_shiftable", "SHIFTABLE_ROPE_TYPES"]

SHIFTABLE_ROPE_TYPES = ("default", "linear", "llama3", "yarn", "proportional", "dynamic", "longrope")
"""RoPE types whose frequencies do not depend on the position (the last two: conditionally)."""


def rope_shift(
    k: torch.Tensor, delta: int | torch.Tensor, inv_freq: torch.Tensor, *,
    interleaved: bool = False,
) -> torch.Tensor:
    """Rotate post-RoPE keys by ``delta`` positions: ``rope(x, p) -> rope(x, p + delta)``.

    The angle ``delta * inv_freq`` is formed in fp64 (an fp32 product would lose about
    ``|delta| * 6e-8`` radians), its cos/sin rounded to fp32, and the rotation applied in fp32
    (fp64 for fp64 keys). Only the first ``D_rot = 2 * len(inv_freq)`` dims rotate; the rest
    (partial rotary) are copied.

    Parameters
    ----------
    k : torch.Tensor
        ``(T, Hkv, D)`` keys that already carry RoPE, any float dtype.
    delta : int or torch.Tensor
        Positions to move by (negative moves left, as after an eviction); an int, or a ``(T,)``
        int64 tensor with one shift per token.
    inv_freq : torch.Tensor
        ``(D_rot / 2,)`` fp32, the model's own rotary ``inv_freq`` buffer (it already holds the
        linear / llama3 / YaRN scaling), ``D_rot <= D``.
    interleaved : bool
        Frequency ``i`` rotates the pair ``(x[2i], x[2i + 1])`` (Cohere) instead of
        ``(x[i], x[i + D_rot / 2])`` (``rotate_half``, Llama and most models).

    Returns
    -------
    torch.Tensor
        ``(T, Hkv, D)`` in k's dtype.

    Examples
    --------
    >>> inv_freq = 1.0 / 10000 ** (torch.arange(0, 8, 2) / 8)           # D = 8
    >>> def rope(x, p):                                                 # HF's formula, s = 1
    ...     ang = torch.cat([p * inv_freq, p * inv_freq])
    ...     rot = torch.cat([-x[..., 4:], x[..., :4]], dim=-1)
    ...     return x * ang.cos() + rot * ang.sin()
    >>> x = torch.randn(1, 1, 8)
    >>> torch.allclose(rope_shift(rope(x, 40), -15, inv_freq), rope(x, 25), atol=1e-5)
    True
    """
    if k.dim() != 3:
        raise ValueError(f"k must be (T, Hkv, D), got {tuple(k.shape)}")
    half = inv_freq.shape[0]
    if inv_freq.dim() != 1 or 2 * half > k.shape[2]:
        raise ValueError(
            f"inv_freq must be (D_rot / 2,) with D_rot <= D = {k.shape[2]}, got {tuple(inv_freq.shape)}"
        )
    acc = torch.float64 if k.dtype == torch.float64 else torch.float32
    freq = inv_freq.to(device=k.device, dtype=torch.float64)
    if isinstance(delta, torch.Tensor):
        if delta.dim() != 1 or delta.shape[0] != k.shape[0] or delta.is_floating_point():
            raise ValueError(
                f"delta must be an int or a ({k.shape[0]},) integer tensor, got "
                f"{tuple(delta.shape)} {delta.dtype}"
            )
        angle = delta.to(device=k.device, dtype=torch.float64)[:, None, None] * freq  # (T, 1, D_rot/2)
    else:
        angle = float(int(delta)) * freq  # (D_rot/2,)
    cos, sin = torch.cos(angle).to(acc), torch.sin(angle).to(acc)
    x = k.to(acc)
    out = torch.empty_like(x)  # (T, Hkv, D)
    if interleaved:  # pairs (x[2i], x[2i+1])
        x1, x2 = x[..., 0 : 2 * half : 2], x[..., 1 : 2 * half : 2]
        out[..., 0 : 2 * half : 2] = x1 * cos - x2 * sin
        out[..., 1 : 2 * half : 2] = x2 * cos + x1 * sin
    else:
        x1, x2 = x[..., :half], x[..., half : 2 * half]  # the halves rotate_half pairs up
        o1, o2 = out[..., :half], out[..., half : 2 * half]
        torch.mul(x1, cos, out=o1).addcmul_(x2, sin, value=-1)  # x1 cos - x2 sin
        torch.mul(x2, cos, out=o2).addcmul_(x1, sin)  # x2 cos + x1 sin
    out[..., 2 * half :] = x[..., 2 * half :]
    return out.to(k.dtype)


def check_rope_shiftable(
    rope_type: str,
    *,
    mrope_section: object = None,
    max_position: int | None = None,
    original_max_position: int | None = None,
) -> None:
    """Raise unless :func:`rope_shift` is exact for this RoPE configuration.

    - ``default``, ``linear``, ``llama3``, ``yarn``, ``proportional``: always; their
      ``inv_freq`` is fixed at load time.
    - ``dynamic`` (NTK): HF recomputes ``inv_freq`` once a position reaches
      ``max_position_embeddings``. Exact while every position stays below it, which tim's bounded
      positions guarantee; refused only when ``max_position >= original_max_position``.
    - ``longrope``: HF switches from the short to the long factors once a position exceeds
      ``original_max_position_embeddings``, re-rotating every key. Exact only when the caller
      shows ``max_position < original_max_position`` (then ``inv_freq`` is the short-factor
      ``original_inv_freq``); refused otherwise.
    - M-RoPE (any type with an ``mrope_section``) and unknown types: refused.

    Parameters
    ----------
    rope_type : str
        ``config.rope_parameters["rope_type"]``.
    mrope_section : optional
        ``rope_parameters.get("mrope_section")``; anything but ``None`` means multimodal RoPE.
    max_position : int, optional
        The largest position id the runtime will use.
    original_max_position : int, optional
        ``max_position_embeddings`` for ``dynamic``; ``original_max_position_embeddings`` for
        ``longrope``.

    Raises
    ------
    tim.errors.UnsupportedModelError
        Naming the RoPE type and why.

    Examples
    --------
    >>> check_rope_shiftable("yarn")
    >>> check_rope_shiftable("mrope")
    Traceback (most recent call last):
    ...
    tim.errors.UnsupportedModelError: RoPE type 'mrope' cannot be shifted: multimodal RoPE rotates sections by different position axes
    """
    def refuse(why: str) -> None:
        raise UnsupportedModelError(f"RoPE type {rope_type!r} cannot be shifted: {why}")

    if mrope_section is not None or "mrope" in rope_type:
        refuse("multimodal RoPE rotates sections by different position axes")
    if rope_type not in SHIFTABLE_ROPE_TYPES:
        refuse(f"unknown to tim; shiftable types are {SHIFTABLE_ROPE_TYPES}")
    bounded = (
        max_position is not None
        and original_max_position is not None
        and max_position < original_max_position
    )
    known_unbounded = (
        max_position is not None and original_max_position is not None and not bounded
    )
    if rope_type == "dynamic" and known_unbounded:
        refuse(
            f"dynamic NTK recomputes inv_freq at position {original_max_position}; "
            f"max_position {max_position} reaches it"
        )
    if rope_type == "longrope" and not bounded:
        refuse(
            "longrope switches to its long factors once a position exceeds "
            "original_max_position_embeddings; pass max_position < original_max_position"
        )
