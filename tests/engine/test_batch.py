"""Batch building: a batch moves whole to the device the KV pages live on."""

from __future__ import annotations

from dataclasses import fields

import torch

from tim.cache import CacheConfig, KVStore
from tim.engine.batch import WorkerInput, build_batch
from tim.engine.cascade_cost import CascadeCost
from tim.kernels import block_table_to_slots


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
                         WorkerInput(b, (30,), (4,))], cascade=CascadeCost(4), block_tables=True)
    moved = batch.to("meta")  # a device with no data: a tensor left behind stays on "cpu"
    before, after = tensors_of(batch), tensors_of(moved)
    # the lone group's keys go by block table (2 more tensors), the cascade group's by slots
    assert len(batch.groups) == 2 and len(after) == len(before) == 4 + 4 * 2 + 2
    for (name, old), (_, new) in zip(before, after, strict=True):
        assert new.device.type == "meta", name
        assert new.shape == old.shape and new.dtype == old.dtype, name
    assert moved.order == batch.order and moved.sampling == batch.sampling


def test_block_tables_address_the_same_keys_as_slots_and_only_for_aligned_views():
    # page size 4: a 6-token prompt is aligned (one span from a page's front); its child is
    # not (the parent's span ends mid-page, then the child's own span starts a fresh page)
    store = KVStore(CacheConfig(num_layers=1, num_kv_heads=1, head_dim=4, num_pages=16,
                                page_size=4, position_policy="keep"))
    root = store.new_view()
    store.append(root, range(6), token_ids=list(range(6)))
    other = store.new_view()
    store.append(other, range(9), token_ids=list(range(9)))
    inputs = [WorkerInput(root, (5,), (5,)), WorkerInput(other, (8,), (8,))]
    group, = build_batch(inputs, block_tables=True).groups
    assert group.kv_slots.numel() == 0 and group.seqlens_k.tolist() == [6, 9]
    slots, cu = block_table_to_slots(group.block_table, group.seqlens_k, 4)
    assert slots.tolist() == torch.cat([root.slot_mapping(), other.slot_mapping()]).tolist()
    assert cu.tolist() == group.cu_seqlens_k.tolist()

    child = store.fork(root)
    store.append(child, [6], token_ids=[60])
    assert root.page_table() is not None and child.page_table() is None
    group, = build_batch([WorkerInput(child, (60,), (6,)), inputs[1]], block_tables=True).groups
    assert group.block_table is None  # one misaligned member: the group goes by slots
    assert group.kv_slots.tolist() == torch.cat([child.slot_mapping(),
                                                 other.slot_mapping()]).tolist()
