"""The chat-completions request: its schema, and the checks that turn it into a :class:`RunPlan`.

Every refusal is a :class:`RequestError` whose message says what was wrong and what to send
instead; the app answers it as an OpenAI error body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tim.serve.config import ServeConfig

__all__ = ["ChatRequest", "RequestError", "RunPlan", "Turn", "plan_request"]

SYSTEM_ROLES = ("system", "developer")
TURN_ROLES = ("user", "assistant")


class RequestError(Exception):
    """A request the server refuses: HTTP ``status`` and an OpenAI-style error."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = (
            status, message, param, code, type)


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[ContentPart] | None = None


class TimOptions(BaseModel):
    """The request's ``tim`` extension (``extra_body={"tim": {...}}`` in the openai client)."""

    model_config = ConfigDict(extra="forbid")
    max_depth: int | None = None
    max_fanout: int | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``. Other OpenAI fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    n: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    tim: TimOptions | None = None


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    text: str


@dataclass(frozen=True)
class RunPlan:
    """What a checked request asks for."""

    system: str  # the client's system text ("" when none); it follows tim's instructions
    turns: tuple[Turn, ...]  # the last one is the user's question
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    max_depth: int
    max_fanout: int
    stream: bool
    include_usage: bool

    @property
    def question(self) -> str:
        return self.turns[-1].text


def plan_request(request: ChatRequest, config: ServeConfig) -> RunPlan:
    """Check ``request`` against ``config``; raise :class:`RequestError` naming the problem.

    Examples
    --------
    >>> config = ServeConfig(served_model="m", max_tokens=100, default_max_tokens=100)
    >>> ask = {"model": "m", "messages": [{"role": "user", "content": "2 + 2?"}]}
    >>> plan_request(ChatRequest(**ask, max_tokens=50), config).max_new_tokens
    50
    >>> plan_request(ChatRequest(**ask, max_tokens=500), config)
    Traceback (most recent call last):
    ...
    tim.serve.protocol.RequestError: max_tokens=500 is above this server's limit of 100; ...
    """
    if request.model != config.served_model:
        raise RequestError(404, f"model {request.model!r} is not served here; this server "
                                f"serves {config.served_model!r} (GET /v1/models lists it)",
                           param="model", code="model_not_found")
    _check_unsupported(request)
    system, turns = _turns(request.messages)
    depth, fanout = _tree_limits(request.tim, config)
    options = request.stream_options
    return RunPlan(
        system=system, turns=turns, max_new_tokens=_max_tokens(request, config),
        temperature=_number(request.temperature, config.temperature, "temperature", 0.0, 2.0),
        top_p=_number(request.top_p, config.top_p, "top_p", 0.0, 1.0, low_open=True),
        seed=request.seed, max_depth=depth, max_fanout=fanout, stream=request.stream,
        include_usage=bool(options and options.include_usage),
    )


def _check_unsupported(request: ChatRequest) -> None:
    if request.n not in (None, 1):
        raise RequestError(400, f"n={request.n}: tim serve returns one choice per request; "
                                "send n=1 (or several requests)", param="n")
    for name in ("tools", "functions"):
        if getattr(request, name):
            raise RequestError(400, f"'{name}' is not taken: tim serve runs its own tools inside "
                                    "the run (tim serve --tools MODULE:FUNCTION); remove "
                                    f"'{name}' from the request", param=name)


def _turns(messages: list[Message]) -> tuple[str, tuple[Turn, ...]]:
    system, turns = [], []
    for i, message in enumerate(messages):
        text = _text(message, f"messages[{i}]")
        if message.role in SYSTEM_ROLES:
            system.append(text)
        elif message.role in TURN_ROLES:
            turns.append(Turn(message.role, text))
        else:
            raise RequestError(400, f"messages[{i}].role is {message.role!r}; tim serve takes "
                                    "'system', 'developer', 'user' and 'assistant' messages",
                               param=f"messages[{i}].role")
    if not turns or turns[-1].role != "user":
        raise RequestError(400, "the last non-system message must be the user's question; "
                                "end 'messages' with a {'role': 'user', ...} message",
                           param="messages")
    if not turns[-1].text.strip():
        raise RequestError(400, "the user's question is empty; send some text",
                           param=f"messages[{len(messages) - 1}].content")
    return "\n\n".join(system), tuple(turns)


def _text(message: Message, where: str) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    texts = []
    for j, part in enumerate(message.content):
        if part.type != "text" or part.text is None:
            raise RequestError(400, f"{where}.content[{j}] has type {part.type!r}; tim serve "
                                    "takes text only ({'type': 'text', 'text': ...})",
                               param=f"{where}.content[{j}]")
        texts.append(part.text)
    return "\n".join(texts)


def _max_tokens(request: ChatRequest, config: ServeConfig) -> int:
    name = "max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens"
    value = getattr(request, name)
    if value is None:
        return config.default_max_tokens
    if value < 1:
        raise RequestError(400, f"{name}={value} must be at least 1", param=name)
    if value > config.max_tokens:
        raise RequestError(400, f"{name}={value} is above this server's limit of "
                                f"{config.max_tokens}; ask for at most {config.max_tokens} "
                                "(the limit is tim serve --max-tokens)", param=name)
    return value


def _tree_limits(options: TimOptions | None, config: ServeConfig) -> tuple[int, int]:
    depth = _limit(options and options.max_depth, config.max_depth, "max_depth")
    fanout = _limit(options and options.max_fanout, config.max_fanout, "max_fanout")
    return depth, fanout


def _limit(value: int | None, limit: int, name: str) -> int:
    if value is None:
        return limit
    if value < 1:
        raise RequestError(400, f"tim.{name}={value} must be at least 1", param=f"tim.{name}")
    if value > limit:
        flag = name.replace("_", "-")
        raise RequestError(400, f"tim.{name}={value} is above this server's limit of {limit}; "
                                f"ask for at most {limit} (the limit is tim serve --{flag})",
                           param=f"tim.{name}")
    return value


def _number(value: float | None, default: float, name: str, low: float, high: float, *,
            low_open: bool = False) -> float:
    if value is None:
        return default
    if not ((low < value if low_open else low <= value) and value <= high):  # NaN fails too
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise RequestError(400, f"{name}={value} is outside {interval}", param=name)
    return value
