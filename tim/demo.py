"""``tim demo``: a model trained for tim on a held-out long-horizon question.

By default the demo loads ``smollm2-135m-tree`` (SmolLM2-135M with the LoRA adapter that
``tim train`` made, :mod:`tim.models.trained`), asks it one held-out question of a task
family it was trained on (:mod:`tim.train.families`; the seed was never trained on), and
runs it under the settings it was trained for, with the engine stopping the run at the
model's window. It prints the tree, the expected answer beside the model's own, and how
far past its window the run went while positions and live KV stayed bounded.

Any other model (``--model qwen2.5-coder-0.5b``) gets an open question instead (:mod:`tim.cli`
runs it as ``tim run`` would): no model here answers such questions well
(docs/evaluation.md).
"""

from __future__ import annotations

import argparse
from typing import Any

from tim.errors import TimError

__all__ = ["DEMO_FAMILY", "DEMO_MODEL", "DEMO_SIZE", "OPEN_QUESTION", "add_demo_options",
           "run_trained_demo"]

DEMO_MODEL = "smollm2-135m-tree"
DEMO_FAMILY = "records"
DEMO_SIZE = 5  # records at size 5: 32 record reads in a tree of depth 5 (measured in docs)
OPEN_QUESTION = (
    "Plan a picnic for four friends: decide what food to bring, which games to play, "
    "and what time to meet."
)


def add_demo_options(demo: argparse.ArgumentParser) -> None:
    """``tim demo``'s own options, beside the run options it shares with ``tim run``."""
    from tim.terminal import int_at_least

    demo.add_argument("--family", default=DEMO_FAMILY,
                      help=f"a trained model's task family (default {DEMO_FAMILY})")
    demo.add_argument("--size", type=int_at_least(1), default=DEMO_SIZE,
                      help=f"the question's size: its tree has 2**size leaves (default "
                           f"{DEMO_SIZE})")
    demo.add_argument("--index", type=int_at_least(0), default=0,
                      help="which held-out question (0: the first held-out seed)")


def run_trained_demo(entry: Any, args: argparse.Namespace) -> int:
    """Run trained model ``entry`` on the held-out question ``args`` names (``--family``,
    ``--size``, ``--index``); the exit code (0: the answer was right)."""
    if args.question is not None:
        raise TimError(
            f"{entry.name} answers the questions of the task families it was trained on "
            f"({', '.join(entry.families)}), with their tools; choose one with --family, "
            f"--size and --index, or ask an open question of another model "
            f"(--model qwen2.5-coder-0.5b)")
    if args.family not in entry.families:
        raise TimError(f"{entry.name} was trained on {', '.join(entry.families)}; "
                       f"--family {args.family!r} is not one of them")
    return _trained_demo(entry, args)


def _trained_demo(entry: Any, args: argparse.Namespace) -> int:
    from rich.console import Console

    import tim.api as api
    from tim.terminal import LiveProgress, loading_status, show_result
    from tim.train.evaluate import tokens_processed
    from tim.train.families import HELD_OUT_SEEDS, make_example

    console = Console(stderr=True)
    seed = HELD_OUT_SEEDS.start + args.index
    example = make_example(args.family, args.size, seed, held_out=True)
    options = entry.runtime_options()
    if args.pruning:
        options["pruning"] = args.pruning
    options["positions"] = args.positions  # shift by default, as trained; chain needs reencode
    with loading_status(console, entry.base):
        runtime = api.Runtime(model=entry.name, format=example.format, seed=args.seed,
                              max_workers=args.max_workers, **options)
    console.print(f"[bold]model:[/] {entry.name} ({entry.title}); window W = {entry.window} "
                  f"positions, pruning {options['pruning']}, positions {options['positions']}")
    console.print(f"[bold]question[/] (held-out {example.family} question, size {args.size}, "
                  f"seed {seed}, format {example.format}, tools "
                  f"{', '.join(t.__name__ for t in example.tools)}):\n{example.question}")
    budget = max(args.max_new_tokens, 40 * 2 ** args.size * 8)
    with LiveProgress(console, budget) as on_step:
        result = runtime.reason(example.question, tools=example.tools, temperature=0,
                                max_new_tokens=budget, on_step=on_step)
    show_result(result, console)
    record = result.record
    answer = None if result.answer is None else str(result.answer).strip()
    right = answer == example.expected
    processed = tokens_processed(record)
    verdict = "[green]right[/]" if right else "[red]wrong[/]"
    console.print(
        f"[bold]expected[/] {example.expected}   [bold]answered[/] {answer}   {verdict}\n"
        f"processed {processed:,} tokens = {processed / entry.window:.1f} x its window of "
        f"{entry.window}; max position {record.max_position} (< {entry.window}); "
        f"peak live KV {record.peak_live_tokens:,} tokens over "
        f"{len(record.streams)} streams; {record.num_evicted:,} evicted")
    if args.json:
        result.save(args.json)
        console.print(f"saved the run to [bold]{args.json}[/] (draw it: tim viz {args.json})")
    return 0 if right and result.error is None else 1
