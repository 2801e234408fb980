"""The server's engines: every tree limit a request asks for gets one, all offering the tools
the server was started with."""

from __future__ import annotations

import json
import math

from tim.engine.config import EngineConfig
from tim.models import tiny_model
from tim.serve.app import Server
from tim.serve.config import ServeConfig
from tim.serve.protocol import ChatRequest, plan_request


def hypot(a: float, b: float) -> float:
    """The length of the hypotenuse of a right triangle with legs a and b."""
    return math.hypot(a, b)


def test_every_engine_offers_the_server_tools_and_the_prompt_names_them():
    lm = tiny_model("qwen3", num_layers=1)
    server = Server.build(lm.model, lm.tokenizer, EngineConfig(format="parallel"),
                          ServeConfig(served_model="m", max_depth=2, max_fanout=3),
                          tools=[hypot])
    base, narrow = server.engines.base, server.engines.get(1, 2)
    assert (base.config.max_depth, base.config.max_fanout) == (2, 3)
    assert (narrow.config.max_depth, narrow.config.max_fanout) == (1, 2)
    assert narrow is server.engines.get(1, 2) and server.engines.get(2, 3) is base
    assert [s.name for s in narrow.tools.specs] == server.engines.tool_names == ["hypot"]
    outcome = narrow.tools.call("hypot", {"a": 3, "b": 4})  # run here, in the runtime
    assert outcome.error is None and json.loads(outcome.result_json) == 5.0
    plan = plan_request(ChatRequest(model="m", messages=[{"role": "user", "content": "3, 4?"}]),
                        server.config)
    prompt = lm.tokenizer.decode(server.prompt_ids(plan))
    assert "hypot" in prompt and "hypotenuse" in prompt
