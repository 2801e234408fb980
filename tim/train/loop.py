"""The training loop: LoRA or a full fine-tune of any causal LM on packed rows, with
gradient accumulation, a cosine schedule, checkpoints it resumes from, and a card.

Everything that decides the result is a function of the config and the step number: the
rows a step takes, the learning rate, the initial adapter (seeded). So a run killed at any
point and started again with the same config and rows resumes from its last checkpoint to
the same weights as a run never stopped (``tests/train/test_loop.py`` checks it bit for
bit on one thread).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .pack import PackedRow, collate
from .views import IGNORE

__all__ = ["TrainConfig", "TrainResult", "train", "rows_hash", "learning_rate"]

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    """How to fine-tune.

    Parameters
    ----------
    method : str
        ``"lora"`` (peft adapters on every linear layer; the base stays frozen) or
        ``"full"``.
    lora_r, lora_alpha : int
        The adapters' rank and scale.
    dtype : str
        ``"bf16"`` (autocast; weights and optimizer stay fp32) or ``"fp32"``.
    steps : int
        Optimizer steps.
    rows_per_step : int
        Packed rows per optimizer step, fed ``micro_rows`` at a time (gradient
        accumulation over ``rows_per_step // micro_rows`` forwards).
    lr, warmup_steps, min_lr_ratio
        Peak learning rate, linear warm-up, then a cosine down to ``lr * min_lr_ratio``.
    seed : int
        Seeds the adapters' initialisation and the order of the rows.
    checkpoint_every : int
        Steps between checkpoints (and one at the end).
    """

    method: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    dtype: str = "bf16"
    steps: int = 100
    rows_per_step: int = 2
    micro_rows: int = 1
    lr: float = 1e-3
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    seed: int = 0
    checkpoint_every: int = 20

    def __post_init__(self) -> None:
        if self.method not in ("lora", "full"):
            raise ValueError(f"method must be 'lora' or 'full', got {self.method!r}")
        if self.dtype not in ("bf16", "fp32"):
            raise ValueError(f"dtype must be 'bf16' or 'fp32', got {self.dtype!r}")
        for name in ("lora_r", "lora_alpha", "steps", "rows_per_step", "micro_rows",
                     "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.rows_per_step % self.micro_rows:
            raise ValueError(f"rows_per_step ({self.rows_per_step}) must be a multiple of "
                             f"micro_rows ({self.micro_rows})")
        if not (self.lr > 0 and 0 <= self.min_lr_ratio <= 1 and self.warmup_steps >= 0):
            raise ValueError(f"need lr > 0, 0 <= min_lr_ratio <= 1, warmup_steps >= 0; got "
                             f"{self.lr!r}, {self.min_lr_ratio!r}, {self.warmup_steps!r}")


@dataclass
class TrainResult:
    """What a run did: the per-step losses (mean over labels), tokens and labels seen."""

    losses: list[float] = field(default_factory=list)
    num_tokens: int = 0
    num_labels: int = 0
    wall_time_s: float = 0.0
    resumed_from: int = 0  # the step a resumed run started at (0: from scratch)


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based).

    >>> c = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.0)
    >>> [round(learning_rate(c, s), 3) for s in (0, 9, 10, 55, 99)]
    [0.1, 1.0, 1.0, 0.5, 0.0]
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.steps - 1 - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def rows_hash(rows: Sequence[PackedRow]) -> str:
    """SHA-256 of the rows' tokens, positions, labels and parents: the data's identity."""
    digest = hashlib.sha256()
    for row in rows:
        for part in (row.input_ids, row.position_ids, row.labels, row.parents):
            digest.update(json.dumps(part).encode())
    return digest.hexdigest()


def step_rows(config: TrainConfig, num_rows: int, step: int) -> list[int]:
    """Indices of the rows step ``step`` trains on: epochs of a seeded shuffle, so the
    choice depends on the step alone."""
    need = config.rows_per_step
    out = []
    for k in range(step * need, (step + 1) * need):
        epoch, i = divmod(k, num_rows)
        order = list(range(num_rows))
        random.Random(f"{config.seed}:{epoch}").shuffle(order)
        out.append(order[i])
    return out


def prepare_model(model: Any, config: TrainConfig) -> Any:
    """``model`` ready to train: LoRA-wrapped (seeded) or all parameters trainable, with
    SDPA attention (which takes the packed rows' 4D masks)."""
    model.set_attn_implementation("sdpa")
    model.train()
    if config.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(config.seed)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def row_loss(model: Any, batch: dict[str, torch.Tensor], dtype: str) -> tuple[torch.Tensor, int]:
    """(sum of the labels' cross-entropy, number of labels) of one batch of rows."""
    ctx = (torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16"
           and batch["input_ids"].device.type == "cpu" else nullcontext())
    with ctx:
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       attention_mask=batch["attention_mask"]).logits  # (B, L, V)
    labels = batch["labels"]
    keep = labels != IGNORE
    loss = torch.nn.functional.cross_entropy(logits[keep].float(), labels[keep],
                                             reduction="sum")
    return loss, int(keep.sum())


def train(model: Any, rows: Sequence[PackedRow], config: TrainConfig, out_dir: Path, *,
          on_step: Callable[[int, float, TrainResult], None] | None = None,
          stop_after: int | None = None) -> tuple[Any, TrainResult]:
    """Train ``model`` on ``rows``; checkpoint into ``out_dir`` and resume from it.

    A checkpoint of another config or other rows is refused with the reason (a resumed run
    must be the run that was stopped). ``on_step(step, loss, result)`` runs after every
    optimizer step; ``stop_after`` ends the run after that step (a stand-in for a kill,
    for tests). Returns the trained model (LoRA: the peft model) and the result.
    """
    if not rows:
        raise ValueError("no training rows: the data produced nothing to train on")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = prepare_model(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    result = TrainResult()
    identity = {"config": asdict(config), "rows": rows_hash(rows)}
    start = _resume(out_dir / CHECKPOINT, identity, model, optimizer, result)
    began = time.perf_counter() - result.wall_time_s
    device = next(model.parameters()).device
    for step in range(start, config.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        chosen = [rows[i] for i in step_rows(config, len(rows), step)]
        num_labels = sum(r.num_labels for r in chosen)
        total = 0.0
        optimizer.zero_grad(set_to_none=True)
        for k in range(0, len(chosen), config.micro_rows):
            batch = {n: t.to(device) for n, t in collate(chosen[k:k + config.micro_rows]).items()}
            loss, _ = row_loss(model, batch, config.dtype)
            (loss / max(1, num_labels)).backward()
            total += loss.item()
        optimizer.step()
        result.losses.append(total / max(1, num_labels))
        result.num_tokens += sum(len(r) for r in chosen)
        result.num_labels += num_labels
        result.wall_time_s = time.perf_counter() - began
        done = step + 1
        if done % config.checkpoint_every == 0 or done == config.steps or done == stop_after:
            _save(out_dir / CHECKPOINT, identity, done, model, optimizer, result)
        if on_step is not None:
            on_step(step, result.losses[-1], result)
        if stop_after is not None and done >= stop_after:
            break
    model.eval()
    return model, result


def _trainable_state(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _save(path: Path, identity: dict, step: int, model: Any, optimizer: Any,
          result: TrainResult) -> None:
    """Write the checkpoint atomically: a kill mid-write leaves the last one whole."""
    tmp = path.with_suffix(".tmp")
    torch.save({"identity": identity, "step": step, "params": _trainable_state(model),
                "optimizer": optimizer.state_dict(), "result": asdict(result)}, tmp)
    os.replace(tmp, path)


def _resume(path: Path, identity: dict, model: Any, optimizer: Any,
            result: TrainResult) -> int:
    if not path.exists():
        return 0
    try:
        state = torch.load(path, weights_only=False)
    except Exception as exc:  # a torn or foreign file: say so, never train on top of it
        raise ValueError(f"cannot read the checkpoint {path.name} in {path.parent}: {exc}; "
                         f"delete it to start over") from exc
    if state["identity"] != identity:
        theirs, ours = state["identity"], identity
        what = "the rows (training data)" if theirs["rows"] != ours["rows"] else "the config"
        raise ValueError(f"the checkpoint in {path.parent} was made with other {what}; use "
                         f"another output folder, or delete {path.name} to start over")
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["params"].items():
            named[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    for key, value in state["result"].items():
        setattr(result, key, value)
    result.resumed_from = state["step"]
    return state["step"]


def machine() -> dict[str, Any]:
    """The machine a figure came from: CPU model, cores, torch threads and version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}
