"""``tim viz RUN.json [--html OUT] [--svg OUT] [--png OUT] [--text]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tim.errors import TimError
from tim.terminal import OneLineParser

__all__ = ["main_viz", "viz_parser"]

DESCRIPTION = """\
Show a run: the task tree in the terminal, as an SVG drawing, as a self-contained HTML
viewer, and the live-KV timeline as a PNG. RUN is a run file (Result.save) or plain TIM
Thread-2 JSON. With no output option, --text is assumed."""


def viz_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tim viz``."""
    parser = OneLineParser(prog="tim viz", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", metavar="RUN.json", help="run file or TIM Thread-2 JSON")
    parser.add_argument("--html", metavar="OUT.html", help="write the interactive HTML viewer")
    parser.add_argument("--svg", metavar="OUT.svg", help="write the tree drawing (Graphviz)")
    parser.add_argument("--tree-png", metavar="OUT.png", help="write the tree drawing as PNG")
    parser.add_argument("--png", metavar="OUT.png", help="write the live-KV timeline plot")
    parser.add_argument("--text", action="store_true", help="print the tree in the terminal")
    parser.add_argument("--window", type=int, metavar="N",
                        help="context window to draw on the timeline plot")
    parser.add_argument("--baseline", metavar="RUN.json",
                        help="a pruning=none run of the same tree to overlay on the plot")
    parser.add_argument("--max-tasks", type=int, default=2000, metavar="N",
                        help="most tasks in the terminal and Graphviz views (default 2000)")
    return parser


def main_viz(argv: Sequence[str] | None = None) -> int:
    """Run ``tim viz``; returns the exit status.

    0: every output written. 1: the run file cannot be read (nothing is written).
    2: a bad argument, or an output that could not be written: every other output is
    still written, then each failure is reported on one line.

    Examples
    --------
    >>> main_viz(["--html"])
    2
    """
    try:
        args = viz_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad argument (2, already reported)
        return int(exc.code or 0)
    if args.window is not None and args.window < 1:
        print(f"tim viz: error: --window must be >= 1, got {args.window}", file=sys.stderr)
        return 2
    from tim.viz.load import load_run

    try:
        view = load_run(args.run)
    except (TimError, OSError) as exc:
        _report(exc)
        return 1
    failures = []
    for option, write in _outputs(args, view):
        try:
            write()
        except (TimError, OSError) as exc:
            failures.append((option, exc))
    for option, exc in failures:
        _report(exc, option)
    return 2 if failures else 0


def _outputs(args: argparse.Namespace, view: Any) -> list[tuple[str, Callable[[], None]]]:
    """(option, writer) for each output asked for; each writer prints what it wrote."""

    def html() -> None:
        from tim.viz.viewer import write_html

        print(f"wrote {write_html(view, args.html)}")

    def drawing(path: str, format: str) -> Callable[[], None]:
        def draw() -> None:
            from tim.viz.dot import render_graphviz

            print(f"wrote {render_graphviz(view, path, format, max_tasks=args.max_tasks)}")

        return draw

    def plot() -> None:
        from tim.viz.load import load_run
        from tim.viz.plot import plot_kv_timeline

        baseline = load_run(args.baseline) if args.baseline else None
        print(f"wrote {plot_kv_timeline(view, args.png, window=args.window, baseline=baseline)}")

    def text() -> None:
        from tim.viz.terminal import render_terminal

        render_terminal(view, max_tasks=args.max_tasks)

    asked = []
    if args.html:
        asked.append(("--html", html))
    if args.svg:
        asked.append(("--svg", drawing(args.svg, "svg")))
    if args.tree_png:
        asked.append(("--tree-png", drawing(args.tree_png, "png")))
    if args.png:
        asked.append(("--png", plot))
    if args.text or not asked:
        asked.append(("--text", text))
    return asked


def _report(exc: Exception, option: str | None = None) -> None:
    where = f"{option}: " if option else ""
    print(f"tim viz: error: {where}{' '.join(str(exc).split())}", file=sys.stderr)
