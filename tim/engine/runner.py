"""The model runner: owns the model and the KV store's tensors for one forward at a time."""

from __future__ import annotations

from typing import Any

import torch

from tim import kernels
from tim.cache import KVStore
from tim.engine.batch import AttentionGroup, Batch
from tim.models.attention import AttentionSwitch
from tim.models.context import forward_context

__all__ = ["ModelRunner"]


class ModelRunner:
    """Runs the HF model once per step over a packed batch; attention reads the KV store.

    The runner is the forward context's backend: for every layer the ``tim`` attention
    function calls :meth:`attend`, which writes the batch's new K/V into the store and
    attends each group of workers through :mod:`tim.kernels`.

    The model is switched to the ``tim`` attention function only for the length of each
    forward (:class:`~tim.models.attention.AttentionSwitch`), so between steps, after a run
    and after one that raised it is the user's model as it was: ``generate()`` works.
    """

    def __init__(self, model: Any, store: KVStore, *, backend: str = "auto") -> None:
        self.model = model
        self._tim_attention = AttentionSwitch(model)  # refuses a model that cannot use it
        self.store = store
        self.backend = backend
        self._batch: Batch | None = None
        self._device = next(model.parameters()).device

    @torch.inference_mode()
    def run(self, batch: Batch) -> torch.Tensor:
        """One forward; returns ``(B_logits, V)`` fp32 logits at ``batch.logits_indices``."""
        if batch.input_ids.device != self._device:
            batch = batch.to(self._device)
        self._batch = batch
        try:
            with self._tim_attention, forward_context(self):
                out = self.model(
                    input_ids=batch.input_ids[None],  # (1, T)
                    position_ids=batch.position_ids[None],  # (1, T)
                    use_cache=False,
                    logits_to_keep=batch.logits_indices,
                )
        finally:
            self._batch = None
        return out.logits[0].float()  # (B_logits, V)

    def attend(
        self,
        layer_idx: int,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        softmax_scale: float,
        sliding_window: int | None,
        softcap: float | None,
    ) -> torch.Tensor:
        batch = self._batch
        assert batch is not None, "attend outside run()"
        self.store.write(layer_idx, batch.write_slots, k, v)
        k_pages, v_pages = self.store.pool.layer(layer_idx)
        window = (sliding_window - 1, 0) if sliding_window else (-1, -1)
        out = torch.empty_like(q)  # (T, H, D)
        for group in batch.groups:
            q_group = q[group.token_start : group.token_end]  # (Tg, H, D)
            out[group.token_start : group.token_end] = self._attend_group(
                q_group, k_pages, v_pages, group, softmax_scale, window, softcap or 0.0
            )
        return out

    def _attend_group(
        self,
        q: torch.Tensor,
        k_pages: torch.Tensor,
        v_pages: torch.Tensor,
        group: AttentionGroup,
        softmax_scale: float,
        window: tuple[int, int],
        softcap: float,
    ) -> torch.Tensor:
        if group.prefix_slots.numel() and window == (-1, -1):
            return kernels.paged_cascade_attention(
                q, k_pages, v_pages, group.cu_seqlens_q, group.prefix_slots, group.kv_slots,
                group.cu_seqlens_k, causal=True, softmax_scale=softmax_scale, softcap=softcap,
                backend=self.backend,
            )
        if group.prefix_slots.numel():  # a window needs whole sequences: re-join prefix + suffix
            raise AssertionError("windowed layers are built without cascade groups")
        k, v = kernels.gather_kv(k_pages, v_pages, group.kv_slots)  # (L, Hkv, D)
        return kernels.varlen_attention(
            q, k, v, group.cu_seqlens_q, group.cu_seqlens_k, group.max_seqlen_q,
            group.max_seqlen_k, causal=True, softmax_scale=softmax_scale, window_size=window,
            softcap=softcap, backend=self.backend,
        )
