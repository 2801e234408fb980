"""The model runner: owns the model and the KV store's tensors for one forward at a time."""

from __future__ import annotations

from typing import Any

import torch

from tim import kernels
from tim.cache import KVStore
from tim.engine.batch import AttentionGroup, Batch
from tim.engine.sharing import SegmentGroup
from tim.models.attention import AttentionSwitch
from tim.models.context import forward_context

__all__ = ["ModelRunner"]


class ModelRunner:
    """Runs the HF model once per step over a packed batch; attention reads the KV store.

    The runner is the forward context's backend: for every layer the ``tim`` attention
    function calls :meth:`attend`, which writes the batch's new K/V into the store and
    attends each group of workers through :mod:`tim.kernels`. The first layer plans each
    group's kernel call (checks, backend choice, block cuts, masks); every later layer with
    the same options runs those plans, so a layer costs its tensor work only.

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
        self._plans: dict[tuple, list[Any]] = {}  # the step's kernel plans, by layer options
        self._device = next(model.parameters()).device

    @torch.inference_mode()
    def run(self, batch: Batch) -> torch.Tensor:
        """One forward; returns ``(B_logits, V)`` fp32 logits at ``batch.logits_indices``."""
        if batch.input_ids.device != self._device:
            batch = batch.to(self._device)
        self._batch, self._plans = batch, {}
        try:
            with self._tim_attention, forward_context(self):
                out = self.model(
                    input_ids=batch.input_ids[None],  # (1, T)
                    position_ids=batch.position_ids[None],  # (1, T)
                    use_cache=False,
                    logits_to_keep=batch.logits_indices,
                )
        finally:
            self._batch, self._plans = None, {}
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
        options = (softmax_scale, sliding_window, softcap)
        plans = self._plans.get(options)
        if plans is None:  # the first layer with these options plans every group for the step
            plans = self._plans[options] = [
                self._plan(q[g.token_start : g.token_end], k_pages, g, options)
                for g in batch.groups
            ]
        if len(plans) == 1:
            return plans[0].run(q, k_pages, v_pages)[0]
        out = torch.empty_like(q)  # (T, H, D)
        for group, plan in zip(batch.groups, plans, strict=True):
            rows = slice(group.token_start, group.token_end)
            out[rows] = plan.run(q[rows], k_pages, v_pages)[0]
        return out

    def _plan(self, q: torch.Tensor, k_pages: torch.Tensor, group: AttentionGroup | SegmentGroup,
              options: tuple[float, int | None, float | None]) -> Any:
        """The kernel plan of one group, run by every layer with the same ``options``."""
        scale, sliding_window, softcap = options
        window = (sliding_window - 1, 0) if sliding_window else (-1, -1)
        common = dict(causal=True, softmax_scale=scale, softcap=softcap or 0.0,
                      backend=self.backend)
        if isinstance(group, SegmentGroup):
            if window != (-1, -1):  # the engine refuses shared siblings on windowed models
                raise AssertionError("segment attention has no sliding window")
            return kernels.plan_segments(
                q, k_pages, group.cu_seqlens_q, group.own_slots, group.cu_seqlens_own,
                group.segments, inv_freq=self.store.rope_inv_freq,
                interleaved=self.store.rope_interleaved, **common)
        if group.prefix_slots.numel():
            if window != (-1, -1):  # a window needs whole sequences: re-join prefix + suffix
                raise AssertionError("windowed layers are built without cascade groups")
            return kernels.plan_paged_cascade(
                q, k_pages, group.cu_seqlens_q, group.prefix_slots, group.kv_slots,
                group.cu_seqlens_k, **common)
        sizes = dict(max_seqlen_q=group.max_seqlen_q, max_seqlen_k=group.max_seqlen_k)
        if group.block_table is not None:
            return kernels.plan_paged(q, k_pages, group.cu_seqlens_q, group.block_table,
                                      group.seqlens_k, window_size=window, **sizes, **common)
        return kernels.plan_paged(q, k_pages, group.cu_seqlens_q, slots=group.kv_slots,
                                  cu_seqlens_k=group.cu_seqlens_k, window_size=window, **sizes,
                                  **common)
