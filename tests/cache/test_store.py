"""Table tests of KVStore: sharing rules, budget, position policies, join, integrity."""

import pytest
import torch

from tim.cache import CacheConfig, CacheIntegrityError, KVStore, PositionPolicy
from tim.errors import KVBudgetError, TimError

L, HKV, D = 2, 2, 8
INV_FREQ = 1.0 / (10000.0 ** (torch.arange(0, 8, 2, dtype=torch.float32) / 8))


def make(page_size=4, num_pages=16, policy="shift", max_live_tokens=None, inv_freq=INV_FREQ):
    config = CacheConfig(
        num_layers=L,
        num_kv_heads=HKV,
        head_dim=D,
        num_pages=num_pages,
        page_size=page_size,
        max_live_tokens=max_live_tokens,
        position_policy=policy,
    )
    return KVStore(config, rope_inv_freq=inv_freq)


class Filler:
    """Writes rope(k_pre, pos) for appended tokens and remembers k_pre / v per slot."""

    def __init__(self, kv, rope, seed=0):
        self.kv, self.rope = kv, rope
        self.gen = torch.Generator().manual_seed(seed)
        self.k_pre, self.v = {}, {}

    def append(self, view, positions, **kwargs):
        slots = self.kv.append(view, positions, **kwargs)
        num = len(slots)
        k_pre = torch.randn(L, num, HKV, D, generator=self.gen, dtype=torch.float64)
        v = torch.randn(L, num, HKV, D, generator=self.gen)
        for layer in range(L):
            pos = torch.as_tensor(list(positions))
            self.kv.write(layer, slots, self.rope(k_pre[layer], pos, INV_FREQ).float(), v[layer])
        for i, slot in enumerate(slots.tolist()):
            self.k_pre[slot], self.v[slot] = k_pre[:, i], v[:, i]
        return slots

    def assert_view(self, view):
        """Gathered keys equal rope(k_pre) at the view's current positions; values intact."""
        slots, pos = view.slot_mapping().tolist(), view.position_ids()
        for layer in range(L):
            k, v = self.kv.gather(view, layer)
            k_pre = torch.stack([self.k_pre[s][layer] for s in slots])
            torch.testing.assert_close(
                k.double(), self.rope(k_pre, pos, INV_FREQ), atol=1e-5, rtol=1e-5
            )
            assert torch.equal(v, torch.stack([self.v[s][layer] for s in slots]))


def live_kv(kv, pool_tensor):
    """The K or V rows of every slot a live view holds (the rest of the pool is scratch)."""
    slots = sorted({s for v in kv.views for s in v.slot_mapping().tolist()})
    flat = pool_tensor.flatten(1, 2)  # (L, P * S, Hkv, D)
    return flat[:, slots].clone()


def snapshot(kv):
    return (
        live_kv(kv, kv.pool.k_cache),
        live_kv(kv, kv.pool.v_cache),
        [(v.view_id, v.slot_mapping().tolist(), v.position_ids().tolist()) for v in kv.views],
        kv.pool.num_free_pages,
        kv.num_live_tokens,
    )


def same_bits(a, b):
    """Bitwise equality: the pool is allocated empty, so unwritten slots may hold NaN."""
    return torch.equal(a.view(torch.int32), b.view(torch.int32))


def assert_unchanged(kv, before):
    after = snapshot(kv)
    assert before[2] == after[2]  # same views, slots and positions, so the rows line up
    assert same_bits(before[0], after[0]) and same_bits(before[1], after[1])
    assert before[2:] == after[2:]
    kv.check_integrity()


