"""tim/engine/sharing.py: the layout of shared siblings, on the picture of the module."""

from __future__ import annotations

import pytest

from tim.cache import CacheConfig, KVStore
from tim.engine.sharing import Visible, segment_group


def family(lengths=(3, 2, 4), prefix=4):
    """A prefix written at 0..prefix-1 and one child per length, each writing from prefix on."""
    store = KVStore(CacheConfig(num_layers=1, num_kv_heads=1, head_dim=4, num_pages=64,
                                page_size=1, position_policy="keep"))
    parent = store.new_view()
    store.append(parent, range(prefix), token_ids=list(range(prefix)))
    kids = [store.fork(parent) for _ in lengths]
    for kid, n in zip(kids, lengths, strict=True):
        store.append(kid, range(prefix, prefix + n), token_ids=[7] * n)
    return store, parent, kids


def test_the_module_picture():
    """Worker 1 sees child 0 (3 tokens) and child 2 (4): deltas -7, -7, -4 in its frame."""
    _, _, (a, b, c) = family()
    group = segment_group([(b, 4, 1, (Visible(a, 4, 7), Visible(c, 4, 8)))], token_start=5)
    deltas = [dict(s.deltas) for s in group.segments]
    assert deltas == [{0: -7}, {0: -7}, {0: -4}]
    assert [s.slots.tolist() for s in group.segments] == [
        a.slot_mapping()[:4].tolist(), a.slot_mapping()[4:].tolist(), c.slot_mapping()[4:].tolist()]
    assert group.own_slots.tolist() == b.slot_mapping()[4:].tolist()
    assert (group.token_start, group.token_end) == (5, 6)
    assert group.cu_seqlens_q.tolist() == [0, 1] and group.cu_seqlens_own.tolist() == [0, 2]


def test_siblings_share_one_prefix_segment_and_each_range_once():
    _, _, kids = family()
    workers = [(kid, 4, 1, tuple(Visible(o, 4, o.num_tokens) for o in kids if o is not kid))
               for kid in kids]
    group = segment_group(workers, token_start=0)
    assert len(group.segments) == 4  # the prefix once, each child's range once
    prefix, *ranges = group.segments
    seen = {0: 2 + 4, 1: 3 + 4, 2: 3 + 2}  # what each worker's siblings hold
    assert dict(prefix.deltas) == {b: -n for b, n in seen.items()}
    # in first-seen order: worker 0 sees children 1 and 2, then worker 1 sees child 0
    owners = [next(i for i, k in enumerate(kids) if k.slot_mapping()[4:].tolist() ==
                   r.slots.tolist()) for r in ranges]
    assert owners == [1, 2, 0]
    assert [sorted(r.deltas) for r in ranges] == [[0, 2], [0, 1], [1, 2]]


def test_gaps_inside_a_range_are_kept():
    """Under keep, an evicted middle leaves a hole: the range spans its positions."""
    store, _, (a, b, _) = family(lengths=(5, 1, 1))
    store.evict(a, 5, 7)  # a's tokens at positions 5, 6 leave; 4, 7, 8 stay
    assert a.position_ids().tolist()[4:] == [4, 7, 8]
    group = segment_group([(b, 4, 1, (Visible(a, 4, a.num_tokens),))], token_start=0)
    assert [dict(s.deltas) for s in group.segments] == [{0: -5}, {0: -5}]


def test_queries_must_be_own_tokens():
    _, _, (a, b, _) = family()
    with pytest.raises(ValueError, match="queries"):
        segment_group([(b, 4, 3, (Visible(a, 4, 7),))], token_start=0)
    with pytest.raises(ValueError, match="outside"):
        Visible(a, 4, 9)
