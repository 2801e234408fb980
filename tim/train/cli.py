"""``tim train``: fine-tune a model on the views tim shows it while it decodes task trees."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tim.errors import TimError
from tim.terminal import OneLineParser, int_at_least

from .families import FAMILIES
from .gold import GoldConfig
from .loop import TrainConfig
from .recipe import DataConfig, run_training

__all__ = ["build_parser", "main_train"]

QUICK = dict(model="tiny-llama", families="chain,records", sizes="1,2", per_size=2, steps=4,
             rows_per_step=1, max_len=2048, lr=1e-3)


def _csv(kind):
    def parse(text: str):
        try:
            return tuple(kind(part) for part in text.split(",") if part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got "
                                             f"{text!r}") from None
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="tim train", description=__doc__)
    p.add_argument("--out", type=Path, required=True,
                   help="output folder (adapter or model, card.json, loss.png); a rerun "
                        "resumes from its checkpoint")
    p.add_argument("--model", default="smollm2-135m",
                   help="base model: a bundled name, an HF folder or id, or a .gguf file")
    # the defaults are the recipe of the shipped smollm2-135m-tree (docs/training.md)
    p.add_argument("--families", type=_csv(str), default=("records", "chain", "search"),
                   help=f"task families, comma-separated, of {', '.join(FAMILIES)}")
    p.add_argument("--sizes", type=_csv(int), default=(1, 2, 3, 4, 5),
                   help="question sizes (each family's tree has 2**size leaves)")
    p.add_argument("--per-size", type=int_at_least(1), default=30,
                   help="training questions per family and size")
    p.add_argument("--pruning", default="buffer:0@conclusion",
                   help="the pruning rule the model will run under")
    p.add_argument("--positions", default="shift", choices=["shift", "reencode", "keep"])
    p.add_argument("--method", default="lora", choices=["lora", "full"])
    p.add_argument("--lora-r", type=int_at_least(1), default=16)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    p.add_argument("--steps", type=int_at_least(1), default=400)
    p.add_argument("--rows-per-step", type=int_at_least(1), default=2)
    p.add_argument("--max-len", type=int_at_least(16), default=1024,
                   help="tokens per packed row")
    p.add_argument("--trace", default="tree", choices=["tree", "flat-truncate", "flat-sliding"],
                   help="tree: tim's views (default); flat-*: the flat baseline's windows of "
                        "the same solver steps")
    p.add_argument("--window", type=int_at_least(16), default=1024,
                   help="the flat baseline's window W (tree views need no window)")
    p.add_argument("--no-share-prefixes", action="store_true",
                   help="pack views without sharing their common prefixes")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int_at_least(0), default=0)
    p.add_argument("--threads", type=int_at_least(1), default=None,
                   help="torch threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true",
                   help="a seconds-long check of the pipeline on a tiny random model")
    return p


def main_train(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, _csv(int)(value) if name == "sizes" else
                    _csv(str)(value) if name == "families" else value)
    try:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        unknown = [f for f in args.families if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown task family {unknown[0]!r}: choose from "
                             f"{', '.join(FAMILIES)}")
        data = DataConfig(families=args.families, sizes=args.sizes, per_size=args.per_size,
                          seed_start=args.seed * 100_000, max_len=args.max_len,
                          share_prefixes=not args.no_share_prefixes, trace=args.trace,
                          window=args.window,
                          gold=GoldConfig(pruning=args.pruning, positions=args.positions))
        config = TrainConfig(method=args.method, lora_r=args.lora_r,
                             lora_alpha=2 * args.lora_r, dtype=args.dtype, steps=args.steps,
                             rows_per_step=args.rows_per_step, lr=args.lr, seed=args.seed,
                             warmup_steps=min(10, args.steps // 10))
        result = run_training(args.model, data, config, args.out)
    except (TimError, ValueError, OSError) as exc:
        print(f"tim train: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tim train: interrupted; rerun the same command to resume from "
              f"{args.out / 'checkpoint.pt'}", file=sys.stderr)
        return 130
    print(f"trained {len(result.losses)} steps, {result.num_tokens:,} tokens, final loss "
          f"{result.losses[-1]:.4f}; wrote {args.out}/card.json and loss.png")
    return 0
