"""``python -m benchmarks.past_window [--quick] [--cache DIR] [--reuse] [--report-only] [--docs]``.

Trains the tree and flat models (or reuses checkpoints trained with the same config),
evaluates them through tim, prints the tables and writes ``report.md`` and
``accuracy.png`` into the recipe's cache folder. ``--docs`` also writes the tables into
``docs/evaluation.md`` and the plot into ``docs/img/past_window.png``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

from .pipeline import FULL, QUICK, RecipeConfig, RecipeResult, load_recipe, run_recipe
from .report import accuracy_table, cost_table, plot_accuracy, replace_block, solved_table

DOC = Path("docs") / "evaluation.md"
DOC_PLOT = Path("docs") / "img" / "past_window.png"
BLOCK = "past_window:results"


def machine_line(threads: int) -> str:
    """The machine, as the report names it."""
    import torch
    import transformers

    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"transformers {transformers.__version__}, {threads} torch thread(s), fp32")


def render(cfg: RecipeConfig, result: RecipeResult, *, threads: int) -> str:
    """The report: setup, training, accuracy and cost tables."""
    m = cfg.model
    lines = [
        f"Measured by `python -m benchmarks.past_window{' --quick' if cfg.name == 'quick' else ''}` "
        f"on {machine_line(threads)}.",
        "",
        f"- Models: Llama, {m.num_layers} layers, hidden {m.hidden_size}, {m.num_heads} heads, "
        f"MLP {m.intermediate_size}, vocabulary {m.vocab_size} (BPE trained here), "
        f"`max_position_embeddings` = window = **{m.window}**.",
    ]
    for kind, tr in result.training.items():
        lines.append(
            f"- `{kind}` model: {tr.num_params:,} parameters, {cfg.train.steps} steps of "
            f"{cfg.train.tokens_per_step} tokens, {tr.num_targets:,} supervised tokens, "
            f"final loss {sum(tr.losses[-20:]) / len(tr.losses[-20:]):.3f} (mean of the last "
            f"20 steps), {tr.wall_time_s / 60:.1f} min.")
    lines += [
        f"- Evaluation: {cfg.num_questions} held-out questions per height, greedy, "
        f"`buffer:{cfg.k}` for the tree model; the runs took {result.eval_wall_time_s / 60:.1f} "
        "min in all.",
        "",
        "Accuracy (correct/questions, 95% Wilson interval):",
        "",
        accuracy_table(result.cells),
        "",
        "Cost and memory (per configuration and height; peak and max over all the runs, "
        "those stopped at the window included):",
        "",
        cost_table(result.cells),
        "",
        "The runs that got the answer:",
        "",
        solved_table(result.outcomes, window=cfg.model.window),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.past_window",
                                     description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true",
                        help="a micro model and a few steps: checks the pipeline, not accuracy")
    parser.add_argument("--cache", type=Path, default=None,
                        help="checkpoint folder (default: tim's cache, ~/.cache/tim/past_window)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse checkpoints trained with the same config")
    parser.add_argument("--report-only", action="store_true",
                        help="redraw the report from the last finished run's files")
    parser.add_argument("--docs", action="store_true",
                        help="write the tables into docs/evaluation.md and the plot into docs/img")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")

    import torch
    from rich.console import Console
    from rich.progress import Progress
    from transformers.utils import logging as transformers_logging

    from tim.models.bundled import cache_dir

    torch.set_num_threads(args.threads)
    transformers_logging.disable_progress_bar()  # rich draws the one progress display
    cfg = QUICK if args.quick else FULL
    cache = args.cache if args.cache is not None else cache_dir() / "past_window"
    console = Console(stderr=True)
    if args.report_only:
        try:
            result = load_recipe(cfg, cache=cache)
        except ValueError as exc:
            parser.error(str(exc))
    else:
        with Progress(console=console, transient=False) as progress:
            result = run_recipe(cfg, cache=cache, reuse=args.reuse, progress=progress)
    report = render(cfg, result, threads=args.threads)
    (result.folder / "report.md").write_text(report + "\n", encoding="utf-8")
    title = (f"{cfg.model.num_layers}-layer Llama, window {cfg.model.window}, "
             f"{cfg.num_questions} questions per point")
    plot_accuracy(result.cells, result.folder / "accuracy.png", title=title)
    print(report)
    console.print(f"report and plot written to {result.folder}")
    if args.docs:
        DOC.write_text(replace_block(DOC.read_text(encoding="utf-8"), BLOCK, report),
                       encoding="utf-8")
        plot_accuracy(result.cells, DOC_PLOT, title=title)
        console.print(f"tables written into {DOC}, plot into {DOC_PLOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
