"""A small OpenAI-compatible completions server for tests: a tiny HF model behind
``POST /v1/completions`` on 127.0.0.1, with faults on demand.

It answers as vLLM does for what the remote executor asks (token-id prompts,
``return_token_ids``, ``logprobs``, ``allowed_token_ids``, ``seed``, ``ignore_eos``) and
computes real tokens and raw log-probs with a plain HF forward per token. ``faults`` is a
queue of what the next requests get instead of an answer: ``("status", code)``,
``("delay", seconds)`` (then the answer) or ``("close",)`` (the connection dropped).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch

__all__ = ["FakeServer"]


class FakeServer:
    """``with FakeServer(model) as server: ... server.url ...``; stops on exit."""

    def __init__(self, model: Any, *, name: str = "tiny") -> None:
        self.model, self.name = model, name
        self.faults: deque[tuple] = deque()
        self.bodies: list[dict] = []  # every completions request received, in order
        self.delays_ended: list[float] = []  # each injected delay, once it has run out
        self.max_in_flight = 0  # most completions requests being computed (or waiting) at once
        self._in_flight = 0
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    # ---------------------------------------------------------------- answers
    def complete(self, body: dict) -> dict:
        ids = [int(t) for t in body["prompt"]]
        gen = torch.Generator().manual_seed(int(body.get("seed") or 0))
        allowed = body.get("allowed_token_ids")
        tokens, logprobs = [], []
        for _ in range(int(body.get("max_tokens", 16))):
            with self._model_lock, torch.no_grad():
                logits = self.model(input_ids=torch.tensor([ids + tokens])).logits[0, -1]
            raw = torch.log_softmax(logits.float(), dim=-1)  # (V,)
            token = _pick(raw, body, gen, allowed)
            tokens.append(token)
            logprobs.append(float(raw[token]))
        return {"object": "text_completion", "model": self.name, "choices": [{
            "index": 0, "text": "", "token_ids": tokens, "finish_reason": "length",
            "logprobs": {"token_logprobs": logprobs, "tokens": [f"token_id:{t}" for t in tokens]},
        }]}

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _pick(raw: torch.Tensor, body: dict, gen: torch.Generator, allowed: list[int] | None) -> int:
    logits = raw.clone()
    if allowed is not None:
        mask = torch.full_like(logits, float("-inf"))
        mask[torch.tensor(allowed)] = 0.0
        logits = logits + mask
    temperature = float(body.get("temperature", 1.0))
    if temperature == 0:
        return int(logits.argmax())
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._send(200, {"object": "list", "data": [{"id": server.name}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            server.bodies.append(body)
            fault = server.faults.popleft() if server.faults else None
            if fault and fault[0] == "close":
                self.close_connection = True
                self.connection.close()
                return
            if fault and fault[0] == "status":
                self._send(fault[1], {"error": {"message": f"injected {fault[1]}"}})
                return
            if fault and fault[0] == "delay":
                time.sleep(fault[1])
                server.delays_ended.append(fault[1])
            server.enter()
            try:
                answer = server.complete(body)
            finally:
                server.leave()
            self._send(200, answer)

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client went away (a timeout or an abort in the test)

    return Handler
