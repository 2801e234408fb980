import pytest
import torch

from tim.cache import CacheConfig, KVStore, group_by_prefix


@pytest.fixture
def kv():
    return KVStore(
        CacheConfig(
            num_layers=1,
            num_kv_heads=1,
            head_dim=4,
            num_pages=64,
            page_size=4,
            position_policy="keep",
        )
    )


def test_groups_siblings_by_shared_prefix(kv):
    root = kv.new_view()
    kv.append(root, range(6), label="prompt")
    kv.append(root, range(6, 9), label="plan")
    c1, c2, c3 = kv.fork(root), kv.fork(root), kv.fork(root)
    for i, child in enumerate((c1, c2, c3)):
        kv.append(child, range(9, 10 + i))
    grandchild = kv.fork(c1)
    kv.append(grandchild, [10, 11])
    other = kv.new_view()
    kv.append(other, range(4))
    empty = kv.new_view()

    views = [c1, other, c2, grandchild, c3, empty]
    groups = group_by_prefix(views)
    assert [g.members for g in groups] == [(0, 2, 3, 4), (1,), (5,)]
    shared = groups[0]
    assert shared.num_prefix_spans == 2 and shared.prefix_len == 9
    assert shared.prefix_slots.tolist() == root.slot_mapping().tolist()
    for member, suffix in zip(shared.members, shared.suffix_slots, strict=True):
        whole = torch.cat([shared.prefix_slots, suffix])
        assert whole.tolist() == views[member].slot_mapping().tolist()
    assert [len(s) for s in shared.suffix_slots] == [1, 2, 3, 3]
    lone = groups[1]
    assert lone.prefix_len == 0 and lone.suffix_slots[0].tolist() == other.slot_mapping().tolist()
    assert groups[2].suffix_slots[0].numel() == 0


def test_short_prefix_is_not_worth_a_cascade(kv):
    root = kv.new_view()
    kv.append(root, range(3))
    a, b = kv.fork(root), kv.fork(root)
    kv.append(a, [3])
    kv.append(b, [3, 4])
    assert [g.members for g in group_by_prefix([a, b], min_prefix_len=4)] == [(0,), (1,)]
    (group,) = group_by_prefix([a, b], min_prefix_len=3)
    assert group.members == (0, 1) and group.prefix_len == 3
    with pytest.raises(ValueError, match="-1"):
        group_by_prefix([a], min_prefix_len=-1)


def test_every_view_in_exactly_one_group(kv):
    root = kv.new_view()
    kv.append(root, range(5))
    views = [kv.fork(root) for _ in range(4)] + [root]
    for i, view in enumerate(views[:4]):
        kv.append(view, range(5, 6 + i))
    groups = group_by_prefix(views)
    members = sorted(m for g in groups for m in g.members)
    assert members == list(range(5))
    (group,) = groups
    assert group.prefix_len == 5 and group.suffix_slots[-1].numel() == 0  # root: all prefix
