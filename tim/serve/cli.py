"""``tim serve``: an OpenAI-compatible server (FastAPI + uvicorn) over one model."""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tim.errors import TimError
from tim.terminal import OneLineParser, int_at_least

__all__ = ["build_parser", "main_serve", "import_tool"]

DESCRIPTION = """\
Serve POST /v1/chat/completions (plain and streaming) and GET /v1/models. Each request
decodes one task tree; the answer is the assistant message, and the tree, the stats and the
run id travel in the response's 'tim' field. Concurrent requests decode in shared batches.
Binds 127.0.0.1 unless --host says otherwise; --api-key makes every request carry
'Authorization: Bearer KEY'. The first line on stdout names the address."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="tim serve", description=DESCRIPTION)
    p.add_argument("--model", default="smollm2-135m",
                   help="a bundled model, an HF id or folder, a .gguf file, or 'tiny-qwen3' "
                        "(random weights, starts in seconds, for tests)")
    p.add_argument("--served-model-name", default=None,
                   help="the model id clients send (default: --model)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p.add_argument("--port", type=int_at_least(0), default=8000, help="0 picks a free port")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    p.add_argument("--tools", nargs="*", default=[], metavar="MODULE:FUNCTION",
                   help="Python callables the model may call, e.g. math:hypot")
    p.add_argument("--tool-timeout", type=_positive_float, default=30.0,
                   help="seconds a tool call may take")
    engine = p.add_argument_group("decoding")
    engine.add_argument("--format", default="parallel", choices=["parallel", "thread2"])
    engine.add_argument("--pruning", default="buffer:1",
                        help="'none', 'buffer:K' or 'buffer:K@conclusion'")
    engine.add_argument("--positions", default="shift", choices=["shift", "reencode", "keep"])
    engine.add_argument("--max-workers", type=int_at_least(1), default=8)
    engine.add_argument("--max-string-chars", type=int_at_least(1), default=160)
    engine.add_argument("--kv-budget-tokens", type=int_at_least(1), default=65536,
                        help="KV slots shared by every request in flight")
    engine.add_argument("--device", default="auto")
    engine.add_argument("--seed", type=int, default=0)
    limits = p.add_argument_group("limits (a request past one gets a 400 naming it)")
    limits.add_argument("--max-depth", type=int_at_least(1), default=2)
    limits.add_argument("--max-fanout", type=int_at_least(1), default=3)
    limits.add_argument("--max-tokens", type=int_at_least(1), default=4096,
                        help="largest max_tokens a request may ask for")
    limits.add_argument("--default-max-tokens", type=int_at_least(1), default=1024)
    limits.add_argument("--max-prompt-tokens", type=int_at_least(1), default=16384)
    limits.add_argument("--max-body-bytes", type=int_at_least(1), default=1_000_000)
    limits.add_argument("--request-timeout", type=_positive_float, default=600.0,
                        help="seconds before a queued or decoding request gets a 504")
    limits.add_argument("--max-running", type=int_at_least(1), default=16,
                        help="requests decoding together")
    limits.add_argument("--max-queued", type=int_at_least(1), default=64,
                        help="requests waiting; one more gets a 429")
    return p


def import_tool(spec: str) -> Callable[..., Any]:
    """The callable ``MODULE:FUNCTION`` names; a ValueError saying which part failed."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--tools expects MODULE:FUNCTION, got {spec!r}")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--tools {spec!r}: {exc}") from None
    if not callable(found):
        raise ValueError(f"--tools {spec!r} is not callable")
    return found


def main_serve(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        server, sock = _prepare(args)
    except (TimError, ValueError, OSError) as exc:
        print(f"tim serve: error: {exc}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    print(f"tim serve: {server.config.served_model} on http://{host}:{port}/v1", flush=True)
    if server.config.api_key is None and not ipaddress.ip_address(host).is_loopback:
        print("tim serve: warning: listening beyond this machine without --api-key",
              file=sys.stderr, flush=True)
    try:
        _run(server, sock)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
        pass
    server.batcher.stop()  # (done already by the app's lifespan, unless uvicorn was forced)
    use = server.batcher.pages()
    if use.num_views or use.num_free != use.num_pages:
        print(f"tim serve: stopped with {use.num_pages - use.num_free} KV pages still in use",
              file=sys.stderr, flush=True)
        return 1
    print("tim serve: stopped; every KV page was freed", file=sys.stderr, flush=True)
    return 0


def _prepare(args: argparse.Namespace) -> tuple[Any, socket.socket]:
    from tim.engine.config import EngineConfig
    from tim.models import load_model
    from tim.serve.app import Server
    from tim.serve.config import ServeConfig

    tools = [import_tool(spec) for spec in args.tools]
    config = ServeConfig(
        served_model=args.served_model_name or args.model, api_key=args.api_key,
        max_body_bytes=args.max_body_bytes, max_tokens=args.max_tokens,
        default_max_tokens=min(args.default_max_tokens, args.max_tokens),
        max_prompt_tokens=args.max_prompt_tokens, max_depth=args.max_depth,
        max_fanout=args.max_fanout, request_timeout_s=args.request_timeout,
        max_running=args.max_running, max_queued=args.max_queued, seed=args.seed)
    engine_config = EngineConfig(
        format=args.format, pruning=args.pruning, positions=args.positions,
        max_workers=args.max_workers, max_string_chars=args.max_string_chars,
        kv_budget_tokens=args.kv_budget_tokens)
    loaded = load_model(args.model, device=args.device)
    server = Server.build(loaded.model, loaded.tokenizer, engine_config, config, tools=tools,
                          tool_timeout_s=args.tool_timeout)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    return server, sock


def _run(server: Any, sock: socket.socket) -> None:
    import uvicorn

    from tim.serve.app import create_app

    # past this many open connections uvicorn answers 503 at once: a flood queues nowhere
    limit = 2 * (server.config.max_running + server.config.max_queued)
    config = uvicorn.Config(create_app(server), log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=5, limit_concurrency=limit)
    uvicorn.Server(config).run(sockets=[sock])
