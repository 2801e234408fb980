"""The whole recipe: tokenizer, both training pools, both models, the evaluation, the report.

Everything is generated and trained here; nothing is downloaded. Checkpoints go under
``<cache>/<name>/`` (``tree/``, ``flat/``: Hugging Face folders with the tokenizer), next to
``config.json``, ``outcomes.json``, ``report.md`` and ``accuracy.png``.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .data import EVAL_SEEDS, TRAIN_SEEDS, corpus_texts, encode_problem, flat_rows, tree_rows
from .evaluate import CONFIGS, RunOutcome, run_config
from .report import Cell, aggregate
from .task import Problem
from .tokenizer import train_tokenizer
from .train import ModelConfig, TrainConfig, TrainResult, train

__all__ = ["RecipeConfig", "RecipeResult", "QUICK", "FULL", "build_pools", "run_recipe",
           "load_recipe"]


@dataclass(frozen=True)
class RecipeConfig:
    """What to train and evaluate. ``rows_per_height``: training rows drawn per height for
    each pool (problems are added until a height has that many)."""

    name: str
    model: ModelConfig
    train: TrainConfig
    train_heights: tuple[int, ...]
    eval_heights: tuple[int, ...]
    num_questions: int
    k: int = 0
    vocab_size: int = 384
    rows_per_height: int = 3000
    configs: tuple[str, ...] = CONFIGS

    def __post_init__(self) -> None:
        for name in ("train_heights", "eval_heights"):
            heights = getattr(self, name)
            if not heights or any(not isinstance(h, int) or not 1 <= h <= 12 for h in heights):
                raise ValueError(f"{name} must be heights in 1..12, got {heights!r}")
        if not isinstance(self.num_questions, int) or self.num_questions < 1:
            raise ValueError(f"num_questions must be an int >= 1, got {self.num_questions!r}")
        if not isinstance(self.k, int) or self.k < 0:
            raise ValueError(f"k must be an int >= 0, got {self.k!r}")
        unknown = [c for c in self.configs if c not in CONFIGS]
        if unknown or not self.configs:
            raise ValueError(f"configs must be among {CONFIGS}, got {self.configs!r}")
        if self.vocab_size != self.model.vocab_size:
            raise ValueError(f"vocab_size ({self.vocab_size!r}) must equal the model's "
                             f"({self.model.vocab_size!r})")


QUICK = RecipeConfig(
    name="quick",
    model=ModelConfig(vocab_size=384, hidden_size=32, num_layers=1, num_heads=2,
                      intermediate_size=64, window=256),
    train=TrainConfig(steps=4, tokens_per_step=512, warmup_steps=2),
    train_heights=(1, 2, 3), eval_heights=(2,), num_questions=1,
    rows_per_height=40, configs=("tree-shift", "tree-keep", "flat-truncate", "flat-sliding"),
)
FULL = RecipeConfig(
    name="full",
    model=ModelConfig(vocab_size=384, hidden_size=128, num_layers=4, num_heads=4,
                      intermediate_size=512, window=256),
    train=TrainConfig(steps=1000, tokens_per_step=2048),
    train_heights=(2, 3, 4, 5, 6, 7), eval_heights=(2, 3, 4, 5, 6, 7), num_questions=10,
    rows_per_height=3500, k=0,
)


@dataclass
class RecipeResult:
    """What :func:`run_recipe` produced."""

    folder: Path
    training: dict[str, TrainResult] = field(default_factory=dict)
    outcomes: list[RunOutcome] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)

    @property
    def eval_wall_time_s(self) -> float:
        """The runs' wall times, summed."""
        return sum(o.wall_time_s for o in self.outcomes)


