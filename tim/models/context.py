"""The forward context: the one piece of ambient state in tim.

The runner enters ``with forward_context(backend):`` around one model forward. Every
attention layer then hands its packed queries, keys and values to ``backend.attend``.
Nothing else in tim is ambient, and contexts do not nest.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tim.errors import TimError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["ForwardBackend", "forward_context", "current_backend"]


@runtime_checkable
class ForwardBackend(Protocol):
    """What the ``tim`` attention function calls for every layer of one forward.

    Not to be confused with :class:`tim.kernels.backends.AttentionBackend`, the kernel family
    (``torch``, ``flash``, ...) that such an object may use to do the attending.

    One forward is one packed batch: the new tokens of all workers laid end to end as
    ``[1, T]`` input. The backend knows, from the batch metadata it was built with, which
    token belongs to which worker, where to store its K/V and what each query may see.
    """

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
        """Attend the batch's queries for one layer.

        Parameters
        ----------
        layer_idx : int
            The decoder layer, ``0 <= layer_idx < num_layers``.
        q : Tensor
            ``(T, H, D)``, model dtype. Queries of the T new tokens, RoPE already applied
            at their ``position_ids``.
        k, v : Tensor
            ``(T, Hkv, D)``, model dtype. Keys (RoPE applied) and values of the same T
            tokens. ``H % Hkv == 0`` (GQA).
        softmax_scale : float
            Multiplies ``q @ k.T`` before the softmax (usually ``D ** -0.5``).
        sliding_window : int or None
            Hugging Face convention: query i sees key j only if ``i - j < sliding_window``
            (flash-attn ``window_size=(sliding_window - 1, 0)``). None: no window.
        softcap : float or None
            Logit soft-capping, ``softcap * tanh(scores / softcap)``. None: off.

        Returns
        -------
        Tensor
            ``(T, H, D)``, the dtype of ``q``.
        """
        ...


_ACTIVE: ContextVar[ForwardBackend | None] = ContextVar("tim_forward_context", default=None)


@contextmanager
def forward_context(backend: ForwardBackend) -> Iterator[ForwardBackend]:
    """Make ``backend`` the target of the ``tim`` attention function for one block.

    Parameters
    ----------
    backend : ForwardBackend
        Receives every layer's ``attend`` call while the block runs.

    Raises
    ------
    TimError
        If a forward context is already active (contexts do not nest).
    TypeError
        If ``backend`` has no ``attend`` method.

    Examples
    --------
    >>> from tim.models.testing import DenseCausalBackend
    >>> with forward_context(DenseCausalBackend([0, 3])) as backend:
    ...     current_backend() is backend
    True
    >>> current_backend()
    Traceback (most recent call last):
    ...
    tim.errors.TimError: the tim attention function was called outside a forward context; ...
    """
    if not isinstance(backend, ForwardBackend):
        raise TypeError(
            f"forward_context needs a ForwardBackend (with .attend), got {backend!r}"
        )
    if _ACTIVE.get() is not None:
        raise TimError(
            "a forward context is already active; forward contexts do not nest "
            "(one model forward runs under exactly one backend)"
        )
    token = _ACTIVE.set(backend)
    try:
        yield backend
    finally:
        _ACTIVE.reset(token)


def current_backend() -> ForwardBackend:
    """The backend of the active forward context.

    Raises
    ------
    TimError
        Outside a forward context.
    """
    backend = _ACTIVE.get()
    if backend is None:
        raise TimError(
            "the tim attention function was called outside a forward context; "
            "call the model through tim's runner (or tim.models.testing.forward_packed)"
        )
    return backend