# ---------------------------------------------------------------- sharing rules
def test_fork_never_writes_into_the_parents_partial_page(ref):
    kv = make(page_size=4)
    fill = Filler(kv, ref.rope)
    parent = kv.new_view()
    first = fill.append(parent, range(3))  # page p, offsets 0..2: partially filled
    parent_page = first[0].item() // 4
    child = kv.fork(parent)
    assert parent.open_span is None and child.open_span is None
    child_slots = fill.append(child, [3, 4])
    parent_slots = fill.append(parent, [3])
    assert all(s // 4 != parent_page for s in child_slots.tolist() + parent_slots.tolist())
    assert set(s // 4 for s in child_slots.tolist()).isdisjoint(
        s // 4 for s in parent_slots.tolist()
    )
    fill.assert_view(parent)
    fill.assert_view(child)
    assert kv.num_live_tokens == 6  # shared tokens are counted once
    kv.check_integrity()


def test_exclusive_view_packs_new_spans_into_its_own_page():
    kv = make(page_size=4, policy="keep")
    view = kv.new_view()
    assert kv.append(view, range(3), label="a").tolist() == [0, 1, 2]
    assert kv.append(view, [3, 4], label="b").tolist() == [3, 4]  # new span, same page 0
    assert [s.label for s in view.spans] == ["a", "b"]
    assert kv.pool.num_used_pages == 2 and kv.pool.ref_count(0) == 2
    kv.seal(view)
    assert kv.append(view, [5]).tolist() == [5]  # sealed: new span, still packed
    assert len(view.spans) == 3
    kv.check_integrity()


def test_shared_span_eviction_is_deferred_until_the_other_view_drops(ref):
    kv = make(page_size=2)
    fill = Filler(kv, ref.rope)
    parent = kv.new_view()
    fill.append(parent, range(4), label="prompt")
    child = kv.fork(parent)
    fill.append(parent, range(4, 8), label="own")
    fill.append(child, range(4, 6))

    before = snapshot(kv)
    assert not kv.can_evict(parent, 1, 5)
    result = kv.evict(parent, 1, 5)  # touches the shared prompt
    assert result.deferred and result.num_evicted == 0 and result.num_freed_pages == 0
    assert result.reencode is None and result.num_moved == 0
    assert_unchanged(kv, before)
    assert kv.can_evict(parent, 4, 6)  # the parent's own span is fine

    kv.drop(child)
    assert kv.can_evict(parent, 1, 5)
    result = kv.evict(parent, 1, 5)
    assert not result.deferred and result.num_evicted == 4
    assert result.policy is PositionPolicy.SHIFT and result.num_moved == 3
    assert parent.position_ids().tolist() == [0, 1, 2, 3]
    fill.assert_view(parent)
    kv.check_integrity()
    kv.drop(parent)
    assert kv.pool.num_free_pages == kv.pool.num_pages


# ---------------------------------------------------------------- budget
def test_page_budget_exhaustion_raises_and_leaves_everything_intact(ref):
    kv = make(page_size=2, num_pages=3)
    fill = Filler(kv, ref.rope)
    view = kv.new_view()
    fill.append(view, range(5))  # 3 pages, one free slot left in the last
    child = kv.fork(view)
    assert not kv.can_append(child, 1)  # sealed by the fork: needs a fresh page
    before = snapshot(kv)
    with pytest.raises(KVBudgetError) as info:
        kv.append(child, [5])
    message = str(info.value)
    assert "needs 1 new page(s)" in message and "0 of 3 pages free" in message
    assert "Evict or drop views, or raise num_pages" in message
    assert_unchanged(kv, before)
    assert len(child.spans) == 1 and child.open_span is None

    kv.drop(child)  # the parent's last page is its own again: the new span packs into it
    assert kv.can_append(view, 1) and not kv.can_append(view, 2)
    fill.append(view, [5])
    before = snapshot(kv)
    with pytest.raises(KVBudgetError, match="needs 1 new page"):
        kv.append(view, [6], label="new span")
    assert_unchanged(kv, before)
    fill.assert_view(view)
    kv.evict(view, 0, 2)  # frees page 0; the tail shifts left by 2
    fill.append(view, [4, 5])
    fill.assert_view(view)
    kv.check_integrity()


def test_token_budget_counts_shared_tokens_once():
    kv = make(page_size=1, num_pages=32, max_live_tokens=5, policy="keep")
    view = kv.new_view()
    kv.append(view, range(3))
    child = kv.fork(view)
    kv.append(child, [3, 4])
    assert kv.num_live_tokens == 5 and kv.pool.num_free_pages == 27
    assert not kv.can_append(view, 1)
    before = snapshot(kv)
    with pytest.raises(KVBudgetError, match="would make 6 live tokens, max_live_tokens=5"):
        kv.append(view, [3])
    assert_unchanged(kv, before)
    kv.evict(child, 3, 5)
    assert kv.num_live_tokens == 3 and kv.peak_live_tokens == 5
    kv.append(view, [3, 4])


# ---------------------------------------------------------------- position policies
def ten_tokens(ref, policy, page_size=4):
    kv = make(page_size=page_size, policy=policy)
    fill = Filler(kv, ref.rope)
    view = kv.new_view()
    fill.append(view, range(4), label="prompt", token_ids=range(100, 104))
    fill.append(view, range(4, 10), label="body", token_ids=range(104, 110))
    return kv, fill, view


@pytest.mark.parametrize("page_size", [1, 4])
def test_shift_moves_tail_and_rerotates_keys_in_every_layer(ref, page_size):
    kv, fill, view = ten_tokens(ref, "shift", page_size)
    slots = view.slot_mapping().tolist()
    k_before = kv.pool.k_cache.clone()
    result = kv.evict(view, 3, 6)  # mid-span on both ends
    assert (result.num_evicted, result.num_moved, result.deferred) == (3, 4, False)
    assert result.reencode is None
    assert view.slot_mapping().tolist() == slots[:3] + slots[6:]
    assert view.position_ids().tolist() == list(range(7))
    assert view.max_position == 6 and kv.peak_position == 9
    fill.assert_view(view)  # keys == rope(k_pre, new position), both layers; values exact
    flat = kv.pool.k_cache.view(L, -1, HKV, D)
    head = torch.tensor(slots[:3])
    assert torch.equal(flat[:, head], k_before.view(L, -1, HKV, D)[:, head])  # untouched
    kv.check_integrity()


def test_reencode_reports_the_tail_and_leaves_keys_stale(ref):
    kv, fill, view = ten_tokens(ref, "reencode")
    slots = view.slot_mapping().tolist()
    k_before = kv.pool.k_cache.clone()
    result = kv.evict(view, 2, 5)
    re = result.reencode
    assert result.policy is PositionPolicy.REENCODE and result.num_moved == 5
    assert re.start == 2
    assert re.slots.tolist() == slots[5:]
    assert re.positions.tolist() == [2, 3, 4, 5, 6]
    assert re.token_ids.tolist() == list(range(105, 110))
    assert view.position_ids().tolist() == list(range(7))
    assert same_bits(kv.pool.k_cache, k_before)  # nothing rotated
    # the engine recomputes the tail; afterwards the view is consistent again
    for layer in range(L):
        k_pre = torch.stack([fill.k_pre[s][layer] for s in re.slots.tolist()])
        v = torch.stack([fill.v[s][layer] for s in re.slots.tolist()])
        kv.write(layer, re.slots, ref.rope(k_pre, re.positions, INV_FREQ).float(), v)
    fill.assert_view(view)
    assert kv.evict(view, 5, 7).reencode is None  # nothing after the range


def test_keep_moves_nothing(ref):
    kv, fill, view = ten_tokens(ref, "keep")
    k_before = kv.pool.k_cache.clone()
    result = kv.evict(view, 1, 8)
    assert (result.num_evicted, result.num_moved, result.reencode) == (7, 0, None)
    assert view.position_ids().tolist() == [0, 8, 9]
    assert same_bits(kv.pool.k_cache, k_before)
    fill.assert_view(view)


def test_policy_override_and_shift_needs_inv_freq(ref):
    with pytest.raises(ValueError, match="rope_inv_freq"):
        make(policy="shift", inv_freq=None)
    with pytest.raises(ValueError, match="head_dim/2"):
        make(inv_freq=torch.ones(5))
    kv = make(policy="keep", inv_freq=None)
    view = kv.new_view()
    kv.append(view, range(6))
    before = snapshot(kv)
    with pytest.raises(ValueError, match="rope_inv_freq"):
        kv.evict(view, 0, 2, policy="shift")
    assert_unchanged(kv, before)
    assert kv.evict(view, 0, 2, policy="reencode").reencode.positions.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="'sideways'"):
        kv.evict(view, 0, 1, policy="sideways")


