"""tim/eval/configs.py: specs round-trip, bad values are refused by name."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tim.eval.configs import EvalConfig, parse_config, parse_configs

tim_configs = st.builds(EvalConfig, method=st.sampled_from(("thread2", "parallel")),
                        pruning=st.one_of(st.sampled_from(("none", "buffer:inf")),
                                          st.builds("buffer:{}{}".format, st.integers(0, 9),
                                                    st.sampled_from(("", "@conclusion")))),
                        positions=st.sampled_from(("shift", "reencode", "keep")),
                        tools=st.booleans())
biased_configs = st.builds(EvalConfig, method=st.sampled_from(("thread2", "parallel")),
                           tools=st.just(True),
                           tool_bias=st.one_of(st.integers(-20, 20).map(float),
                                               st.sampled_from((0.5, 2.5, -1.25))))
shared_configs = st.builds(EvalConfig, method=st.just("parallel"),
                           pruning=st.sampled_from(("none", "buffer:1")),
                           siblings=st.sampled_from(("isolated", "shared", "shared-noprompt")),
                           tools=st.booleans())


@given(shared_configs)
def test_sibling_modes_round_trip(config):
    assert parse_config(config.name) == config


@given(biased_configs)
def test_tool_biases_round_trip(config):
    assert parse_config(config.name) == config


@given(tim_configs)
def test_name_round_trips(config):
    assert parse_config(config.name) == config
    assert config.pruning in config.name.split("/")  # '@' passes through the '/' split


def test_pruning_is_refused_by_value():
    with pytest.raises(ValueError, match="got 'buffer:2@join'"):
        EvalConfig("thread2", pruning="buffer:2@join")


@pytest.mark.parametrize(("spec", "message"), [
    ("gpt", "method must be one of"), ("thread2/buffer:-1", "'buffer:-1'"),
    ("thread2/buffer:1@close", "'buffer:1@close' is not a pruning rule"),
    ("parallel/buffer:1@conclusion/buffer:1", "names its pruning twice"),
    ("thread2/none/buffer:1", "names its pruning twice"), ("cot/none", "cot takes no options"),
    ("thread2/shared", "only parallel siblings run concurrently"),
    ("parallel/shared/shared-noprompt", "names its siblings twice"),
    ("parallel/bias:4", "a tool bias needs tools offered"), ("parallel/tools/bias:x", "'bias:x'"),
])
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_config(spec)


def test_configs_are_frozen_and_unique():
    config = EvalConfig("parallel")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.tools = True  # type: ignore[misc]
    with pytest.raises(ValueError, match="named twice"):
        parse_configs("parallel,parallel/buffer:1")
    with pytest.raises(ValueError, match="no configuration"):
        parse_configs(" , ")
