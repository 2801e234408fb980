"""What every ``tim`` command shares in the terminal: its argument parser, the spinner while a
model loads, live progress while it decodes, and a finished run drawn as a tree."""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any, NoReturn

__all__ = ["LiveProgress", "OneLineParser", "int_at_least", "loading_status", "show_result"]


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line and exits 2, without the usage dump.

    Every ``tim`` command (``tim viz`` and ``tim stress`` too) parses with it.
    """

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def int_at_least(low: int):
    """An argparse ``type``: an integer ``>= low``, or a one-line error quoting the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def loading_status(console: Any, model: str) -> Any:
    """A spinner while the model loads, unless a bundled model's first use shows its own bars."""
    from tim.models.bundled import BUNDLED_MODELS, cache_state

    bundle = BUNDLED_MODELS.get(model)
    if bundle is not None and not cache_state(bundle).ready:
        console.print(f"preparing the bundled model {model} (first use: fetch and convert)")
        return contextlib.nullcontext()
    return console.status(f"loading {model} ...")


class LiveProgress:
    """A live status line fed by the engine's per-step callback."""

    def __init__(self, console: Any, budget: int) -> None:
        self.console, self.budget = console, budget

    def __enter__(self):
        self.status = self.console.status("decoding ...")
        self.status.__enter__()
        self.start = time.perf_counter()

        def on_step(record: Any) -> None:
            if record.num_steps % 4:
                return
            live = record.timeline[-1].live_tokens if record.timeline else 0
            rate = record.num_generated / max(time.perf_counter() - self.start, 1e-9)
            self.status.update(
                f"step {record.num_steps}: {record.num_generated}/{self.budget} tokens, "
                f"{rate:.1f} tok/s, {len(record.streams)} streams, live KV {live} tokens, "
                f"{record.num_evicted} evicted"
            )

        return on_step

    def __exit__(self, *exc: Any) -> None:
        self.status.__exit__(*exc)


def show_result(result: Any, console: Any) -> None:
    """The tree, answer and statistics, as the viewer draws them in a terminal."""
    from tim.viz.terminal import render_terminal

    render_terminal(result, console=console)
    if result.error:
        console.print(f"[red]run ended early:[/] {result.error}")
