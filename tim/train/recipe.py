"""A whole training run: the data (gold runs of task families, their views, packed rows),
the model, the loop, and what it leaves behind.

``<out>/`` after a run::

    views.json         the training views (a rerun reads them instead of new gold runs)
    checkpoint.pt      the loop's last checkpoint (a rerun resumes from it)
    adapter/           LoRA: peft's adapter folder      model/  full: an HF folder
    card.json          base model, data hash, steps, tokens, final loss, wall time, machine
    loss.png           the loss curve
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tim.errors import TimError

from .families import make_example
from .gold import GoldConfig, GoldWriter
from .loop import TrainConfig, TrainResult, machine, rows_hash, train
from .pack import PackedRow, pack_views
from .views import TrainingView, record_views

__all__ = ["DataConfig", "build_views", "build_rows", "run_training", "load_trained",
           "plot_losses"]


@dataclass(frozen=True)
class DataConfig:
    """What to train on: ``per_size`` questions of every family at every size, training
    seeds from ``seed_start`` on, for the run ``gold`` describes, packed into rows of
    ``max_len`` tokens."""

    families: tuple[str, ...] = ("records", "chain")
    sizes: tuple[int, ...] = (1, 2, 3, 4)
    per_size: int = 40
    seed_start: int = 0
    max_len: int = 1024
    share_prefixes: bool = True
    gold: GoldConfig = GoldConfig()
    trace: str = "tree"  # or "flat-truncate" / "flat-sliding": the flat baseline's windows
    window: int = 1024  # the flat baseline's window (tree views are what the rule leaves)

    def __post_init__(self) -> None:
        if self.trace not in ("tree", "flat-truncate", "flat-sliding"):
            raise ValueError(f"trace must be 'tree', 'flat-truncate' or 'flat-sliding', got "
                             f"{self.trace!r}")
        if not self.families or not self.sizes:
            raise ValueError(f"need at least one family and one size, got {self.families!r} "
                             f"and {self.sizes!r}")
        if isinstance(self.per_size, bool) or not isinstance(self.per_size, int) \
                or self.per_size < 1:
            raise ValueError(f"per_size must be an int >= 1, got {self.per_size!r}")


def build_views(tokenizer: Any, data: DataConfig, *,
                on_example: Callable[[int, int], None] | None = None) -> list[TrainingView]:
    """Every training view of the data, question by question (seeds interleave families
    and sizes). ``on_example(done, total)`` reports progress."""
    writer = GoldWriter(tokenizer, data.gold)
    jobs = [(family, size, data.seed_start + i) for i in range(data.per_size)
            for size in data.sizes for family in data.families]
    views: list[TrainingView] = []
    for done, (family, size, seed) in enumerate(jobs, 1):
        example = make_example(family, size, seed)
        if data.trace == "tree":
            views += record_views(writer.record(example))
        else:
            views += _flat_views(tokenizer, example, data)
        if on_example is not None:
            on_example(done, len(jobs))
    return views


VIEWS = "views.json"


def _cached_views(path: Path, tokenizer: Any, data: DataConfig,
                  build: Callable[[], list[TrainingView]]) -> list[TrainingView]:
    """The data's views, built once per output folder: a rerun (a resume) reads them back
    instead of writing every gold tree through the engine again. A file made for other
    data or another tokenizer is rebuilt."""
    identity = {"data": json.loads(json.dumps(asdict(data))),
                "tokenizer": getattr(tokenizer, "name_or_path", ""), "vocab": len(tokenizer)}
    if path.exists():
        saved = json.loads(path.read_text())
        if saved["identity"] == identity:
            return [TrainingView(tuple(v[0]), tuple(v[1]), tuple(v[2]), tuple(v[3]))
                    for v in saved["views"]]
    views = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"identity": identity, "views": [
        [list(v.stream), list(v.input_ids), list(v.position_ids), list(v.labels)]
        for v in views]}))
    tmp.replace(path)
    return views


def _flat_views(tokenizer: Any, example: Any, data: DataConfig) -> list[TrainingView]:
    from tim.tools import ToolRegistry

    from .flat import encode_trace, flat_prompt, flat_segments, flat_windows

    prompt = flat_prompt(tokenizer, example.question, ToolRegistry(example.tools).specs)
    ids, forced = encode_trace(tokenizer, flat_segments(example.tree))
    return flat_windows(prompt, ids, forced, window=data.window,
                        mode=data.trace.removeprefix("flat-"))


def build_rows(tokenizer: Any, data: DataConfig, **kwargs: Any) -> list[PackedRow]:
    """The packed rows of the data (see :func:`build_views`)."""
    return pack_views(build_views(tokenizer, data, **kwargs), data.max_len,
                      share_prefixes=data.share_prefixes)


def run_training(model_name: str, data: DataConfig, config: TrainConfig, out_dir: Path, *,
                 loaded: Any = None, quiet: bool = False,
                 stop_after: int | None = None) -> TrainResult:
    """Build the data, train, save the weights, the card and the loss plot into ``out_dir``.

    ``loaded`` (a :class:`tim.models.LoadedModel`) skips loading ``model_name``. A rerun
    with the same arguments resumes from ``out_dir``'s checkpoint.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from tim.models.loading import load_model

    out_dir = Path(out_dir)
    started = time.perf_counter()
    loaded = loaded or load_model(model_name, device="cpu")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeRemainingColumn())
    with Progress(*columns, disable=quiet) as progress:
        log = _LogLines(progress, quiet)
        task = progress.add_task("gold runs", total=None, info="")

        def example_done(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)
            log.every(done, total, f"gold runs {done}/{total}")

        views = _cached_views(out_dir / VIEWS, loaded.tokenizer, data,
                              lambda: build_views(loaded.tokenizer, data,
                                                  on_example=example_done))
        rows = pack_views(views, data.max_len, share_prefixes=data.share_prefixes)
        view_tokens = sum(len(v) for v in views)
        row_tokens = sum(len(r) for r in rows)
        progress.update(task, info=f"{len(views)} views, {view_tokens:,} tokens -> "
                                   f"{len(rows)} rows, {row_tokens:,} tokens")
        step_task = progress.add_task("training", total=config.steps, info="")

        def report(step: int, loss: float, result: TrainResult) -> None:
            seen = result.num_tokens
            rate = seen / result.wall_time_s if result.wall_time_s else 0.0
            progress.update(step_task, completed=step + 1,
                            info=f"loss {loss:.4f}  {rate:,.0f} tok/s")
            left = (config.steps - step - 1) * result.wall_time_s / max(1, step + 1 -
                                                                        result.resumed_from)
            log.every(step + 1, config.steps, f"step {step + 1}/{config.steps} loss "
                      f"{loss:.4f} {rate:,.0f} tok/s, about {left / 60:.0f} min left")

        model, result = train(loaded.model, rows, config, out_dir, on_step=report,
                              stop_after=stop_after)
    if stop_after is not None and len(result.losses) < config.steps:
        return result
    if config.method == "lora":
        model.save_pretrained(out_dir / "adapter")
    else:
        model.save_pretrained(out_dir / "model")
        loaded.tokenizer.save_pretrained(out_dir / "model")
    card = {
        "base_model": model_name,
        "method": config.method,
        "train": asdict(config),
        "data": {**asdict(data), "gold": asdict(data.gold), "rows_sha256": rows_hash(rows),
                 "num_views": len(views), "view_tokens": view_tokens,
                 "num_rows": len(rows), "row_tokens": row_tokens},
        "steps": len(result.losses),
        "tokens": result.num_tokens,
        "labels": result.num_labels,
        "final_loss": sum(result.losses[-10:]) / len(result.losses[-10:]),
        "train_wall_time_s": round(result.wall_time_s, 1),
        "total_wall_time_s": round(time.perf_counter() - started, 1),
        "resumed_from": result.resumed_from,
        "machine": machine(),
    }
    (out_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    plot_losses(result.losses, out_dir / "loss.png", title=f"tim train: {model_name}")
    return result


class _LogLines:
    """Where the output is not a terminal (a log file, CI), a plain line every tenth of the
    way, since a live progress bar only shows once it ends there."""

    def __init__(self, progress: Any, quiet: bool) -> None:
        self.on = not quiet and not progress.console.is_terminal
        self.console = progress.console
        self.last = -1

    def every(self, done: int, total: int, line: str) -> None:
        tenth = done * 10 // max(1, total)
        if self.on and (tenth != self.last or done == total):
            self.last = tenth
            print(line, flush=True)


def plot_losses(losses: Sequence[float], path: Path, *, title: str = "") -> None:
    """The loss curve (per step, and a 10-step mean) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    steps = range(1, len(losses) + 1)
    ax.plot(steps, losses, color="#9bb7d4", linewidth=0.8, label="step")
    smooth = [sum(losses[max(0, i - 9):i + 1]) / len(losses[max(0, i - 9):i + 1])
              for i in range(len(losses))]
    ax.plot(steps, smooth, color="#1f4e79", linewidth=1.6, label="10-step mean")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per written token (nats)")
    ax.set_title(title, fontsize=10)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def load_trained(out_dir: Path | str, *, device: str = "cpu") -> Any:
    """A trained model as a ``(model, tokenizer)`` pair for :class:`tim.Runtime`: the card's
    base model with the adapter merged in (:func:`tim.models.trained.merge_lora`; no peft
    needed), or the full model's folder."""
    from tim.models.loading import load_model
    from tim.models.trained import adapter_problem, merge_lora

    out_dir = Path(out_dir)
    card_path = out_dir / "card.json"
    if not card_path.exists():
        raise TimError(f"{out_dir} holds no card.json: it is not the output of tim train "
                       f"(or the run has not finished)")
    card = json.loads(card_path.read_text())
    if card["method"] == "full":
        loaded = load_model(str(out_dir / "model"), device=device)
        return loaded.model, loaded.tokenizer
    problem = adapter_problem(out_dir / "adapter")
    if problem is not None:
        raise TimError(f"{out_dir}: {problem}")
    base = load_model(card["base_model"], device=device)
    merge_lora(base.model, out_dir / "adapter")
    return base.model, base.tokenizer
