"""The guard in front of the app, as plain ASGI: the key, the body limit, a body too slow to
arrive, and a body handed on whole with the client's later messages behind it."""

from __future__ import annotations

import asyncio
import json

from tim.serve.guard import Guard


def call(guard, *, headers=(), chunks=(b"",), path="/v1/chat/completions", hang=False):
    """Run one request through ``guard``: (status, JSON body, what the app received)."""
    sent, seen = [], []
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)] + [{"type": "http.disconnect"}]

    async def receive():
        if hang:
            await asyncio.sleep(3600)
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        seen.append(await receive())
        seen.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard.app = app
    scope = {"type": "http", "path": path,
             "headers": [(k.encode(), v.encode()) for k, v in headers]}
    asyncio.run(guard(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), seen


def guard(**kwargs):
    return Guard(None, **{"api_key": "k", "max_body_bytes": 10, **kwargs})


def test_a_missing_or_wrong_key_is_a_401_and_health_needs_none():
    for headers in ((), (("authorization", "Bearer nope"),), (("authorization", "k"),)):
        status, body, seen = call(guard(), headers=headers)
        assert (status, body["error"]["code"], seen) == (401, "invalid_api_key", [])
    assert call(guard(), path="/health")[0] == 200


def test_the_body_is_handed_on_whole_then_the_clients_messages():
    status, _, seen = call(guard(), headers=(("authorization", "bearer k"),),
                           chunks=(b"12345", b"6789"))
    assert status == 200
    assert seen == [{"type": "http.request", "body": b"123456789", "more_body": False},
                    {"type": "http.disconnect"}]


def test_a_body_over_the_limit_is_a_400_declared_or_not():
    auth = ("authorization", "Bearer k")
    declared = call(guard(), headers=(auth, ("content-length", "11")))
    streamed = call(guard(), headers=(auth,), chunks=(b"123456", b"78901"))
    for status, body, seen in (declared, streamed):
        assert (status, body["error"]["code"], seen) == (400, "request_too_large", [])
        assert "limit of 10 bytes" in body["error"]["message"]


def test_a_body_that_does_not_arrive_in_time_is_a_408():
    status, body, seen = call(guard(api_key=None, body_timeout_s=0.05), hang=True)
    assert (status, body["error"]["code"], seen) == (408, "request_timeout", [])
