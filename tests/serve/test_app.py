"""tim serve driven by the official openai client (and raw HTTP) on loopback: the answer is
the run Runtime.reason makes, streaming, 16 concurrent clients, the API key, the limits,
clients that leave mid-run. Every page comes back."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace

import httpx
import openai
import pytest

import tim
from tests.serve.conftest import API_KEY, ENGINE_CONFIG, SERVE_CONFIG
from tim.serve.batcher import Ending
from tim.serve.responses import TIM_EVENT

MODEL = SERVE_CONFIG.served_model
WAIT_S = 120  # a bound on waiting for the server, never a measured threshold
AUTH = {"authorization": f"Bearer {API_KEY}"}
TIMING = ("wall_time_s", "tokens_per_s")


def ask(question):
    return [{"role": "user", "content": question}]


def all_pages_back(served):
    batcher = served.server.batcher
    assert batcher.wait_idle(WAIT_S)
    batcher.executor.store.check_integrity()
    use = batcher.pages()
    return use.num_views == 0 and use.num_free == use.num_pages


@pytest.fixture(scope="module")
def expected(served):
    """Runtime.reason in this process, with the server's configuration and seed 11."""
    cfg = ENGINE_CONFIG
    rt = tim.Runtime(model=(served.model, served.tokenizer), format=cfg.format,
                     max_depth=SERVE_CONFIG.max_depth, max_fanout=SERVE_CONFIG.max_fanout,
                     max_string_chars=cfg.max_string_chars,
                     kv_budget_tokens=cfg.kv_budget_tokens, seed=11)
    result = rt.reason("What is 2 + 3?", max_new_tokens=2000, temperature=1.0, top_p=0.95)
    assert result.answer is not None  # seed 11 makes a whole tree, so the tree is compared too
    return result


def widest(tasks):
    """The longest task list in a tree's JSON."""
    return max([len(tasks), *(widest(t["subtasks"]) for t in tasks if t.get("subtasks"))])


def without_timing(stats):
    return {k: v for k, v in stats.items() if k not in TIMING}


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list()] == [MODEL]


def test_a_chat_completion_is_the_run_runtime_reason_makes(client, expected):
    reply = client.chat.completions.create(model=MODEL, messages=ask("What is 2 + 3?"),
                                           seed=11, max_tokens=2000, top_p=0.95)
    ext = reply.model_extra["tim"]
    assert reply.choices[0].message.content == expected.answer == ext["answer"]
    assert reply.choices[0].finish_reason == "stop" and ext["error"] is None
    assert ext["tree"] == expected.tree.to_json(meta=True)
    assert without_timing(ext["stats"]) == without_timing(asdict(expected.stats))
    assert reply.usage.prompt_tokens == len(expected.record.prompt_ids)
    assert reply.usage.completion_tokens == expected.stats.tokens_generated
    assert reply.id == f"chatcmpl-{ext['run_id']}"


def test_streaming_gives_the_same_message_through_the_openai_client(client, expected):
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=ask("What is 2 + 3?"), seed=11, max_tokens=2000, top_p=0.95,
        stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    final = chunks[-1]
    assert content == expected.answer == final.model_extra["tim"]["answer"]
    assert final.choices[0].finish_reason == "stop"
    assert final.usage.completion_tokens == expected.stats.tokens_generated


def test_streaming_sends_the_tree_events_as_comments(served, expected):
    body = {"model": MODEL, "messages": ask("What is 2 + 3?"), "seed": 11, "max_tokens": 2000,
            "top_p": 0.95, "stream": True}
    with httpx.stream("POST", f"{served.base_url}/chat/completions", json=body, headers=AUTH,
                      timeout=WAIT_S) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    prefix = f": {TIM_EVENT} "
    events = [json.loads(line[len(prefix):]) for line in lines if line.startswith(prefix)]
    data = [line[len("data: "):] for line in lines if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    final = json.loads(data[-2])
    assert final["tim"]["answer"] == expected.answer
    kinds = [e["kind"] for e in events]
    assert "token" not in kinds
    assert kinds.count("fork") == expected.stats.num_forks >= 1
    record = expected.record
    assert kinds.count("join") == sum(len(f.children) for f in record.forks)
    assert kinds.count("task_opened") == kinds.count("task_closed") >= 1
    steps = [e["step"] for e in events]
    assert steps == sorted(steps) and steps[-1] <= expected.stats.num_steps


@pytest.mark.slow
def test_sixteen_concurrent_clients_share_batches_and_every_page_comes_back(served, client):
    batcher = served.server.batcher
    finished_before = batcher.endings[Ending.FINISHED]

    def one(i):
        kwargs = {"model": MODEL, "messages": ask(f"What is {i} + 2?"), "seed": 100 + i,
                  "max_tokens": 2000}
        if i % 4 < 2:  # these decode under another grammar, in the same batches
            kwargs["extra_body"] = {"tim": {"max_fanout": 1}}
        if i % 2 == 0:
            reply = client.chat.completions.create(**kwargs)
            return reply.choices[0].message.content, reply.choices[0].finish_reason, \
                reply.model_extra["tim"], reply.usage.completion_tokens
        chunks = list(client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}))
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return content, chunks[-1].choices[0].finish_reason, chunks[-1].model_extra["tim"], \
            chunks[-1].usage.completion_tokens

    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(one, range(16)))
    assert len({ext["run_id"] for _, _, ext, _ in replies}) == 16
    for i, (content, finish, ext, completion_tokens) in enumerate(replies):
        assert completion_tokens == ext["stats"]["tokens_generated"] <= 2000
        assert content == (ext["answer"] or "")
        assert finish == ("stop" if ext["answer"] is not None else "length")
        if ext["tree"] is not None:
            assert widest(ext["tree"]["reasoning"]) <= (1 if i % 4 < 2 else 2)
    assert sum(ext["tree"] is not None for _, _, ext, _ in replies) >= 8
    assert batcher.endings[Ending.FINISHED] == finished_before + 16
    assert batcher.peak_running >= 2  # requests were stepped together
    assert all_pages_back(served)