def test_evict_refuses_negative_positions_before_changing_anything():
    kv = make(policy="reencode")
    view = kv.new_view()
    kv.append(view, [0, 1, 2])
    kv.append(view, [0, 1], label="restart")  # a child-style restart at position 0
    before = snapshot(kv)
    with pytest.raises(ValueError, match="negative"):
        kv.evict(view, 0, 3)
    assert_unchanged(kv, before)
    assert kv.evict(view, 0, 3, policy="keep").num_evicted == 3


def test_explicit_shift(ref):
    kv, fill, view = ten_tokens(ref, "shift")
    assert kv.shift(view, 5, 3) == 5
    assert view.position_ids().tolist() == [0, 1, 2, 3, 4, 8, 9, 10, 11, 12]
    assert kv.peak_position == 12
    fill.assert_view(view)
    assert kv.shift(view, 5, -3) == 5 and kv.shift(view, 10, 4) == 0
    fill.assert_view(view)
    before = snapshot(kv)
    with pytest.raises(ValueError, match="negative"):
        kv.shift(view, 2, -3)
    child = kv.fork(view)
    assert not kv.can_shift(view, 9) and not kv.can_shift(child, 0)
    with pytest.raises(ValueError, match="shared"):
        kv.shift(child, 9, 1)
    kv.append(child, [10])
    assert kv.can_shift(child, 10) and kv.shift(child, 10, 5) == 1
    assert child.position_ids()[-1].item() == 15
    kv.drop(child)
    assert_unchanged(kv, before)


