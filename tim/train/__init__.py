"""``tim.train``: fine-tune a model on exactly the views tim shows it while it decodes.

Pipeline: a task family's question and gold tree (:mod:`.families`) is written through the
engine (:mod:`.gold`); the run record gives every view behind every written token
(:mod:`.views`); views are packed into rows that share their prefixes (:mod:`.pack`); the
loop trains LoRA or the full model on them (:mod:`.loop`); :mod:`.recipe` ties it together
and ``tim train`` (:mod:`.cli`) runs it. See docs/training.md.
"""

from __future__ import annotations

from .families import FAMILIES, HELD_OUT_SEEDS, TRAIN_SEEDS, Example, make_example
from .gold import GoldConfig, GoldWriter
from .loop import TrainConfig, TrainResult, train
from .pack import PackedRow, pack_views
from .recipe import DataConfig, build_rows, build_views, load_trained, run_training
from .views import IGNORE, TrainingView, record_views

__all__ = ["FAMILIES", "HELD_OUT_SEEDS", "TRAIN_SEEDS", "Example", "make_example",
           "GoldConfig", "GoldWriter", "TrainConfig", "TrainResult", "train", "PackedRow",
           "pack_views", "DataConfig", "build_rows", "build_views", "load_trained",
           "run_training", "IGNORE", "TrainingView", "record_views", "main_train"]


def main_train(argv=None) -> int:
    """``tim train`` (:func:`tim.train.cli.main_train`)."""
    from .cli import main_train as run

    return run(argv)
