"""Span layout and splitting (metadata only) with page sizes 1 and 4."""

import pytest
import torch

from tim.cache import CacheConfig, KVStore, Span


def test_slot_layout_from_first_offset():
    span = Span(span_id=0, label="x", page_size=4, pages=[7], first_offset=1, token_ids=[])
    slots = span.extend([10, 11, 12, 13, 14], [1, 2, 3, 4, 5], new_pages=[2])
    # page 7 offsets 1..3, then page 2 offsets 0..1
    assert slots.tolist() == [29, 30, 31, 8, 9]
    assert span.slot_ids().tolist() == [29, 30, 31, 8, 9]
    assert span.room == 2 and span.end_offset == 6 and span.max_position == 14
    span.shift(3, -2)
    assert span.position_ids().tolist() == [10, 11, 12, 11, 12]


@pytest.mark.parametrize(
    ("page_size", "index", "left_pages", "right_pages", "right_offset"),
    [
        (4, 3, [7], [2], 0),  # cut at a = 4: page boundary, nothing shared
        (4, 2, [7], [7, 2], 3),  # cut at a = 3: mid-page, page 7 in both halves
        (4, 4, [7, 2], [2], 1),  # mid-page in the second page
        (1, 2, [7, 2], [5, 6, 9], 0),  # page size 1: always a page boundary
    ],
)
def test_split_layout(page_size, index, left_pages, right_pages, right_offset):
    first = 1 if page_size == 4 else 0
    pages = [7, 2] if page_size == 4 else [7, 2, 5, 6, 9]
    span = Span(
        span_id=0, label="x", page_size=page_size, pages=[], first_offset=first, token_ids=[]
    )
    span.extend(list(range(5)), list(range(100, 105)), new_pages=pages)
    span.num_holders = 2
    before = span.slot_ids().tolist()
    right = span.split(index, right_id=1)
    assert span.pages == left_pages and right.pages == right_pages
    assert right.first_offset == right_offset and span.first_offset == first
    assert span.slot_ids().tolist() + right.slot_ids().tolist() == before
    assert span.positions == list(range(index)) and right.positions == list(range(index, 5))
    assert span.token_ids + right.token_ids == list(range(100, 105))
    assert right.num_holders == 2 and right.label == "x"


def store(page_size, num_pages=16):
    return KVStore(
        CacheConfig(
            num_layers=1,
            num_kv_heads=1,
            head_dim=4,
            num_pages=num_pages,
            page_size=page_size,
            position_policy="keep",
        )
    )


@pytest.mark.parametrize("page_size", [1, 4])
@pytest.mark.parametrize("index", [1, 3, 4, 5, 7])
def test_store_split_then_evict_either_half(page_size, index):
    for evict_left in (True, False):
        kv = store(page_size)
        view = kv.new_view()
        kv.append(view, range(8))
        slots = view.slot_mapping().tolist()
        pages_before = kv.pool.num_used_pages
        assert kv.split_at(view, index) == 1
        left, right = view.spans
        mid_page = index % page_size != 0
        assert (left.pages[-1] == right.pages[0]) == mid_page
        assert kv.pool.ref_count(right.pages[0]) == (2 if mid_page else 1)
        assert kv.pool.num_used_pages == pages_before  # metadata only
        assert view.slot_mapping().tolist() == slots
        kv.check_integrity()
        result = kv.evict(view, 0, index) if evict_left else kv.evict(view, index, 8)
        kept = slots[index:] if evict_left else slots[:index]
        assert view.slot_mapping().tolist() == kept
        # the boundary page survives while the kept half still references it
        expected_pages = len({s // page_size for s in kept})
        assert kv.pool.num_used_pages == expected_pages
        assert result.num_freed_pages == pages_before - expected_pages
        kv.check_integrity()


def test_split_at_existing_boundary_and_ends_is_a_no_op():
    kv = store(4)
    view = kv.new_view()
    kv.append(view, range(3), label="a")
    kv.append(view, range(3, 5), label="b")
    assert [len(s) for s in view.spans] == [3, 2]
    assert kv.split_at(view, 0) == 0
    assert kv.split_at(view, 3) == 1
    assert kv.split_at(view, 5) == 2
    assert len(view.spans) == 2
    with pytest.raises(IndexError):
        kv.split_at(view, 6)


def test_split_of_shared_span_updates_every_holder_and_keeps_open_span_last():
    kv = store(4)
    parent = kv.new_view()
    kv.append(parent, range(6))
    child = kv.fork(parent)
    kv.split_at(child, 2)
    assert parent.spans == child.spans and len(parent.spans) == 2
    assert all(s.num_holders == 2 for s in parent.spans)
    kv.check_integrity()
    solo = kv.new_view()
    kv.append(solo, range(6))
    kv.split_at(solo, 5)
    assert solo.open_span is solo.spans[-1] and len(solo.open_span) == 1
    slots = kv.append(solo, [6])  # continues the right half, in the same page
    assert slots.tolist() == [solo.spans[-1].slot_ids()[0].item() + 1]
    kv.check_integrity()


def test_slot_ids_are_int64():
    kv = store(1)
    view = kv.new_view()
    kv.append(view, [0, 1])
    assert view.spans[0].slot_ids().dtype == torch.int64