def test_evict_span_and_whole_view(ref):
    kv, fill, view = ten_tokens(ref, "shift")
    prompt, body = view.spans
    assert view.open_span is body
    result = kv.evict_span(view, body)
    assert result.num_evicted == 6 and view.open_span is None
    assert kv.append(view, [4]).numel() == 1 and len(view.spans) == 2
    assert kv.evict(view, 0, len(view)).num_evicted == 5
    assert view.num_tokens == 0 and kv.num_live_tokens == 0
    assert kv.pool.num_free_pages == kv.pool.num_pages
    with pytest.raises(IndexError):
        kv.evict(view, 0, 1)
    assert kv.evict(view, 0, 0).num_evicted == 0
    kv.check_integrity()


# ---------------------------------------------------------------- join / drop
def test_join_moves_children_in_order_and_refuses_busy_children(ref):
    kv = make(page_size=4, policy="keep")
    fill = Filler(kv, ref.rope)
    parent = kv.new_view()
    fill.append(parent, range(5))
    c1, c2 = kv.fork(parent), kv.fork(parent)
    fill.append(c1, range(5, 8), label="c1")
    fill.append(c2, range(5, 7), label="c2")
    grandchild = kv.fork(c2)
    fill.append(grandchild, [7])
    before = snapshot(kv)
    with pytest.raises(TimError, match="held by other live views"):
        kv.join(parent, c2)
    assert_unchanged(kv, before)
    with pytest.raises(ValueError, match="into itself"):
        kv.join(parent, parent)
    kv.join(c2, grandchild)
    assert [s.label for s in c2.spans] == ["", "c2", ""]
    kv.join(parent, c1)
    kv.join(parent, c2)
    assert not c1.is_alive and not c2.is_alive and kv.views == (parent,)
    assert [s.label for s in parent.spans] == ["", "c1", "c2", ""]
    assert parent.position_ids().tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7]
    assert all(s.num_holders == 1 for s in parent.spans)
    fill.assert_view(parent)
    kv.check_integrity()
    assert kv.evict_span(parent, parent.spans[1]).num_evicted == 3  # now exclusive


def test_dropped_views_refuse_operations():
    kv = make(policy="keep")
    view = kv.new_view()
    kv.append(view, [0, 1])
    assert kv.drop(view) == 1
    for call in (
        lambda: kv.append(view, [2]),
        lambda: kv.fork(view),
        lambda: kv.evict(view, 0, 0),
        lambda: kv.drop(view),
        lambda: kv.gather(view, 0),
    ):
        with pytest.raises(ValueError, match="not a live view"):
            call()


def test_append_validates_input():
    kv = make(policy="keep")
    view = kv.new_view()
    with pytest.raises(ValueError, match="-1"):
        kv.append(view, [0, -1])
    with pytest.raises(ValueError, match="2 token_ids for 1 positions"):
        kv.append(view, [0], token_ids=[1, 2])
    with pytest.raises(ValueError, match="integer tensor"):
        kv.append(view, torch.tensor([0.5]))
    assert kv.append(view, []).numel() == 0 and view.spans == ()
    assert kv.append(view, torch.tensor([0, 1])).dtype == torch.int64


# ---------------------------------------------------------------- integrity checker
def test_check_integrity_catches_corruption():
    kv = make(page_size=2, policy="keep")
    view = kv.new_view()
    kv.append(view, range(3))
    child = kv.fork(view)
    report = kv.check_integrity()
    assert (report.num_views, report.num_spans, report.num_live_tokens) == (2, 1, 3)
    span = view.spans[0]

    span.num_holders = 1
    with pytest.raises(CacheIntegrityError, match="counts 1 holders, 2 views hold it"):
        kv.check_integrity()
    span.num_holders = 2

    kv.pool.retain([span.pages[0]])
    with pytest.raises(CacheIntegrityError, match="live spans hold 1"):
        kv.check_integrity()
    kv.pool.release([span.pages[0]])

    kv.num_live_tokens += 1
    with pytest.raises(CacheIntegrityError, match="live tokens"):
        kv.check_integrity()
    kv.num_live_tokens -= 1

    kv.append(child, [3])
    child._spans.reverse()  # an exclusive span before a shared one
    with pytest.raises(CacheIntegrityError, match="exclusive span precedes a shared one"):
        kv.check_integrity()
    child._spans.reverse()
    kv.check_integrity()