def build_pools(tokenizer: Any, cfg: RecipeConfig) -> dict[str, list]:
    """Training rows for both models from the same training questions."""
    rng = random.Random(cfg.train.seed)
    pools: dict[str, list] = {"tree": [], "flat": []}
    for height in cfg.train_heights:
        seeds = iter(TRAIN_SEEDS)  # (height, seed) pairs differ across heights
        counts = {"tree": 0, "flat": 0}
        while min(counts.values()) < cfg.rows_per_height:
            enc = encode_problem(tokenizer, Problem(height=height, seed=next(seeds)))
            rows = {"tree": tree_rows(tokenizer, enc, k=cfg.k),
                    "flat": flat_rows(enc, window=cfg.model.window, rng=rng)}
            for kind, new in rows.items():
                if counts[kind] < cfg.rows_per_height:
                    pools[kind] += new
                    counts[kind] += len(new)
    return pools


def run_recipe(cfg: RecipeConfig, *, cache: Path, reuse: bool = False,
               progress: Any = None) -> RecipeResult:
    """Train (or, with ``reuse``, load checkpoints trained with this very config) and
    evaluate; write ``outcomes.json`` into the recipe's folder."""
    import torch

    from tim.models import load_model

    folder = cache / cfg.name
    result = RecipeResult(folder=folder)
    config_json = json.dumps(asdict(cfg), indent=1, sort_keys=True)
    ready = reuse and (folder / "config.json").is_file() \
        and (folder / "config.json").read_text() == config_json \
        and all((folder / kind / "config.json").is_file() for kind in ("tree", "flat"))
    if ready:
        training = json.loads((folder / "training.json").read_text())
        result.training = {k: TrainResult(**{**v, "losses": tuple(v["losses"])})
                           for k, v in training.items()}
    else:
        tokenizer = train_tokenizer(corpus_texts(cfg.train_heights), vocab_size=cfg.vocab_size)
        pools = build_pools(tokenizer, cfg)
        for kind in ("tree", "flat"):
            result.training[kind] = train(pools[kind], model_cfg=cfg.model, train_cfg=cfg.train,
                                          tokenizer=tokenizer, folder=folder / kind,
                                          label=f"train {kind}", progress=progress)
        (folder / "training.json").write_text(
            json.dumps({k: asdict(v) for k, v in result.training.items()}))
        (folder / "config.json").write_text(config_json)
    tree, flat = load_model(folder / "tree"), load_model(folder / "flat")
    problems = [Problem(height=h, seed=s) for h in cfg.eval_heights
                for s in EVAL_SEEDS[: cfg.num_questions]]
    task = progress.add_task("evaluate", total=len(problems) * len(cfg.configs)) \
        if progress is not None else None
    with torch.inference_mode():
        for config in cfg.configs:
            for problem in problems:
                result.outcomes.append(run_config(
                    config, tree_model=tree.model, flat_model=flat.model,
                    tokenizer=tree.tokenizer, problem=problem, k=cfg.k,
                    window=cfg.model.window))
                if task is not None:
                    progress.update(task, advance=1,
                                    description=f"evaluate {config} h={problem.height}")
    (folder / "outcomes.json").write_text(json.dumps(
        [asdict(o) for o in result.outcomes], indent=0))
    result.cells = aggregate(result.outcomes, window=cfg.model.window)
    return result


def load_recipe(cfg: RecipeConfig, *, cache: Path) -> RecipeResult:
    """The result of an earlier :func:`run_recipe` with this very config, from its files."""
    folder = cache / cfg.name
    config_json = json.dumps(asdict(cfg), indent=1, sort_keys=True)
    if not (folder / "outcomes.json").is_file() or \
            (folder / "config.json").read_text() != config_json:
        raise ValueError(f"no finished run of the {cfg.name!r} recipe with this config in {folder}")
    training = json.loads((folder / "training.json").read_text())
    result = RecipeResult(folder=folder)
    result.training = {k: TrainResult(**{**v, "losses": tuple(v["losses"])})
                       for k, v in training.items()}
    result.outcomes = [RunOutcome(**o) for o in json.loads((folder / "outcomes.json").read_text())]
    result.cells = aggregate(result.outcomes, window=cfg.model.window)
    return result
