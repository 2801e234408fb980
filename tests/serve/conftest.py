"""A tim serve app on 127.0.0.1 (an ephemeral port), run by uvicorn in a thread, for the tests
that drive it with the official openai client and with raw HTTP."""

from __future__ import annotations

import socket
import threading
import time
from typing import NamedTuple

import pytest

from tim.engine.config import EngineConfig
from tim.models import tiny_model
from tim.serve.app import Server, create_app
from tim.serve.config import ServeConfig

API_KEY = "test-key-7f3a"
START_S = 60  # a bound on waiting for uvicorn to start, never a measured threshold

# The tiny model's trees finish in a few hundred tokens when strings are short.
ENGINE_CONFIG = EngineConfig(format="parallel", max_string_chars=4, kv_budget_tokens=131072)
SERVE_CONFIG = ServeConfig(served_model="tiny-qwen3", api_key=API_KEY, max_body_bytes=20_000,
                           max_tokens=2000, default_max_tokens=2000, max_prompt_tokens=4096,
                           max_depth=1, max_fanout=2, request_timeout_s=300.0,
                           max_running=16, max_queued=32, temperature=1.0)


class Served(NamedTuple):
    base_url: str  # ends in /v1
    server: Server
    model: object
    tokenizer: object


@pytest.fixture(scope="session")
def served():
    import uvicorn

    lm = tiny_model("qwen3")
    server = Server.build(lm.model, lm.tokenizer, ENGINE_CONFIG, SERVE_CONFIG)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(create_app(server), log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_S
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    host, port = sock.getsockname()
    yield Served(f"http://{host}:{port}/v1", server, lm.model, lm.tokenizer)
    uv.should_exit = True
    thread.join(START_S)
    sock.close()


@pytest.fixture
def client(served):
    import openai

    return openai.OpenAI(base_url=served.base_url, api_key=API_KEY, max_retries=0, timeout=300)
