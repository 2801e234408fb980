"""``tim.Runtime(model="openai:URL")``: the public entry point of the remote executor."""

from __future__ import annotations

import pytest

import tim
from tests.remote.fake_server import FakeServer
from tim.stress.model import stress_model


@pytest.fixture(scope="module")
def tiny():
    return stress_model(seed=1, num_layers=1)


def test_a_served_model_reasons_as_the_local_one(tiny):
    # the instructions prompt (1,321 tokens) is longer than the stress model's 512 window,
    # at which the local engine would stop; a remote one has no window unless given
    opts = dict(format="parallel", max_workers=1, pruning="buffer:0", max_depth=2,
                max_fanout=2, max_string_chars=8, max_position=4096)
    local = tim.Runtime(model=(tiny.model, tiny.tokenizer), positions="reencode", **opts)
    want = local.reason("2 + 2?", max_new_tokens=120, temperature=0)
    with FakeServer(tiny.model) as server:
        remote = tim.Runtime(model=f"openai:{server.url}", served_model="tiny",
                             tokenizer=tiny.tokenizer, **opts)
        assert remote.config.positions == "reencode"  # the only policy a server supports
        got = remote.reason("2 + 2?", max_new_tokens=120, temperature=0)
        assert server.bodies  # the tokens came from the server
    assert got.error == want.error
    assert got.record.streams.keys() == want.record.streams.keys()
    for path, stream in want.record.streams.items():
        assert got.record.streams[path].token_ids == stream.token_ids, path


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "openai:http://127.0.0.1:9/v1"}, "needs served_model="),
    ({"model": "smollm2-135m", "served_model": "x"}, "go with model='openai:URL'"),
])
def test_bad_remote_arguments_say_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tim.Runtime(**kwargs)
