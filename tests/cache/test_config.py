import dataclasses

import pytest
import torch

from tim.cache import CacheConfig, PositionPolicy, num_pages_for_tokens

BASE = dict(num_layers=2, num_kv_heads=2, head_dim=8, num_pages=16)


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("shift", PositionPolicy.SHIFT),
        ("REENCODE", PositionPolicy.REENCODE),
        (" keep", PositionPolicy.KEEP),
    ],
)
def test_policy_parse(text, policy):
    assert PositionPolicy.parse(text) is policy
    assert PositionPolicy.parse(policy) is policy


@pytest.mark.parametrize("bad", ["sideways", "", 3, None])
def test_policy_parse_quotes_bad_value(bad):
    with pytest.raises(ValueError, match="must be one of") as info:
        PositionPolicy.parse(bad)
    assert repr(bad) in str(info.value)


def test_config_normalises_policy_and_is_frozen():
    cfg = CacheConfig(**BASE, position_policy="reencode", page_size=4)
    assert cfg.position_policy is PositionPolicy.REENCODE
    assert cfg.num_slots == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.page_size = 8


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("num_layers", 0),
        ("num_kv_heads", -1),
        ("head_dim", 2.5),
        ("num_pages", True),
        ("page_size", 0),
        ("max_live_tokens", 0),
        ("position_policy", "sideways"),
        ("dtype", torch.int64),
        ("dtype", "float32"),
        ("device", "toaster"),
    ],
)
def test_config_rejects_bad_values_quoting_them(field, bad):
    with pytest.raises(ValueError) as info:
        CacheConfig(**{**BASE, field: bad})
    assert repr(bad) in str(info.value)


def test_num_pages_for_tokens():
    assert [num_pages_for_tokens(n, 4) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]
    assert num_pages_for_tokens(7, 1) == 7
