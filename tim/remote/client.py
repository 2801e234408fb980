"""A small HTTP client for an OpenAI-compatible server, over the standard library.

One :class:`CompletionsClient` per executor. Each request opens its own connection, so
requests from several threads never share a socket; :meth:`CompletionsClient.abort` shuts
the sockets of every request in flight, which ends their blocking reads at once::

    post("/completions", body)    connect -> send -> read; JSON back
      connection refused / reset, 429, 502, 503, 504   retried, backoff 0.1 s, 0.2 s, 0.4 s ...
      timeout                                           RemoteError (not retried: it already waited)
      other 4xx / 5xx                                   RemoteError with the server's message
      abort() from any thread                           RemoteCancelled, now and for later calls
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

from tim.errors import TimError

__all__ = ["CompletionsClient", "RemoteError", "RemoteCancelled"]

RETRIED_STATUSES = frozenset({429, 502, 503, 504})


class RemoteError(TimError):
    """The server was down, too slow, or answered with an error."""


class RemoteCancelled(TimError):
    """The request was aborted by :meth:`CompletionsClient.abort` (``cancel()``, Ctrl-C)."""


class CompletionsClient:
    """POST JSON to ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``) and read JSON back.

    Parameters
    ----------
    base_url : str
        ``http://host:port/prefix``; requests go to ``prefix + path``.
    timeout_s : float
        Longest wait for a connection or for any read of an answer.
    retries : int
        Extra tries after a transient error (connection refused or reset, 429, 502-504).
    backoff_s : float
        Wait before the first retry; doubled before each next one.

    Examples
    --------
    >>> client = CompletionsClient("http://127.0.0.1:9/v1", timeout_s=1.0, retries=0)
    >>> client.server
    'http://127.0.0.1:9/v1'
    """

    def __init__(self, base_url: str, *, timeout_s: float = 120.0, retries: int = 3,
                 backoff_s: float = 0.1) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"base_url must look like 'http://host:port/v1', got {base_url!r}")
        if not timeout_s > 0 or retries < 0 or backoff_s < 0:
            raise ValueError(f"need timeout_s > 0, retries >= 0, backoff_s >= 0; got "
                             f"{timeout_s!r}, {retries!r}, {backoff_s!r}")
        self.server = base_url.rstrip("/")
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.num_requests = 0  # answered requests (retries not counted)
        self.num_retries = 0
        self._lock = threading.Lock()
        self._in_flight: set[http.client.HTTPConnection] = set()
        self._aborted = threading.Event()

    # ---------------------------------------------------------------- requests
    def post(self, path: str, body: dict[str, Any], *, what: str) -> dict[str, Any]:
        """POST ``body`` as JSON to ``path``; the decoded JSON answer.

        ``what`` names the request in errors (e.g. ``"completion of stream [0] (prompt of
        812 tokens, max_tokens 16)"``).
        """
        data = json.dumps(body).encode()
        return json.loads(self._request("POST", path, data, what=what))

    def get(self, path: str, *, what: str) -> str:
        """GET ``path``; the answer's text (``/metrics``, ``/models``)."""
        return self._request("GET", path, None, what=what).decode()

    def abort(self) -> None:
        """Abort every request in flight and refuse new ones; safe from any thread."""
        with self._lock:
            self._aborted.set()
            for conn in self._in_flight:
                _shut(conn)

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    # ---------------------------------------------------------------- internals
    def _request(self, method: str, path: str, data: bytes | None, *, what: str) -> bytes:
        url = f"{self.server}{path}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                status, payload = self._once(method, self.prefix + path, data)
            except TimeoutError as exc:
                raise RemoteError(f"{url} did not answer the {what} within {self.timeout_s} s; "
                                  "the server is overloaded or stuck: raise timeout_s or check "
                                  "the server") from exc
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, cut short
                self._check_aborted(url, what)
                if last:
                    raise RemoteError(f"cannot reach {url} for the {what} after "
                                      f"{self.retries + 1} tries: {exc}; is the server running "
                                      "there?") from exc
            else:
                if status < 400:
                    self.num_requests += 1
                    return payload
                if status not in RETRIED_STATUSES or last:
                    raise RemoteError(f"{url} answered {status} to the {what}: "
                                      f"{_message(payload)}")
            self.num_retries += 1
            if self._aborted.wait(self.backoff_s * 2 ** attempt):
                self._check_aborted(url, what)
        raise AssertionError("unreachable: the last try returns or raises")

    def _once(self, method: str, path: str, data: bytes | None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        with self._lock:
            if self._aborted.is_set():
                raise RemoteCancelled(f"request to {self.server}{path} cancelled")
            self._in_flight.add(conn)
        try:
            conn.connect()
            if self._aborted.is_set():  # aborted while connecting: no socket to shut then
                raise RemoteCancelled(f"request to {self.server}{path} cancelled")
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            with self._lock:
                self._in_flight.discard(conn)
            conn.close()

    def _check_aborted(self, url: str, what: str) -> None:
        if self._aborted.is_set():
            raise RemoteCancelled(f"the {what} to {url} was cancelled")


def _shut(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by its own thread


def _message(payload: bytes) -> str:
    """The server's error message: OpenAI's ``{"error": {"message": ...}}``, or the text."""
    try:
        body = json.loads(payload)
        error = body.get("error", body) if isinstance(body, dict) else body
        message = error.get("message", error) if isinstance(error, dict) else error
    except ValueError:
        message = payload.decode(errors="replace")
    return str(message)[:500]
