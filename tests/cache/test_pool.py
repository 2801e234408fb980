import pytest
import torch
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tim.cache import CacheConfig, CacheIntegrityError, PagePool
from tim.errors import KVBudgetError


def make_pool(num_pages=6, page_size=2):
    return PagePool(
        CacheConfig(
            num_layers=3, num_kv_heads=2, head_dim=4, num_pages=num_pages, page_size=page_size
        )
    )


def test_tensors_shape_and_layer_views():
    pool = make_pool()
    assert pool.k_cache.shape == (3, 6, 2, 2, 4)
    k, v = pool.layer(1)
    assert k.shape == (6, 2, 2, 4) and k.is_contiguous()
    pool.k_cache[0].fill_(3.0)  # the pool is allocated empty; mark layer 0 to see it untouched
    k[0, 1] = 7.0
    assert pool.k_cache[1, 0, 1].eq(7.0).all() and pool.k_cache[0].eq(3.0).all()
    assert v.data_ptr() == pool.v_cache[1].data_ptr()


def test_allocate_retain_release_cycle():
    pool = make_pool(num_pages=4)
    a = pool.allocate(3)
    assert len(set(a)) == 3 and pool.num_free_pages == 1 and pool.num_used_pages == 3
    assert all(pool.ref_count(p) == 1 for p in a)
    pool.retain(a[:2])
    assert [pool.ref_count(p) for p in a] == [2, 2, 1]
    assert pool.release(a) == 1  # only the unshared page is freed
    assert pool.num_free_pages == 2
    assert pool.release(a[:2]) == 2
    assert pool.num_free_pages == 4
    assert pool.check_integrity().num_free_pages == 4
    assert pool.allocate(0) == [] and pool.can_allocate(0)


def test_exhaustion_raises_clear_error_and_leaves_pool_intact():
    pool = make_pool(num_pages=4)
    held = pool.allocate(3)
    assert not pool.can_allocate(2)
    with pytest.raises(KVBudgetError) as info:
        pool.allocate(2)
    message = str(info.value)
    assert "asked for 2 page(s)" in message and "1 of 4 free" in message
    assert "raise num_pages" in message
    assert pool.num_free_pages == 1
    pool.check_integrity({p: 1 for p in held})
    with pytest.raises(ValueError, match="-1"):
        pool.allocate(-1)


def test_release_or_retain_of_free_page_changes_nothing():
    pool = make_pool(num_pages=3)
    (page,) = pool.allocate(1)
    free_page = next(p for p in range(3) if p != page)
    with pytest.raises(CacheIntegrityError, match=f"release of free page {free_page}"):
        pool.release([page, free_page])
    assert pool.ref_count(page) == 1  # the valid page was not released either
    with pytest.raises(CacheIntegrityError, match="retain of free page"):
        pool.retain([page, free_page])
    assert pool.ref_count(page) == 1
    pool.check_integrity({page: 1})


def test_integrity_detects_leak_and_early_free():
    pool = make_pool(num_pages=3)
    a, b = pool.allocate(2)
    pool.check_integrity({a: 1, b: 1})
    with pytest.raises(CacheIntegrityError, match=f"page {b} has ref count 1, live spans hold 0"):
        pool.check_integrity({a: 1})  # leak: b is held by nobody
    with pytest.raises(CacheIntegrityError, match=f"page {a} has ref count 1, live spans hold 2"):
        pool.check_integrity({a: 2, b: 1})  # a would be freed while still referenced
    pool._free.append(a)  # corrupt: a both free and referenced
    with pytest.raises(CacheIntegrityError, match=f"page {a} has ref count 1 but is free"):
        pool.check_integrity()


class PoolMachine(RuleBasedStateMachine):
    """Ref counts against a plain dict; pages never handed out twice."""

    def __init__(self):
        super().__init__()
        self.pool = make_pool(num_pages=8, page_size=1)
        self.refs: dict[int, int] = {}

    @rule(num=st.integers(0, 4))
    def allocate(self, num):
        if num > 8 - len(self.refs):
            assert not self.pool.can_allocate(num)
            with pytest.raises(KVBudgetError):
                self.pool.allocate(num)
            return
        pages = self.pool.allocate(num)
        assert not set(pages) & set(self.refs), "a referenced page was handed out again"
        self.refs.update({p: 1 for p in pages})

    @precondition(lambda self: self.refs)
    @rule(data=st.data())
    def retain(self, data):
        page = data.draw(st.sampled_from(sorted(self.refs)))
        self.pool.retain([page])
        self.refs[page] += 1

    @precondition(lambda self: self.refs)
    @rule(data=st.data())
    def release(self, data):
        page = data.draw(st.sampled_from(sorted(self.refs)))
        freed = self.pool.release([page])
        self.refs[page] -= 1
        assert freed == (self.refs[page] == 0)
        if not self.refs[page]:
            del self.refs[page]

    @invariant()
    def consistent(self):
        report = self.pool.check_integrity(self.refs)
        assert report.num_free_pages == 8 - len(self.refs)
        assert report.num_references == sum(self.refs.values())


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)


def test_pool_dtype_and_device_follow_config():
    pool = PagePool(
        CacheConfig(num_layers=1, num_kv_heads=1, head_dim=2, num_pages=1, dtype=torch.float64)
    )
    assert pool.k_cache.dtype == torch.float64 and pool.v_cache.device.type == "cpu"
