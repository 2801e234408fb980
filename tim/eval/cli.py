"""The ``tim eval`` command: options, the run with a progress bar, the report.

``add_options`` declares the options on the parser :mod:`tim.cli` builds; ``run_command``
runs them. Bad values exit with status 2 and one line, as every ``tim`` command does.
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

from tim.eval.configs import DEFAULT_CONFIGS, parse_configs
from tim.eval.tasks import TASKS
from tim.terminal import int_at_least

__all__ = ["add_options", "run_command"]


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 2,3,4, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _tasks(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in names if t not in TASKS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"tasks are {', '.join(TASKS)}; got {text!r}")
    return tuple(dict.fromkeys(names))


def _configs(text: str):
    try:
        return parse_configs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _paths(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", type=_tasks, default=TASKS, help=f"comma-separated: {','.join(TASKS)}")
    p.add_argument("--configs", type=_configs, default=parse_configs(",".join(DEFAULT_CONFIGS)),
                   help="comma-separated METHOD[/PRUNING][/POSITIONS][/SIBLINGS][/tools], METHOD one of "
                        f"cot, thread2, parallel (default {','.join(DEFAULT_CONFIGS)})")
    p.add_argument("--sizes", type=_int_list, default=(2, 3, 4),
                   help="problem sizes: chain steps, Countdown numbers, lookup hops (2,3,4)")
    p.add_argument("--questions", type=int_at_least(1), default=10, help="questions per size")
    p.add_argument("--seed", type=int, default=0, help="first question seed; also sampling")
    p.add_argument("--model", default="smollm2-135m",
                   help="a bundled model, an HF id or folder, a .gguf file, or tiny-llama")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--window", type=int_at_least(2), default=None,
                   help="positions a run may use (0 .. W-1); default: unlimited for cot, "
                        "the model's max_position_embeddings for tim runs")
    p.add_argument("--max-new-tokens", type=int_at_least(1), default=512,
                   help="sampled-token budget per question, the same for every config")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    p.add_argument("--json", metavar="PATH", help="write every outcome and the summary")
    p.add_argument("--plot", metavar="PATH", help="accuracy vs problem size (PNG; matplotlib)")
    p.add_argument("--threads", type=int_at_least(1), default=None,
                   help="torch CPU threads (default: torch's own choice)")
    p.add_argument("--markdown", action="store_true",
                   help="print the table as Markdown instead of a terminal table")
    p.add_argument("--families", type=_paths, default=None,
                   help="evaluate trained models on tim train's task families instead "
                        "(records, chain, search; held-out seeds): see docs/training.md")
    p.add_argument("--trained", metavar="DIR", default=None,
                   help="with --families: a tim train output folder, or a trained model's "
                        "name (smollm2-135m-tree): the tree model")
    p.add_argument("--flat", metavar="DIR", default=None,
                   help="with --families: a tim train --trace flat-* folder (the baseline)")
    p.add_argument("--family-configs", type=_paths, default=("tree",),
                   help="with --families: tree, tree-close, tree-keep, tree-reencode, "
                        "flat-truncate, flat-sliding (default tree)")
    p.add_argument("--unseen-phrasing", action="store_true",
                   help="with --families: ask in the phrasing kept out of training")
    p.add_argument("--report", metavar="JSON[,JSON...]", type=_paths,
                   help="run nothing: print the table (and --plot) of saved --json reports "
                        "(several runs of one model and budget are merged; a stopped run's "
                        "file counts with what it finished)")


def run_command(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tim.eval.report import load_json, save_json
    from tim.eval.runner import run_eval
    from tim.eval.tasks import make_questions
    from tim.models import load_model

    if args.families:
        from tim.train.eval_cli import run_families

        return run_families(args)
    if args.report:
        outcomes, meta = _merge([load_json(path) for path in args.report], args.report)
        return _report(outcomes, meta, plot=args.plot, markdown=args.markdown)
    if "countdown" in args.tasks and min(args.sizes) < 2:
        raise ValueError(f"countdown needs sizes >= 2 (numbers to combine), got {args.sizes}")
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    questions = [q for task in args.tasks
                 for q in make_questions(task, sizes=args.sizes, num_per_size=args.questions,
                                         seed=args.seed)]
    # seed by seed, then size, then task: a run stopped part-way covers every task and size
    questions.sort(key=lambda q: (q.seed, q.size, args.tasks.index(q.task)))
    with console.status(f"loading {args.model} ..."):
        loaded = load_model(args.model, device=args.device)
    meta = {"model": loaded.name, "tasks": list(args.tasks), "sizes": list(args.sizes),
            "configs": [c.name for c in args.configs], "questions_per_size": args.questions,
            "seed": args.seed, "window": args.window, "max_new_tokens": args.max_new_tokens,
            "temperature": args.temperature, "device": args.device,
            "threads": torch.get_num_threads(), "machine": platform.platform(),
            "complete": False}
    total = len(questions) * len(args.configs)
    start = time.perf_counter()
    outcomes: list[Any] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("evaluating", total=total)

        def done(outcome: Any) -> None:
            outcomes.append(outcome)
            what = f"{outcome.config} {outcome.task} size {outcome.size}"
            progress.update(bar, advance=1, description=what)
            if not console.is_terminal:  # a log file gets one line per question instead
                verdict = "correct" if outcome.correct else outcome.failure or "wrong"
                console.print(f"[{len(outcomes)}/{total}] {what}: {verdict}, "
                              f"{outcome.sampled_tokens} sampled, {outcome.wall_time_s:.0f} s")
            if args.json:  # after every question, so a stopped run keeps what it did
                save_json(args.json, outcomes, {**meta, "wall_time_s":
                                                time.perf_counter() - start})

        run_eval(loaded, args.configs, questions, max_new_tokens=args.max_new_tokens,
                 window=args.window, temperature=args.temperature, seed=args.seed,
                 on_outcome=done)
    meta.update(complete=True, wall_time_s=time.perf_counter() - start)
    if args.json:
        save_json(args.json, outcomes, meta)
        console.print(f"wrote {args.json}")
    return _report(outcomes, meta, plot=args.plot, markdown=args.markdown)


_SAME = ("model", "max_new_tokens", "temperature", "window")


def _merge(reports: list[tuple[list[Any], dict[str, Any]]], paths: tuple[str, ...]
           ) -> tuple[list[Any], dict[str, Any]]:
    """Several saved runs as one: the same model and settings, no question run twice."""
    outcomes, meta = list(reports[0][0]), dict(reports[0][1])
    for (more, other), path in zip(reports[1:], paths[1:], strict=True):
        differ = [k for k in _SAME if other.get(k) != meta.get(k)]
        if differ:
            raise ValueError(f"{path} differs from {paths[0]} in {', '.join(differ)}; only runs "
                             "of one model and settings can be merged")
        outcomes += more
        meta["complete"] = meta.get("complete", True) and other.get("complete", True)
    keys = [(o.task, o.size, o.seed, o.config) for o in outcomes]
    if len(set(keys)) != len(keys):
        raise ValueError(f"the reports {', '.join(paths)} run some question twice (the same "
                         "task, size, seed and configuration); give each run its own --seed")
    return outcomes, meta


def _report(outcomes: list[Any], meta: dict[str, Any], *, plot: str | None,
            markdown: bool = False) -> int:
    """The table on standard output, and the plot if asked for."""
    from rich.console import Console

    from tim.eval.report import plot_accuracy, render_markdown, render_table

    window = f", window {meta['window']}" if meta.get("window") else ""
    partial = "" if meta.get("complete", True) else f" (stopped: {len(outcomes)} runs)"
    questions = len({(o.task, o.size, o.seed) for o in outcomes})
    title = (f"tim eval: {meta['model']}, {questions} questions, budget "
             f"{meta['max_new_tokens']} sampled tokens{window}{partial}")
    if markdown:
        print(f"{title}\n\n{render_markdown(outcomes)}")
    else:
        out = Console()
        if not out.is_terminal:  # a file or pipe: wide enough for every column
            out = Console(width=160)
        out.print(render_table(outcomes, title=title))
    if plot:
        if plot_accuracy(outcomes, plot, title=title):
            Console(stderr=True).print(f"wrote {plot}")
        else:
            Console(stderr=True).print("no plot: matplotlib is not installed")
    return 0
