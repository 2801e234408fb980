import pytest
import torch

from tim.cache import CacheConfig, KVStore, TokenLocation


@pytest.fixture
def kv():
    return KVStore(
        CacheConfig(
            num_layers=1,
            num_kv_heads=1,
            head_dim=4,
            num_pages=32,
            page_size=4,
            position_policy="keep",
        )
    )


def test_view_metadata(kv):
    view = kv.new_view()
    assert view.num_tokens == 0 and view.max_position is None and view.next_position == 0
    assert view.slot_mapping().shape == (0,) and view.slot_mapping().dtype == torch.int64
    kv.append(view, [0, 1, 2], token_ids=[5, 6, 7], label="prompt")
    kv.append(view, [3, 4], token_ids=[8, 9], label="tool")
    kv.append(view, [9], token_ids=[1])  # continues the open "tool" span
    assert [s.label for s in view.spans] == ["prompt", "tool"]
    assert len(view) == 6
    assert view.position_ids().tolist() == [0, 1, 2, 3, 4, 9]
    assert view.token_ids().tolist() == [5, 6, 7, 8, 9, 1]
    assert view.max_position == 9 and view.next_position == 10
    assert view.locate(0) == TokenLocation(0, 0)
    assert view.locate(4) == TokenLocation(1, 1)
    assert view.span_start(view.spans[1]) == 3
    with pytest.raises(IndexError):
        view.locate(6)
    with pytest.raises(IndexError):
        view.locate(-1)
    other = kv.new_view()
    with pytest.raises(ValueError, match="not in view"):
        other.span_start(view.spans[0])


def test_token_ids_unknown_when_an_append_lacks_them(kv):
    view = kv.new_view()
    kv.append(view, [0, 1], token_ids=[3, 4])
    kv.append(view, [2])
    assert view.token_ids() is None


def test_common_prefix(kv):
    parent = kv.new_view()
    kv.append(parent, range(5), label="prompt")
    kv.append(parent, range(5, 7), label="plan")
    a, b = kv.fork(parent), kv.fork(parent)
    kv.append(a, [7, 8])
    kv.append(b, [7])
    assert a.common_prefix_spans(b) == 2 and a.common_prefix_len(b) == 7
    assert a.common_prefix_len(parent) == 7 and parent.common_prefix_len(parent) == 7
    assert a.common_prefix_len(kv.new_view()) == 0
    assert "alive" in repr(a)
