"""Train a small Llama from scratch on windows of traces: a plain torch loop.

Both models get the same :class:`ModelConfig` and :class:`TrainConfig`: the same shape,
steps, tokens per step, learning-rate schedule and seed. Only their rows differ.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .views import IGNORE, Window

__all__ = ["ModelConfig", "TrainConfig", "TrainResult", "build_model", "make_batch", "train"]


def _check_positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """A Llama shape. ``window`` is ``max_position_embeddings``, the context window.

    >>> ModelConfig(hidden_size=100, num_heads=3)
    Traceback (most recent call last):
    ...
    ValueError: hidden_size must be a multiple of num_heads (3), got 100
    """

    vocab_size: int = 384
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    window: int = 256

    def __post_init__(self) -> None:
        _check_positive(self, "vocab_size", "hidden_size", "num_layers", "num_heads",
                        "intermediate_size", "window")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size must be a multiple of num_heads ({self.num_heads}), "
                             f"got {self.hidden_size!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Steps of AdamW with linear warm-up then cosine decay; each step packs rows up to
    ``tokens_per_step`` tokens (padded).

    >>> TrainConfig(lr=0.0)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a float > 0, got 0.0
    """

    steps: int = 600
    tokens_per_step: int = 4096
    lr: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        _check_positive(self, "steps", "tokens_per_step", "warmup_steps")
        if not isinstance(self.lr, float) or not self.lr > 0:
            raise ValueError(f"lr must be a float > 0, got {self.lr!r}")


@dataclass(frozen=True)
class TrainResult:
    """What a training run did; ``losses`` is the mean loss of every step."""

    folder: str
    num_params: int
    wall_time_s: float
    losses: tuple[float, ...]
    num_tokens: int
    num_targets: int


def build_model(cfg: ModelConfig, *, eos_token_id: int, seed: int) -> Any:
    """A fresh ``LlamaForCausalLM`` (fp32, tied embeddings, RoPE theta 1e4)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.window, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=eos_token_id, pad_token_id=eos_token_id,
    )
    return LlamaForCausalLM(config)


def make_batch(rows: Sequence[Window], pad_id: int) -> tuple[Any, Any]:
    """Right-padded ``input_ids`` (B, L) int64 and ``targets`` (B, L) int64 (pad: IGNORE).

    Causal attention never lets a real position see the padding after it, so no mask is
    needed.
    """
    import torch

    length = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row.input_ids)] = torch.tensor(row.input_ids)
        targets[i, : len(row.targets)] = torch.tensor(row.targets)
    return ids, targets


def _draw_rows(pool: Sequence[Window], budget: int, rng: random.Random) -> list[Window]:
    rows, used = [], 0
    while used < budget:
        row = pool[rng.randrange(len(pool))]
        rows.append(row)
        used += len(row.input_ids)
    return rows


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(pool: Sequence[Window], *, model_cfg: ModelConfig, train_cfg: TrainConfig,
          tokenizer: Any, folder: Path, label: str, progress: Any = None) -> TrainResult:
    """Train on rows drawn from ``pool``; save model and tokenizer into ``folder``.

    ``progress`` is a ``rich.progress.Progress`` (a task is added to it), or None.
    """
    import torch

    if not pool:
        raise ValueError("the training pool is empty")
    too_long = max(len(r.input_ids) for r in pool)
    if too_long > model_cfg.window:
        raise ValueError(f"a training row has {too_long} tokens, more than the window "
                         f"{model_cfg.window}")
    rng = random.Random(train_cfg.seed)
    model = build_model(model_cfg, eos_token_id=tokenizer.eos_token_id, seed=train_cfg.seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, betas=(0.9, 0.98),
                            weight_decay=train_cfg.weight_decay)
    task = progress.add_task(label, total=train_cfg.steps) if progress is not None else None
    losses, num_tokens, num_targets = [], 0, 0
    start = time.perf_counter()
    for step in range(train_cfg.steps):
        ids, targets = make_batch(_draw_rows(pool, train_cfg.tokens_per_step, rng),
                                  tokenizer.pad_token_id)
        logits = model(input_ids=ids).logits  # (B, L, V)
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, train_cfg)
        opt.step()
        losses.append(loss.item())
        num_tokens += ids.numel()
        num_targets += int((targets != IGNORE).sum())
        if task is not None:
            progress.update(task, advance=1, description=f"{label} loss {losses[-1]:.3f}")
    wall = time.perf_counter() - start
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return TrainResult(folder=str(folder), num_params=sum(p.numel() for p in model.parameters()),
                       wall_time_s=wall, losses=tuple(losses), num_tokens=num_tokens,
                       num_targets=num_targets)
