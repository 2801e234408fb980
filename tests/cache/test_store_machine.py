"""Random fork / append / evict / shift / split / join / drop against a naive dense model.

The naive model keeps, per live view, a plain list of token records (pre-RoPE K, V and the
current position). Forked views share the record objects, so "held by more than one live
view" is decided from the records alone. After every step the store's gathered keys must
equal the reference RoPE of the pre-RoPE keys at the naive positions, values must be
bit-equal, and ``check_integrity()`` must hold.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tim.cache import CacheConfig, KVStore, PositionPolicy, num_pages_for_tokens
from tim.errors import KVBudgetError, TimError

NUM_LAYERS, NUM_KV_HEADS, HEAD_DIM = 2, 2, 8
INV_FREQ = 1.0 / (10000.0 ** (torch.arange(0, 6, 2, dtype=torch.float64) / 6))  # 6 of 8 dims


class Token:
    """One token of the naive model; shared between views by identity."""

    def __init__(self, k_pre: torch.Tensor, v: torch.Tensor, position: int, slot: int):
        self.k_pre = k_pre  # (L, Hkv, D) float64
        self.v = v  # (L, Hkv, D) float32
        self.position = position
        self.slot = slot


class StoreMachine(RuleBasedStateMachine):
    page_size = 1
    num_pages = 32
    max_live_tokens = 40
    rope = None  # set by the test

    def __init__(self) -> None:
        super().__init__()
        config = CacheConfig(
            num_layers=NUM_LAYERS,
            num_kv_heads=NUM_KV_HEADS,
            head_dim=HEAD_DIM,
            num_pages=self.num_pages,
            page_size=self.page_size,
            max_live_tokens=self.max_live_tokens,
            position_policy="shift",
        )
        self.store = KVStore(config, rope_inv_freq=INV_FREQ.float())
        self.naive: dict[int, list[Token]] = {}
        self.handles = {}

    # ------------------------------------------------------------ naive helpers
    def pick(self, data, label: str = "view"):
        return data.draw(st.sampled_from(self.store.views), label=label)

    def holders(self, token: Token) -> int:
        return sum(any(t is token for t in tokens) for tokens in self.naive.values())

    def live_tokens(self) -> set[int]:
        return {id(t) for tokens in self.naive.values() for t in tokens}

    def next_position(self, view_id: int) -> int:
        tokens = self.naive[view_id]
        return max(t.position for t in tokens) + 1 if tokens else 0

    def common_prefix(self, a: list[Token], b: list[Token]) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] is b[n]:
            n += 1
        return n

    # ------------------------------------------------------------ rules
    @initialize(num=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
    def prompt(self, num, seed):
        view = self.store.new_view()
        self.naive[view.view_id] = []
        self.append_to(view, num, "prompt", seed)

    @precondition(lambda self: len(self.naive) < 2)
    @rule()
    def new_view(self):
        view = self.store.new_view()
        self.naive[view.view_id] = []

    @precondition(lambda self: self.naive)
    @rule(
        data=st.data(),
        num=st.integers(1, 6),
        label=st.sampled_from([None, "a", "b"]),
        seed=st.integers(0, 2**31 - 1),
    )
    def append(self, data, num, label, seed):
        self.append_to(self.pick(data), num, label, seed)

    def append_to(self, view, num, label, seed):
        tokens = self.naive[view.view_id]
        start = self.next_position(view.view_id)
        assert view.next_position == start
        positions = list(range(start, start + num))
        over_tokens = len(self.live_tokens()) + num > self.max_live_tokens
        can = self.store.can_append(view, num, label=label)
        if over_tokens:
            assert not can
        elif self.store.pool.num_free_pages >= num_pages_for_tokens(num, self.page_size):
            assert can, "enough free pages for fresh pages, yet refused"
        if not can:
            free_before = self.store.pool.num_free_pages
            with pytest.raises(KVBudgetError, match="budget|exhausted"):
                self.store.append(view, positions, label=label)
            assert self.store.pool.num_free_pages == free_before
            return
        slots = self.store.append(view, positions, label=label, token_ids=positions)
        gen = torch.Generator().manual_seed(seed)
        k_pre = torch.randn(NUM_LAYERS, num, NUM_KV_HEADS, HEAD_DIM, generator=gen).double()
        v = torch.randn(NUM_LAYERS, num, NUM_KV_HEADS, HEAD_DIM, generator=gen)
        pos = torch.tensor(positions)
        for layer in range(NUM_LAYERS):
            self.store.write(layer, slots, self.rope(k_pre[layer], pos, INV_FREQ).float(), v[layer])
        for i in range(num):
            tokens.append(Token(k_pre[:, i], v[:, i], positions[i], int(slots[i])))

    @precondition(lambda self: 0 < len(self.naive) < 6)
    @rule(data=st.data())
    def fork(self, data):
        view = self.pick(data)
        child = self.store.fork(view)
        self.naive[child.view_id] = list(self.naive[view.view_id])

    @precondition(lambda self: self.naive)
    @rule(data=st.data(), policy=st.sampled_from(list(PositionPolicy)))
    def evict(self, data, policy):
        view = self.pick(data)
        tokens = self.naive[view.view_id]
        start = data.draw(st.integers(0, len(tokens)), label="start")
        end = data.draw(st.integers(min(start + 1, len(tokens)), len(tokens)), label="end")
        num = end - start
        shared = any(self.holders(t) > 1 for t in tokens[start:end])
        assert self.store.can_evict(view, start, end) == (not shared)
        tail = tokens[end:]
        if (
            not shared
            and num
            and policy is not PositionPolicy.KEEP
            and tail
            and min(t.position for t in tail) - num < 0
        ):
            with pytest.raises(ValueError, match="negative"):
                self.store.evict(view, start, end, policy=policy)
            return
        free_before = self.store.pool.num_free_pages
        result = self.store.evict(view, start, end, policy=policy)
        assert result.deferred == shared
        if shared:
            assert result.num_evicted == 0
            assert self.store.pool.num_free_pages == free_before
            return
        assert result.num_evicted == num
        assert self.store.pool.num_free_pages == free_before + result.num_freed_pages
        del tokens[start:end]
        if policy is PositionPolicy.KEEP or num == 0:
            assert result.reencode is None
            return
        assert all(self.holders(t) == 1 for t in tail), "a shared token after an evicted range"
        for t in tail:
            t.position -= num
        assert result.num_moved == len(tail)
        if policy is PositionPolicy.REENCODE:
            if not tail:
                assert result.reencode is None
                return
            re = result.reencode
            assert re.start == start
            assert re.slots.tolist() == [t.slot for t in tail]
            assert re.positions.tolist() == [t.position for t in tail]
            assert re.token_ids is not None and re.token_ids.numel() == len(tail)
            # The engine recomputes the tail at its new positions: do it with the reference.
            k_pre = torch.stack([t.k_pre for t in tail], dim=1)  # (L, N, Hkv, D)
            v = torch.stack([t.v for t in tail], dim=1)
            for layer in range(NUM_LAYERS):
                k = self.rope(k_pre[layer], re.positions, INV_FREQ).float()
                self.store.write(layer, re.slots, k, v[layer])

    @precondition(lambda self: self.naive)
    @rule(data=st.data(), delta=st.integers(-4, 4))
    def shift(self, data, delta):
        view = self.pick(data)
        tokens = self.naive[view.view_id]
        start = data.draw(st.integers(0, len(tokens)), label="start")
        tail = tokens[start:]
        exclusive = all(self.holders(t) == 1 for t in tail)
        assert self.store.can_shift(view, start) == exclusive
        if not exclusive or (tail and min(t.position for t in tail) + delta < 0):
            with pytest.raises(ValueError):
                self.store.shift(view, start, delta)
            return
        assert self.store.shift(view, start, delta) == (len(tail) if delta else 0)
        for t in tail:
            t.position += delta

    @precondition(lambda self: self.naive)
    @rule(data=st.data())
    def split(self, data):
        view = self.pick(data)
        index = data.draw(st.integers(0, len(self.naive[view.view_id])), label="index")
        span_index = self.store.split_at(view, index)
        assert sum(len(s) for s in view.spans[:span_index]) == index

    @precondition(lambda self: len(self.naive) > 1)
    @rule(data=st.data())
    def join(self, data):
        parent = self.pick(data, "parent")
        child = data.draw(st.sampled_from([v for v in self.store.views if v is not parent]))
        mine, theirs = self.naive[parent.view_id], self.naive[child.view_id]
        own = theirs[self.common_prefix(theirs, mine) :]
        if any(self.holders(t) > 1 for t in own):
            with pytest.raises(TimError, match="held by other live views"):
                self.store.join(parent, child)
            return
        self.store.join(parent, child)
        mine.extend(own)
        del self.naive[child.view_id]
        assert not child.is_alive

    @precondition(lambda self: self.naive)
    @rule(data=st.data())
    def drop(self, data):
        view = self.pick(data)
        self.store.drop(view)
        del self.naive[view.view_id]

    # ------------------------------------------------------------ invariants
    @invariant()
    def integrity(self):
        report = self.store.check_integrity()
        assert report.num_views == len(self.naive)
        assert report.num_live_tokens == len(self.live_tokens())
        assert self.store.num_live_tokens <= self.store.peak_live_tokens <= self.max_live_tokens

    @invariant()
    def views_match_naive(self):
        for view in self.store.views:
            tokens = self.naive[view.view_id]
            assert view.num_tokens == len(tokens)
            assert view.slot_mapping().tolist() == [t.slot for t in tokens]
            assert view.position_ids().tolist() == [t.position for t in tokens]
            assert view.max_position == max((t.position for t in tokens), default=None)
            if not tokens:
                continue
            pos = torch.tensor([t.position for t in tokens])
            for layer in range(NUM_LAYERS):
                k, v = self.store.gather(view, layer)
                k_pre = torch.stack([t.k_pre[layer] for t in tokens])
                expected = self.rope(k_pre, pos, INV_FREQ)
                torch.testing.assert_close(k.double(), expected, atol=1e-5, rtol=1e-5)
                assert torch.equal(v, torch.stack([t.v[layer] for t in tokens]))

    def teardown(self):
        for view in self.store.views:
            self.store.drop(view)
        self.store.check_integrity()
        assert self.store.pool.num_free_pages == self.store.pool.num_pages
        assert self.store.num_live_tokens == 0


@pytest.mark.parametrize(
    ("page_size", "num_pages"),
    [(1, 32), (4, 12), (3, 9)],
)
def test_store_against_naive_model(ref, page_size, num_pages):
    machine = type(
        f"StoreMachinePage{page_size}",
        (StoreMachine,),
        {"page_size": page_size, "num_pages": num_pages, "rope": staticmethod(ref.rope)},
    )
    run_state_machine_as_test(
        machine,
        settings=settings(max_examples=25, stateful_step_count=35, deadline=None),
    )
