"""``tim stress``: run a forced tree shape far past the context window and check O6."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from tim.errors import TimError
from tim.stress.run import DEFAULT_QUESTION, PRUNING_RULES
from tim.stress.shape import TOOL_CALLS, StressShape
from tim.terminal import OneLineParser, int_at_least

__all__ = ["build_parser", "main_stress"]

DESCRIPTION = """\
Decode a task tree whose structure is forced (depth, fan-out, tokens per field, tool calls)
while the content tokens are sampled from the model, for many times the context window.
Checks oracle O6: the max position id stays below the window, live KV stays within the
budget, and no KV page leaks. Reports total tokens / window, peak live KV / total, tokens/s
per tenth of the run, and optionally a PNG timeline. Several position policies or pruning
rules (or --compare: all of them) give one table; 'keep' and 'none' fail there by name
(PositionWindowError, KVBudgetError).

Exit status: 0 when the run held its checks (always 0 for a comparison, whose failures are
its findings), 1 when a single run failed, 2 for bad arguments."""


def _float_at_least_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positions(text: str) -> list[str]:
    from tim.cache import PositionPolicy

    known = [policy.value for policy in PositionPolicy]
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(known)}, got {text!r}")
    return names


def _rules(text: str) -> list[str]:
    from tim.pruning import get_rule

    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of rules, got {text!r}")
    for name in names:
        try:
            get_rule(name)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return names


def build_parser(prog: str = "tim stress") -> argparse.ArgumentParser:
    """The ``tim stress`` argument parser (every knob, with its default, in ``--help``)."""
    d = StressShape()
    p = OneLineParser(prog=prog, description=DESCRIPTION,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    pos, nat = int_at_least(1), int_at_least(0)
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="NAME",
                   help="any model tim.models.load_model takes (e.g. smollm2-135m, an HF id or "
                        "path, a .gguf file); default: a tiny random Qwen3 with "
                        "max_position_embeddings=512 whose tokenizer has the format's JSON "
                        "keys as tokens")
    g.add_argument("--layers", type=pos, default=2, help="tiny model: layers (default 2)")
    g.add_argument("--hidden", type=pos, default=64, help="tiny model: hidden size (default 64)")
    g.add_argument("--threads", type=pos,
                   help="torch CPU threads (default: 1 for the tiny model, whose steps are "
                        "too small to split; torch's default with --model)")
    g.add_argument("--byte-tokens", action="store_true",
                   help="tiny model: plain byte tokenizer (about 85 tokens of keys per task)")
    g = p.add_argument_group("shape (forced structure; content is sampled)")
    g.add_argument("--num-tasks", type=pos, default=d.num_tasks,
                   help=f"top-level tasks (default {d.num_tasks})")
    g.add_argument("--depth", type=pos, default=d.depth,
                   help=f"levels of tasks, 1 = top-level only (default {d.depth})")
    g.add_argument("--fanout", type=pos, default=d.fanout,
                   help=f"subtasks per task above the last level (default {d.fanout})")
    g.add_argument("--thought-tokens", type=pos, default=d.thought_tokens,
                   help=f"sampled tokens per thought (default {d.thought_tokens})")
    g.add_argument("--conclusion-tokens", type=pos, default=d.conclusion_tokens,
                   help=f"sampled tokens per conclusion (default {d.conclusion_tokens})")
    g.add_argument("--answer-tokens", type=pos, default=d.answer_tokens,
                   help=f"sampled tokens in the final answer (default {d.answer_tokens})")
    g.add_argument("--tool-calls", choices=TOOL_CALLS, default=d.tool_calls,
                   help=f"which tasks call the 'lookup' tool, one call each (default "
                        f"{d.tool_calls})")
    g.add_argument("--tool-result-chars", type=nat, default=d.tool_result_chars,
                   help=f"characters in each tool result, forced into the stream in one step "
                        f"(default {d.tool_result_chars})")
    g.add_argument("--needle", nargs="?", const="4817", metavar="FACT",
                   help="plant 'the secret number is FACT' in the first top-level task's "
                        "conclusion, ask for it in the last one, and report whether the final "
                        "answer holds it (FACT default 4817)")
    g = p.add_argument_group("runtime")
    g.add_argument("--format", choices=("thread2", "parallel"), default="thread2",
                   help="thread2: one inline stream; parallel: siblings fork (default thread2)")
    g.add_argument("--positions", type=_positions, default=["shift"], metavar="LIST",
                   help="position policies, comma-separated: shift, reencode, keep "
                        "(default shift)")
    g.add_argument("--pruning", type=_rules, default=["buffer:0"], metavar="LIST",
                   help="pruning rules, comma-separated: none, buffer:K, "
                        "buffer:K@conclusion (default buffer:0)")
    g.add_argument("--compare", action="store_true",
                   help="run every position policy x every rule (none, buffer:0, buffer:1, "
                        "buffer:2) and print one table")
    g.add_argument("--window", type=pos,
                   help="context window the positions must stay below (default the model's "
                        "max_position_embeddings; smaller shortens a real model's run)")
    g.add_argument("--kv-budget", type=pos,
                   help="KV slots in the page pool (default: the window)")
    g.add_argument("--max-workers", type=pos, default=4,
                   help="parallel format: most streams decoding at once (default 4)")
    g.add_argument("--no-cascade", dest="cascade", action="store_false",
                   help="attend each worker's whole view, even over a prefix shared with "
                        "its siblings (default: cascade attention over shared prefixes)")
    g.add_argument("--temperature", type=_float_at_least_zero, default=0.0,
                   help="content sampling temperature, 0 = greedy (default 0)")
    g.add_argument("--seed", type=nat, default=0, help="sampling and tiny-model seed (default 0)")
    g.add_argument("--question", default=DEFAULT_QUESTION,
                   help=f"the prompt's user message (default {DEFAULT_QUESTION!r})")
    g.add_argument("--instructions", action=argparse.BooleanOptionalAction, default=None,
                   help="put the format's instructions in the prompt (default: only with "
                        "--model; the tiny model's window is too small for them)")
    g = p.add_argument_group("output")
    g.add_argument("--png", metavar="PATH",
                   help="write a timeline PNG: live KV and max position id vs tokens "
                        "processed, with the window (needs matplotlib)")
    g.add_argument("--json", metavar="PATH", help="write the report(s) as JSON")
    return p


def main_stress(argv: Sequence[str] | None = None) -> int:
    """Run ``tim stress`` with ``argv`` (without the program name); return the exit status.

    Never raises ``SystemExit``: ``--help`` returns 0 and a bad argument prints one line to
    stderr and returns 2.
    """
    try:
        return _main(argv)
    except SystemExit as exc:  # argparse: --help, or a bad argument
        return exc.code if isinstance(exc.code, int) else 2


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        shape = StressShape(
            num_tasks=args.num_tasks, depth=args.depth, fanout=args.fanout,
            thought_tokens=args.thought_tokens, conclusion_tokens=args.conclusion_tokens,
            answer_tokens=args.answer_tokens, tool_calls=args.tool_calls,
            tool_result_chars=args.tool_result_chars, needle=args.needle,
        )
    except ValueError as exc:
        parser.error(str(exc))
    positions = None if args.compare else args.positions  # None: every policy
    rules = list(PRUNING_RULES) if args.compare else args.pruning
    try:
        reports = _run(args, shape, positions, rules)
    except ValueError as exc:
        parser.error(str(exc))
    except TimError as exc:
        print(f"{parser.prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    return _show(args, reports, comparing=len(reports) > 1)


def _run(args: argparse.Namespace, shape: StressShape, positions: list[str] | None,
         rules: list[str]) -> list:
    import torch

    from tim.stress.model import stress_model
    from tim.stress.run import compare

    if args.threads is not None or args.model is None:
        torch.set_num_threads(args.threads or 1)
    if args.model is None:
        model = stress_model(byte_tokens=args.byte_tokens, num_layers=args.layers,
                             hidden_size=args.hidden, seed=args.seed)
    else:
        model = args.model
    return compare(
        model, positions=positions, pruning=rules, shape=shape, format=args.format,
        window=args.window, kv_budget_tokens=args.kv_budget, max_workers=args.max_workers,
        cascade=args.cascade,
        temperature=args.temperature, seed=args.seed, question=args.question,
        instructions=args.instructions,
    )


def _show(args: argparse.Namespace, reports: list, *, comparing: bool) -> int:
    from rich.console import Console

    from tim.stress.report import comparison_table, report_tables, write_timeline_png

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # piped output: room for the comparison table
    if comparing:
        console.print(comparison_table(reports))
        for r in reports:
            if r.failure:
                console.print(f"[bold]{r.positions}, {r.pruning}:[/bold] {r.failure}",
                              highlight=False)
    else:
        for part in report_tables(reports[0]):
            console.print(part)
    if args.png:
        try:
            write_timeline_png(reports, args.png)
        except (TimError, OSError) as exc:
            print(f"tim stress: cannot write {args.png!r}: {exc}", file=sys.stderr)
            return 1
        console.print(f"timeline written to {args.png}", highlight=False)
    if args.json:
        data = [r.to_json() for r in reports]
        try:
            with open(args.json, "w") as f:
                json.dump(data, f)
        except OSError as exc:
            print(f"tim stress: cannot write {args.json!r}: {exc}", file=sys.stderr)
            return 1
    return 0 if comparing or reports[0].ok else 1


if __name__ == "__main__":
    sys.exit(main_stress())
