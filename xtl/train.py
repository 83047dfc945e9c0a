"""The training loop: AdamW, linear warmup then decay, clipping, dev evaluation, best + last.

One explicit loop (accelerate places tensors and handles mixed precision and accumulation) so
the whole path reads top to bottom. Every random choice flows from `seed`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from xtl import evaluate
from xtl.errors import ConfigError
from xtl.features import features
from xtl.models import XtlModel, save_checkpoint
from xtl.progress import bar as progress_bar
from xtl.sources import Split
from xtl.tasks import Task, format_module


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_score: float = float("-inf")
    best_step: int = 0
    steps: int = 0
    precision: str = "fp32"
    seconds: float = 0.0


def resolve_precision(requested: str) -> str:
    """'auto': bf16 where the hardware has it (CUDA or AVX-512/AMX CPUs), fp16 on older GPUs."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def _accelerator(precision: str, grad_accum: int) -> Accelerator:
    # accelerate keeps one global state per process; a notebook or test may fit twice.
    AcceleratorState._reset_state(reset_partial_state=True)
    mixed = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[precision]
    return Accelerator(mixed_precision=mixed, gradient_accumulation_steps=grad_accum,
                       cpu=not torch.cuda.is_available())


def _optimizer(model: torch.nn.Module, hp: dict) -> torch.optim.Optimizer:
    # No weight decay on biases and LayerNorm weights, as in the BERT/XLM-R recipes.
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": hp["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=hp["learning_rate"], eps=hp["adam_epsilon"])


def fit(model: XtlModel, tokenizer: Any, task: Task, train: Split, dev: Split, hp: dict,
        seed: int, checkpoint_dir: Path, history_path: Path, meta: dict) -> FitResult:
    """Train `model`'s head for `task` on `train`; keep the best checkpoint by `dev` score."""
    if hp["batch_size"] < 1 or hp["learning_rate"] <= 0:
        raise ConfigError(f"batch_size must be >= 1 and learning_rate > 0, got {hp}")
    set_seed(seed)
    result = FitResult(precision=resolve_precision(hp["precision"]))
    accelerator = _accelerator(result.precision, hp["grad_accum"])
    collate = format_module(task.format).collator(tokenizer)
    train_feats = features(task, train, tokenizer, hp, train=True)
    loader = DataLoader(train_feats, batch_size=hp["batch_size"], shuffle=True,
                        collate_fn=collate, generator=torch.Generator().manual_seed(seed))
    steps_per_epoch = math.ceil(len(loader) / hp["grad_accum"])
    total = max(1, math.ceil(steps_per_epoch * hp["epochs"]))
    optimizer = _optimizer(model, hp)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp["warmup_ratio"] * total), total)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    loss_fn = format_module(task.format).loss
    history_path.parent.mkdir(parents=True, exist_ok=True)
    history = open(history_path, "w", encoding="utf-8")
    start, seen, bad_evals, stop = time.perf_counter(), 0, 0, False
    bar = progress_bar(total=total, desc=f"train {task.name}")

    def evaluate_and_keep(step: int) -> None:
        nonlocal bad_evals, stop
        score = evaluate.score_split(accelerator.unwrap_model(model), tokenizer, task, dev, hp)
        entry = {"step": step, "dev_score": score, "epoch": step / steps_per_epoch}
        result.history.append(entry)
        history.write(json.dumps(entry) + "\n")
        if score > result.best_score:
            result.best_score, result.best_step, bad_evals = score, step, 0
            save_checkpoint(accelerator.unwrap_model(model), tokenizer, checkpoint_dir / "best",
                            {**meta, "step": step, "dev_score": score, "which": "best"})
        else:
            bad_evals += 1
            stop = hp["patience"] > 0 and bad_evals >= hp["patience"]

    model.train()
    step = 0
    while step < total and not stop:
        for batch in loader:
            with accelerator.accumulate(model):
                loss = loss_fn(model(task.name, batch), batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), hp["max_grad_norm"])
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            seen += len(batch["input_ids"])
            if not accelerator.sync_gradients:
                continue
            step += 1
            entry = {"step": step, "loss": loss.item(), "lr": scheduler.get_last_lr()[0],
                     "examples_per_s": seen / (time.perf_counter() - start)}
            result.history.append(entry)
            history.write(json.dumps(entry) + "\n")
            bar.update(1)
            bar.set_postfix(loss=f"{entry['loss']:.3f}", refresh=False)
            at_epoch_end = step % steps_per_epoch == 0 or step == total
            if (hp["eval_every"] and step % hp["eval_every"] == 0) or (
                    not hp["eval_every"] and at_epoch_end):
                evaluate_and_keep(step)
                model.train()
            if step >= total or stop:
                break
    if not result.history or "dev_score" not in result.history[-1]:
        evaluate_and_keep(step)
    bar.close()
    history.close()
    save_checkpoint(accelerator.unwrap_model(model), tokenizer, checkpoint_dir / "last",
                    {**meta, "step": step, "which": "last"})
    result.steps, result.seconds = step, time.perf_counter() - start
    return result