def test_the_api_key_is_required(served):
    wrong = openai.OpenAI(base_url=served.base_url, api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.models.list()
    assert caught.value.status_code == 401 and "Bearer" in caught.value.message
    bare = httpx.post(f"{served.base_url}/chat/completions", timeout=WAIT_S,
                      json={"model": MODEL, "messages": ask("hi")})
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(served.base_url.removesuffix("/v1") + "/health").status_code == 200


@pytest.mark.parametrize("change, error, message", [
    ({"max_tokens": 5000}, openai.BadRequestError,
     "max_tokens=5000 is above this server's limit of 2000; ask for at most 2000"),
    ({"extra_body": {"tim": {"max_depth": 3}}}, openai.BadRequestError,
     "tim.max_depth=3 is above this server's limit of 1"),
    ({"extra_body": {"tim": {"max_fanout": 9}}}, openai.BadRequestError,
     "tim.max_fanout=9 is above this server's limit of 2"),
    ({"messages": ask("x" * 30_000)}, openai.BadRequestError,
     "over this server's limit of 20000 bytes"),
    ({"messages": ask("x" * 15_000)}, openai.BadRequestError,
     "this server takes at most 4096"),
    ({"n": 2}, openai.BadRequestError, "one choice per request"),
    ({"temperature": 5}, openai.BadRequestError, r"temperature=5.0 is outside [0, 2]"),
    ({"messages": [*ask("hi"), {"role": "assistant", "content": "yo"}]},
     openai.BadRequestError, "must be the user's question"),
    ({"model": "gpt-4o"}, openai.NotFoundError, "this server serves 'tiny-qwen3'"),
])
def test_a_request_past_a_limit_gets_an_openai_error_naming_it(served, client, change, error,
                                                               message):
    kwargs = {"model": MODEL, "messages": ask("What is 2 + 3?"), **change}
    with pytest.raises(error) as caught:
        client.chat.completions.create(**kwargs)
    body = caught.value.body  # the "error" object of {"error": {"message", "type", ...}}
    assert message in body["message"] and set(body) == {"message", "type", "param", "code"}
    assert served.server.batcher.num_jobs() == (0, 0)


def test_malformed_bodies_get_a_400_and_the_server_stays_up(served, client):
    url = f"{served.base_url}/chat/completions"
    broken = httpx.post(url, content=b"{not json", headers={**AUTH, "content-type":
                                                            "application/json"})
    assert broken.status_code == 400 and "not a valid chat completion" in \
        broken.json()["error"]["message"]
    missing = httpx.post(url, json={"model": MODEL}, headers=AUTH)
    assert missing.status_code == 400 and "messages" in missing.json()["error"]["message"]
    reply = client.chat.completions.create(model=MODEL, messages=ask("hi"), max_tokens=20)
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 20


def test_a_request_past_the_timeout_gets_a_504(served, client):
    config = served.server.config
    served.server.config = replace(config, request_timeout_s=1e-9)  # late before it starts
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model=MODEL, messages=ask("hi"), max_tokens=20)
    finally:
        served.server.config = config
    assert caught.value.status_code == 504 and caught.value.body["code"] == "request_timeout"
    assert "--request-timeout" in caught.value.body["message"]
    assert all_pages_back(served)


def test_a_client_that_leaves_mid_stream_cancels_its_run(served):
    batcher = served.server.batcher
    cancelled_before = batcher.endings[Ending.CANCELLED]
    body = {"model": MODEL, "messages": ask("What is 2 + 3?"), "seed": 11, "max_tokens": 2000,
            "stream": True}
    with httpx.stream("POST", f"{served.base_url}/chat/completions", json=body, headers=AUTH,
                      timeout=WAIT_S) as response:
        for line in response.iter_lines():
            if line.startswith(f": {TIM_EVENT} "):  # the run is live: leave now
                break
    assert all_pages_back(served)
    assert batcher.endings[Ending.CANCELLED] == cancelled_before + 1


def test_a_client_that_leaves_a_plain_request_cancels_its_run(served):
    batcher = served.server.batcher
    cancelled_before = batcher.endings[Ending.CANCELLED]
    body = json.dumps({"model": MODEL, "messages": ask("What is 2 + 3?"), "seed": 11,
                       "max_tokens": 2000}).encode()
    host, port = served.base_url.removeprefix("http://").removesuffix("/v1").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT_S) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                     b"content-type: application/json\r\n"
                     + f"authorization: Bearer {API_KEY}\r\ncontent-length: {len(body)}\r\n\r\n"
                     .encode() + body)
        deadline = time.monotonic() + WAIT_S
        while batcher.num_jobs()[1] == 0:  # until the run is decoding
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert all_pages_back(served)
    assert batcher.endings[Ending.CANCELLED] == cancelled_before + 1
