"""Batch building: a batch moves whole to the device the KV pages live on."""

from __future__ import annotations

from dataclasses import fields

import torch

from tim.cache import CacheConfig, KVStore
from tim.engine.batch import WorkerInput, build_batch


def tensors_of(obj) -> list[tuple[str, torch.Tensor]]:
    found = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, torch.Tensor):
            found.append((f.name, value))
        elif isinstance(value, tuple):
            for item in value:
                if hasattr(item, "__dataclass_fields__"):
                    found.extend((f"{f.name}.{n}", t) for n, t in tensors_of(item))
    return found


def test_every_tensor_of_a_batch_moves_to_the_device():
    store = KVStore(CacheConfig(num_layers=1, num_kv_heads=1, head_dim=4, num_pages=8,
                                page_size=4, position_policy="keep"))
    parent = store.new_view()
    store.append(parent, range(4), token_ids=[10, 11, 12, 13])
    a, b = store.fork(parent), store.fork(parent)
    store.append(a, [4], token_ids=[20])
    store.append(b, [4], token_ids=[30])
    lone = store.new_view()
    store.append(lone, [0, 1], token_ids=[40, 41])
    batch = build_batch([WorkerInput(a, (20,), (4,)), WorkerInput(lone, (40, 41), (0, 1)),
                         WorkerInput(b, (30,), (4,))], min_prefix_len=4)
    moved = batch.to("meta")  # a device with no data: a tensor left behind stays on "cpu"
    before, after = tensors_of(batch), tensors_of(moved)
    assert len(batch.groups) == 2 and len(after) == len(before) == 4 + 4 * 2
    for (name, old), (_, new) in zip(before, after, strict=True):
        assert new.device.type == "meta", name
        assert new.shape == old.shape and new.dtype == old.dtype, name
    assert moved.order == batch.order and moved.sampling == batch.sampling
