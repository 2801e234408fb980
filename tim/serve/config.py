"""What ``tim serve`` allows a request: one frozen dataclass, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """Limits and defaults of the OpenAI-compatible server.

    Parameters
    ----------
    served_model : str
        The model id that ``GET /v1/models`` lists and requests must name.
    api_key : str, optional
        When set, every request must carry ``Authorization: Bearer <api_key>``.
    max_body_bytes : int
        Largest request body; a larger one gets a 400.
    max_tokens : int
        Largest ``max_tokens`` a request may ask for (sampled tokens of its whole tree).
    default_max_tokens : int
        The budget of a request that names none.
    max_prompt_tokens : int
        Longest prompt (format instructions and messages, after the chat template).
    max_depth, max_fanout : int
        The deepest tree and widest subtask list a request may ask for (``tim.max_depth``,
        ``tim.max_fanout``); they are also the defaults.
    request_timeout_s : float
        A request still queued or decoding after this long is cancelled with a 504.
    max_running : int
        Requests decoding together in one batch; later ones wait in the queue.
    max_queued : int
        Requests waiting beyond ``max_running``; one more gets a 429.
    temperature, top_p : float
        Sampling defaults for requests that name none.
    seed : int
        A request without ``seed`` samples with ``seed + n`` (``n`` counts requests).

    Examples
    --------
    >>> ServeConfig(served_model="tiny-qwen3").max_tokens
    4096
    >>> ServeConfig(served_model="m", max_tokens=0)
    Traceback (most recent call last):
    ...
    ValueError: max_tokens must be an int >= 1, got 0
    """

    served_model: str
    api_key: str | None = None
    max_body_bytes: int = 1_000_000
    max_tokens: int = 4096
    default_max_tokens: int = 1024
    max_prompt_tokens: int = 16384
    max_depth: int = 4
    max_fanout: int = 6
    request_timeout_s: float = 600.0
    max_running: int = 16
    max_queued: int = 64
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.served_model, str) or not self.served_model:
            raise ValueError(f"served_model must be a non-empty string, got {self.served_model!r}")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            raise ValueError("api_key must be a non-empty string or None")
        for name in ("max_body_bytes", "max_tokens", "default_max_tokens", "max_prompt_tokens",
                     "max_depth", "max_fanout", "max_running", "max_queued"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.default_max_tokens > self.max_tokens:
            raise ValueError(f"default_max_tokens ({self.default_max_tokens}) must not exceed "
                             f"max_tokens ({self.max_tokens})")
        if not self.request_timeout_s > 0:
            raise ValueError(f"request_timeout_s must be > 0, got {self.request_timeout_s!r}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
