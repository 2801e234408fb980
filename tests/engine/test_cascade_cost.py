"""The cascade cost model: the rule, its validation, and where the engine takes it from."""

from __future__ import annotations

import pytest
import torch

from tim.engine.cascade_cost import CascadeCost, measure_cascade_cost
from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.models import tiny_model


def test_a_group_cascades_once_the_keys_it_saves_reach_the_threshold():
    cost = CascadeCost(min_saved=100)
    assert not cost.pays(members=1, prefix_len=10_000)  # nothing to share
    assert not cost.pays(members=2, prefix_len=99)
    assert cost.pays(members=2, prefix_len=100)  # (2 - 1) x 100 keys read once, not twice
    assert cost.pays(members=5, prefix_len=25) and not cost.pays(members=5, prefix_len=24)
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="min_saved"):
            CascadeCost(min_saved=bad)
    with pytest.raises(ValueError, match="cascade_min_saved"):
        EngineConfig(cascade_min_saved=0)


def test_the_measurement_is_a_valid_rule_made_once_per_shape():
    measure_cascade_cost.cache_clear()
    cost = measure_cascade_cost(4, 2, 16, dtype=torch.float32)
    assert isinstance(cost, CascadeCost) and cost.min_saved >= 1
    assert measure_cascade_cost(4, 2, 16, dtype=torch.float32) is cost
    assert measure_cascade_cost.cache_info().misses == 1


def test_the_engine_takes_the_config_value_or_the_measurement_or_none():
    loaded = tiny_model("qwen3")
    engine = Engine(loaded.model, loaded.tokenizer,
                    EngineConfig(structure="free", cascade_min_saved=7))
    assert engine.cascade_cost() == CascadeCost(7)
    engine = Engine(loaded.model, loaded.tokenizer, EngineConfig(structure="free"))
    spec = engine.spec
    assert engine.cascade_cost() is measure_cascade_cost(
        spec.num_heads, spec.num_kv_heads, spec.head_dim, dtype=spec.dtype,
        device=str(spec.device), backend="auto")
    engine = Engine(loaded.model, loaded.tokenizer, EngineConfig(structure="free", cascade=False))
    assert engine.cascade_cost() is None and engine.new_executor().support.cascade is False
    windowed = tiny_model("mistral", sliding_window=16)
    engine = Engine(windowed.model, windowed.tokenizer,
                    EngineConfig(structure="free", format="thread2", max_workers=1))
    assert engine.cascade_cost() is None  # a window cuts the prefix differently per query
