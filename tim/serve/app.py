"""The FastAPI app of ``tim serve``: ``POST /v1/chat/completions``, ``GET /v1/models``,
``GET /health``. :func:`create_app` builds it around one :class:`Server`."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from tim.engine.config import EngineConfig
from tim.engine.engine import Engine
from tim.engine.sampler import SamplingParams
from tim.serve.batcher import Batcher, Job, QueueFull, kv_reserve
from tim.serve.config import ServeConfig
from tim.serve.engines import EngineSet
from tim.serve.guard import Guard
from tim.serve.prompt import chat_prompt_ids
from tim.serve.protocol import ChatRequest, RequestError, RunPlan, plan_request
from tim.serve.responses import Refusal, completion_body, error_body, reply_of
from tim.serve.session import ChunkHead, Session

__all__ = ["Server", "create_app"]

NO_RETRY = {"x-should-retry": "false"}  # the openai client retries 5xx unless told not to


@dataclass
class Server:
    """What the app serves: the engines, the batcher and the limits. One per app."""

    config: ServeConfig
    engines: EngineSet
    batcher: Batcher
    tokenizer: Any
    started: int = field(default_factory=lambda: int(time.time()))
    _counter: Any = field(default_factory=itertools.count)

    @classmethod
    def build(cls, model: Any, tokenizer: Any, engine_config: EngineConfig,
              config: ServeConfig, *, tools: Sequence[Callable] = (),
              tool_timeout_s: float = 30.0, backend: str = "auto") -> Server:
        """Engines (the server's tree limits are ``config``'s) and a batcher, not started."""
        engine_config = replace(engine_config, max_depth=config.max_depth,
                                max_fanout=config.max_fanout)
        engines = EngineSet(model, tokenizer, engine_config, tools=tools,
                            tool_timeout_s=tool_timeout_s, backend=backend)
        batcher = Batcher(engines.base, max_running=config.max_running,
                          max_queued=config.max_queued)
        return cls(config, engines, batcher, tokenizer)

    def submit(self, plan: RunPlan, prompt_ids: list[int], engine: Engine,
               session: Session) -> Job:
        """Queue the job of a checked request; a 429 when the queue is full."""
        number = next(self._counter)
        seed = self.config.seed + number if plan.seed is None else plan.seed
        job = Job(run_id=f"{number}-{secrets.token_hex(4)}", engine=engine,
                  prompt_ids=prompt_ids,
                  sampling=SamplingParams(temperature=plan.temperature, top_p=plan.top_p,
                                          seed=seed),
                  max_new_tokens=plan.max_new_tokens,
                  deadline=time.monotonic() + self.config.request_timeout_s,
                  on_done=session.on_done, on_event=session.on_event if plan.stream else None)
        try:
            self.batcher.submit(job)
        except QueueFull as exc:
            raise RequestError(429, str(exc), type="server_error", code="server_busy") from None
        return job

    def prompt_ids(self, plan: RunPlan) -> list[int]:
        """The prompt of ``plan``; a 400 when it is longer than the server takes."""
        instructions = self.engines.base.format.instructions(self.engines.base.tools.specs)
        ids = chat_prompt_ids(self.tokenizer, instructions, plan.system, plan.turns)
        limit = self.config.max_prompt_tokens
        if len(ids) > limit:
            raise RequestError(400, f"the prompt has {len(ids)} tokens (tim's instructions "
                                    f"included); this server takes at most {limit}; send a "
                                    "shorter conversation (the limit is tim serve "
                                    "--max-prompt-tokens)", param="messages")
        room = self.batcher.kv_budget
        if kv_reserve(len(ids), plan.max_new_tokens) > room:
            raise RequestError(400, f"the prompt ({len(ids)} tokens) and max_tokens="
                                    f"{plan.max_new_tokens} need more KV room than this "
                                    f"server's {room} tokens; ask for fewer max_tokens",
                               param="max_tokens")
        return ids


def create_app(server: Server) -> Guard:
    """The ASGI app around ``server``: the FastAPI app (``.app``) behind the API-key and
    body-size :class:`~tim.serve.guard.Guard`. Its lifespan starts and stops the batcher."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.batcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(server.batcher.stop)

    app = FastAPI(title="tim serve", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.server = server
    _add_error_handlers(app)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        queued, running = server.batcher.num_jobs()
        return {"status": "ok", "queued": queued, "running": running}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": server.config.served_model, "object": "model",
                                            "created": server.started, "owned_by": "tim"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request, body: ChatRequest) -> Any:
        return await _chat(server, request, body)

    config = server.config
    return Guard(app, api_key=config.api_key, max_body_bytes=config.max_body_bytes,
                 body_timeout_s=config.request_timeout_s)


async def _chat(server: Server, request: Request, body: ChatRequest) -> Any:
    """Check the request, queue its job, then answer it plain or as an SSE stream."""
    config = server.config
    plan = plan_request(body, config)
    prompt_ids = server.prompt_ids(plan)
    engine = await run_in_threadpool(server.engines.get, plan.max_depth, plan.max_fanout)
    session = Session(asyncio.get_running_loop())
    job = server.submit(plan, prompt_ids, engine, session)
    reply = partial(reply_of, run_id=job.run_id, num_prompt_tokens=len(prompt_ids),
                    max_new_tokens=plan.max_new_tokens, question=plan.question,
                    model=config.served_model, timeout_s=config.request_timeout_s)
    if plan.stream:
        head = ChunkHead(job.run_id, int(time.time()), config.served_model)
        return StreamingResponse(session.stream(job, server.batcher, head, reply,
                                                plan.include_usage),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})
    done = await session.wait(job, server.batcher, request.is_disconnected)
    if done is None:  # the client left; nobody reads this
        return JSONResponse(error_body("the client disconnected", code="cancelled"), 499)
    outcome = reply(done)
    if isinstance(outcome, Refusal):
        return JSONResponse(outcome.body, outcome.status, headers=NO_RETRY)
    return completion_body(outcome, run_id=job.run_id, created=int(time.time()),
                           model=config.served_model)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        headers = None if exc.status == 429 else NO_RETRY
        return JSONResponse(error_body(exc.message, type=exc.type, param=exc.param,
                                       code=exc.code), exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(_describe(error) for error in exc.errors()[:5])
        return JSONResponse(error_body(f"the request body is not a valid chat completion "
                                       f"request: {problems}"), 400, headers=NO_RETRY)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(f"{exc.detail}: {request.method} {request.url.path} "
                                       "(tim serve has POST /v1/chat/completions and GET "
                                       "/v1/models)", code=str(exc.status_code)),
                            exc.status_code, headers=NO_RETRY)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(f"internal error: {exc!r}; the server is still up",
                                       type="server_error"), 500, headers=NO_RETRY)


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{where or 'body'}: {error.get('msg', 'invalid')}"
