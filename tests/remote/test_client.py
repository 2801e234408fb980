"""tim.remote.client: retries with backoff, clear errors naming the server, abort."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.remote.fake_server import FakeServer
from tim.models import tiny_model
from tim.remote.client import CompletionsClient, RemoteCancelled, RemoteError

BODY = {"model": "tiny", "prompt": [1, 2, 3], "max_tokens": 2, "temperature": 0,
        "return_token_ids": True, "logprobs": 0}


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", num_layers=1).model


@pytest.fixture
def server(model):
    with FakeServer(model) as server:
        yield server


def client_of(server: FakeServer, **kw) -> CompletionsClient:
    return CompletionsClient(server.url, **{"timeout_s": 10.0, "backoff_s": 0.01, **kw})


def test_an_answer_comes_back(server):
    answer = client_of(server).post("/completions", BODY, what="test completion")
    assert len(answer["choices"][0]["token_ids"]) == 2


@pytest.mark.parametrize("status", [503, 502, 429])
def test_transient_statuses_are_retried(server, status):
    server.faults.extend([("status", status), ("status", status)])
    client = client_of(server, retries=2)
    answer = client.post("/completions", BODY, what="test completion")
    assert answer["choices"][0]["token_ids"]
    assert client.num_retries == 2 and len(server.bodies) == 3


def test_a_dropped_connection_is_retried(server):
    server.faults.append(("close",))
    client = client_of(server, retries=1)
    assert client.post("/completions", BODY, what="test completion")["choices"]
    assert client.num_retries == 1


@pytest.mark.parametrize("status", [400, 404, 500])
def test_errors_name_the_server_the_request_and_the_message(server, status):
    server.faults.append(("status", status))
    client = client_of(server, retries=3)
    with pytest.raises(RemoteError) as err:
        client.post("/completions", BODY, what="completion of stream [0]")
    message = str(err.value)
    assert server.url in message and f"answered {status}" in message
    assert "completion of stream [0]" in message and f"injected {status}" in message
    assert len(server.bodies) == 1  # not retried


def test_retries_run_out_with_a_clear_error(server):
    server.faults.extend([("status", 503)] * 3)
    with pytest.raises(RemoteError, match="answered 503"):
        client_of(server, retries=2).post("/completions", BODY, what="test completion")
    assert len(server.bodies) == 3


def test_a_server_that_is_down(server):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = CompletionsClient(f"http://127.0.0.1:{port}/v1", retries=2, backoff_s=0.01)
    with pytest.raises(RemoteError, match=rf"cannot reach http://127.0.0.1:{port}/v1/completions"
                                          r" for the test completion after 3 tries"):
        client.post("/completions", BODY, what="test completion")


def test_a_timeout_is_an_error_not_a_hang(server):
    server.faults.append(("delay", 2.0))
    client = client_of(server, timeout_s=0.3)
    with pytest.raises(RemoteError, match=r"did not answer the test completion within 0.3 s"):
        client.post("/completions", BODY, what="test completion")


def test_abort_ends_a_request_in_flight_and_refuses_later_ones(server):
    server.faults.append(("delay", 5.0))
    client = client_of(server, timeout_s=30.0)
    errors = []

    def call():
        try:
            client.post("/completions", BODY, what="test completion")
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.3)  # the request is in flight
    client.abort()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert 5.0 not in server.delays_ended  # it returned before the server's delay ran out
    assert len(errors) == 1 and isinstance(errors[0], RemoteCancelled)
    with pytest.raises(RemoteCancelled):
        client.post("/completions", BODY, what="test completion")


@pytest.mark.parametrize("url", ["127.0.0.1:8000/v1", "https://x/v1", "http:///v1"])
def test_bad_urls_are_refused(url):
    with pytest.raises(ValueError, match="base_url must look like"):
        CompletionsClient(url)
