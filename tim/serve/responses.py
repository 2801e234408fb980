"""OpenAI-shaped bodies: the completion, its stream chunks, SSE lines and error bodies.

Pure functions of plain data; the app decides which to send.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from tim.engine.record import RunEvent
from tim.result import Result
from tim.serve.batcher import Ending, JobDone

__all__ = ["DONE_LINE", "Reply", "Refusal", "TIM_EVENT", "completion_body", "chunk_body",
           "error_body", "event_line", "reply_of", "sse_data"]

TIM_EVENT = "tim-event"  # SSE comment lines ": tim-event {json}" carry the tree events
DONE_LINE = "data: [DONE]\n\n"


@dataclass(frozen=True)
class Reply:
    """A run that ended by itself: the assistant message and the ``tim`` extension."""

    content: str
    finish_reason: str  # "stop" (an answer) or "length" (max_tokens spent first)
    usage: dict[str, int]
    tim: dict[str, Any]


@dataclass(frozen=True)
class Refusal:
    """A run that did not end by itself: an HTTP status and an OpenAI error body."""

    status: int
    body: dict[str, Any]


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``, as the OpenAI API sends."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def reply_of(done: JobDone, *, run_id: str, num_prompt_tokens: int, max_new_tokens: int,
             question: str, model: str, timeout_s: float) -> Reply | Refusal:
    """What to send for a job that ended (not for one whose client went away)."""
    if done.ending is Ending.TIMEOUT:
        made = done.record.num_generated if done.record is not None else 0
        return Refusal(504, error_body(
            f"the run did not finish within the server's request timeout of {timeout_s:g} s "
            f"({made} tokens generated); ask for fewer max_tokens or a smaller tree "
            "(tim.max_depth), or start tim serve with a longer --request-timeout",
            type="timeout_error", code="request_timeout"))
    if done.ending is Ending.CANCELLED:
        return Refusal(503, error_body(f"the run was cancelled: {done.message}",
                                       type="server_error", code="cancelled"))
    if done.ending is Ending.FAILED or done.record is None:
        return Refusal(500, error_body(f"the server could not decode this request: "
                                       f"{done.message}; the server is still up, retry it",
                                       type="server_error", code="run_failed"))
    result = Result.of(done.record, question=question, model=model)
    stats = asdict(result.stats)
    spent = result.answer is None and done.record.num_generated >= max_new_tokens
    return Reply(
        content=result.answer or "",
        finish_reason="length" if spent else "stop",
        usage={"prompt_tokens": num_prompt_tokens,
               "completion_tokens": done.record.num_generated,
               "total_tokens": num_prompt_tokens + done.record.num_generated},
        tim={"run_id": run_id, "answer": result.answer, "error": result.error,
             "tree": result.tree.to_json(meta=True) if result.tree else None,
             "stats": stats, "queued_s": round(done.queued_s, 6)},
    )


def completion_body(reply: Reply, *, run_id: str, created: int, model: str) -> dict[str, Any]:
    """The ``chat.completion`` object, with the ``tim`` extension."""
    return {
        "id": f"chatcmpl-{run_id}", "object": "chat.completion", "created": created,
        "model": model,
        "choices": [{"index": 0, "finish_reason": reply.finish_reason, "logprobs": None,
                     "message": {"role": "assistant", "content": reply.content}}],
        "usage": reply.usage,
        "tim": reply.tim,
    }


def chunk_body(delta: dict[str, Any], *, run_id: str, created: int, model: str,
               finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``extra`` adds top-level fields (``usage``, ``tim``)."""
    return {
        "id": f"chatcmpl-{run_id}", "object": "chat.completion.chunk", "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                     "logprobs": None}],
        **extra,
    }


def sse_data(body: dict[str, Any]) -> str:
    """One SSE ``data:`` event."""
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def event_line(event: RunEvent) -> str:
    """A tree event as an SSE comment, which OpenAI clients skip and raw readers can parse.

    Examples
    --------
    >>> event_line(RunEvent(3, "fork", (), [(0,), (1,)]))
    ': tim-event {"step": 3, "kind": "fork", "stream": [], "detail": [[0], [1]]}\\n\\n'
    """
    data = {"step": event.step, "kind": event.kind, "stream": list(event.stream),
            "detail": event.detail}
    return f": {TIM_EVENT} {json.dumps(data, ensure_ascii=False, default=str)}\n\n"
