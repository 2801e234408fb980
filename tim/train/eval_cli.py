"""``tim eval --families ...``: trained tree and flat models on held-out family questions.

Configurations (``--family-configs``, comma-separated): ``tree`` (the trained tree model through
tim, ``buffer:0@conclusion``, positions ``shift``), ``tree-close`` (the same model with its lists
leaving at their ``]``, ``buffer:0``: the other pruning point), ``tree-keep`` (positions
``keep``: they grow past the window), ``tree-reencode`` (positions ``reencode``: the kept
tokens after an eviction are computed again, exactly as the training views saw them), ``flat-truncate`` and ``flat-sliding`` (the flat
baseline). Every run is capped at ``--window`` positions. ``--trained`` takes a ``tim train``
folder or the name of a trained model shipped in the package (``smollm2-135m-tree``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tim.errors import TimError

from .evaluate import (
    evaluate,
    flat_question,
    load_outcomes,
    markdown_table,
    plot_accuracy,
    run_tree_question,
)
from .families import FAMILIES

__all__ = ["run_families", "FAMILY_CONFIGS"]

FAMILY_CONFIGS = ("tree", "tree-close", "tree-keep", "tree-reencode", "flat-truncate",
                  "flat-sliding")


def run_families(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    families = tuple(args.families)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown task family {unknown[0]!r}: choose from {', '.join(FAMILIES)}")
    configs = list(args.family_configs)
    bad = [c for c in configs if c not in FAMILY_CONFIGS]
    if bad:
        raise ValueError(f"unknown family config {bad[0]!r}: choose from "
                         f"{', '.join(FAMILY_CONFIGS)}")
    if args.window is None:
        raise ValueError("--families needs --window W: the positions every run may use")
    if not args.json:
        raise ValueError("--families needs --json PATH: outcomes are saved (and resumed) there")
    if args.report:
        outcomes = [o for path in args.report for o in load_outcomes(Path(path))]
        return _report(console, outcomes, args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    questions = dict.fromkeys(args.sizes, args.questions)
    for config in configs:
        folder = args.trained if config.startswith("tree") else args.flat
        if folder is None:
            raise TimError(f"config {config!r} needs --{'trained' if config.startswith('tree') else 'flat'} DIR")
        with console.status(f"loading {folder} ..."):
            model = _load(folder)
        run_one = _runner(config, model, args)

        def done(o: Any, config: str = config) -> None:
            verdict = "right" if o.correct else (o.error or f"wrong ({o.answer!r})")
            console.print(f"{config} {o.family} size {o.size} seed {o.seed}: {verdict}, "
                          f"{o.num_processed:,} tokens, max position {o.max_position}, "
                          f"{o.wall_time_s:.0f} s")

        evaluate(run_one, config, families, questions, window=args.window,
                 out=Path(args.json), on_outcome=done)
    return _report(console, load_outcomes(Path(args.json)), args)


def _load(folder_or_name: str) -> Any:
    """A ``(model, tokenizer)`` pair from a ``tim train`` folder or a shipped trained model."""
    from tim.models.trained import TRAINED_MODELS

    from .recipe import load_trained

    if folder_or_name in TRAINED_MODELS:
        from tim.models.loading import load_model

        loaded = load_model(folder_or_name)
        return loaded.model, loaded.tokenizer
    return load_trained(folder_or_name)


def _runner(config: str, model: Any, args: argparse.Namespace):
    common = dict(window=args.window, max_new_tokens=args.max_new_tokens,
                  unseen_phrasing=args.unseen_phrasing)
    if config.startswith("tree"):
        positions = {"tree-keep": "keep", "tree-reencode": "reencode"}.get(config, "shift")
        pruning = "buffer:0" if config == "tree-close" else "buffer:0@conclusion"
        runtimes: dict[str, Any] = {}  # one per format: questions share its engine
        return lambda f, s, i: run_tree_question(model, f, s, i, positions=positions,
                                                 pruning=pruning, config=config,
                                                 runtimes=runtimes, **common)
    mode = config.removeprefix("flat-")
    return lambda f, s, i: flat_question(model, f, s, i, mode=mode, **common)


def _report(console: Any, outcomes: list[dict[str, Any]], args: argparse.Namespace) -> int:
    print(markdown_table(outcomes, args.window))
    if args.plot:
        plot_accuracy(outcomes, args.window, Path(args.plot))
        console.print(f"wrote {args.plot}")
    return 0
