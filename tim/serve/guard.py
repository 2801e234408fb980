"""ASGI middleware in front of the app: the API key, then the body-size limit.

Both answer before the app sees the request, with an OpenAI error body. The body is read
here, up to the limit, and handed to the app whole; later ``receive`` calls go to the
server, so the app still hears a client that disconnects.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import anyio

from tim.serve.responses import error_body

__all__ = ["Guard"]

OPEN_PATHS = ("/health",)  # answered without the API key


class Guard:
    """Refuse requests without the right ``Authorization: Bearer`` key (401), with a body
    over ``max_body_bytes`` (400) or one slower than ``body_timeout_s`` to arrive (408); pass
    the rest to ``app``."""

    def __init__(self, app: Any, *, api_key: str | None, max_body_bytes: int,
                 body_timeout_s: float = 60.0) -> None:
        self.app, self.api_key, self.max_body_bytes = app, api_key, max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if self.api_key is not None and scope.get("path") not in OPEN_PATHS:
            if not _key_matches(headers.get("authorization", ""), self.api_key):
                await _refuse(send, 401, error_body(
                    "missing or wrong API key: send 'Authorization: Bearer <key>' with the key "
                    "tim serve was started with (--api-key)", code="invalid_api_key"),
                    extra_headers=[(b"www-authenticate", b"Bearer")])
                return
        body, late = None, True
        with anyio.move_on_after(self.body_timeout_s):
            body, late = await self._read_body(headers, receive, send), False
        if late:
            await _refuse(send, 408, error_body(
                f"the request body took longer than {self.body_timeout_s:g} s to arrive; "
                "send it at once", code="request_timeout"))
            return
        if body is None:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, headers: dict[str, str], receive: Any, send: Any) -> bytes | None:
        """The whole body, or None when it was refused (or the client left)."""
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send, int(declared))
            return None
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await self._too_large(send, len(body))
                return None
            if not message.get("more_body", False):
                return bytes(body)

    async def _too_large(self, send: Any, num_bytes: int) -> None:
        await _refuse(send, 400, error_body(
            f"the request body ({num_bytes} bytes or more) is over this server's limit of "
            f"{self.max_body_bytes} bytes; send a shorter conversation (the limit is tim serve "
            "--max-body-bytes)", code="request_too_large"))


def _key_matches(authorization: str, api_key: str) -> bool:
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                              api_key.encode())


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Any, status: int, body: dict, *,
                  extra_headers: list[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()),
                            (b"x-should-retry", b"false"), *extra_headers]})
    await send({"type": "http.response.body", "body": data})
