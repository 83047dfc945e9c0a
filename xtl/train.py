"""The training loop: AdamW, linear warmup then decay, clipping, dev evaluation, best + last.

One explicit loop, readable top to bottom; accelerate places the model, runs mixed precision
and the fp16 GradScaler. Every random choice flows from `seed`, and a run can die anywhere and
continue from its last resumable state (`xtl.resume`) to the same bits on CPU: an epoch's
batches are a function of (seed, epoch) (`xtl.sampling`) and every other random stream is saved.
One process, one device: cells do not shard across GPUs.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from xtl import evaluate, resume
from xtl.config import HPARAM_DEFAULTS, HPARAM_TYPES, check_hparam
from xtl.errors import ConfigError, DataError, ModelError, unknown
from xtl.faults import fault
from xtl.features import features
from xtl.models import XtlModel, save_checkpoint
from xtl.progress import bar as progress_bar
from xtl.sampling import BatchPlan
from xtl.sources import Split
from xtl.store import atomic_write_text
from xtl.tasks import Task, format_module

COLLAPSE_MARGIN = 1.0  # accuracy points above the majority-class share that still count as collapse


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_score: float = float("-inf")
    best_step: int = 0
    steps: int = 0
    precision: str = "fp32"
    seconds: float = 0.0
    device: str = "cpu"
    padded_fraction: float = 0.0  # padding tokens / all tokens in the training batches
    collapsed: bool = False  # dev score never rose above the majority class (see `_collapsed`)
    flags: list[str] = field(default_factory=list)  # for metrics.json: ["collapsed"]
    resumed_from: int = 0  # optimizer step this call continued from (0: a fresh start)


@dataclass
class Progress:
    """The loop's position and bookkeeping: everything a resumed run needs besides tensors."""

    step: int = 0
    epoch: int = 0
    position: int = 0  # batches of `epoch` already trained on
    best_score: float = float("-inf")
    best_step: int = 0
    bad_evals: int = 0
    stop: bool = False
    pad_tokens: int = 0
    tokens: int = 0
    history: list[dict] = field(default_factory=list)


# --- devices, precision and input checks ----------------------------------------------------

def resolve_device(requested: str = "auto") -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a device that exists here, else `ConfigError`."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    if requested == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", requested)
    if match is None:
        raise unknown("device", requested, ("auto", "cpu", "cuda", "cuda:N"))
    if not torch.cuda.is_available():
        raise ConfigError(f"device {requested!r}: CUDA is not available here (torch "
                          f"{torch.__version__}, CUDA build {torch.version.cuda}); use 'cpu' or "
                          "'auto'")
    index = int(match.group(1)) if match.group(1) else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device {requested!r}: only {torch.cuda.device_count()} CUDA "
                          f"device(s) here (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index)


def resolve_precision(requested: str, device: torch.device | str | None = None) -> str:
    """'auto': bf16 where the device has it (CUDA or AVX-512/AMX CPUs), fp16 on older GPUs.

    `device` None means the default device ('auto'). An explicit request the device cannot
    honour is an error, not a silent fp32 run.
    """
    device = resolve_device("auto") if device is None else torch.device(device)
    cuda = device.type == "cuda"
    bf16_ok = (torch.cuda.is_bf16_supported() if cuda
               else torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if requested == "auto":
        return "bf16" if bf16_ok else ("fp16" if cuda else "fp32")
    if requested == "fp16" and not cuda:
        raise ConfigError("precision 'fp16' needs a CUDA device (fp16 with a GradScaler); on "
                          "CPU use 'bf16' or 'fp32'")
    if requested == "bf16" and cuda and not bf16_ok:
        raise ConfigError(f"precision 'bf16' is not supported by {torch.cuda.get_device_name()}; "
                          "use 'fp16' or 'auto'")
    if requested not in ("bf16", "fp16", "fp32"):
        raise unknown("precision", requested, ("auto", "bf16", "fp16", "fp32"))
    return requested


def check_inputs(model: XtlModel, task: Task, train: Split, dev: Split, hp: dict) -> None:
    """Raise for every bad input before any work, naming the offending value."""
    for key, value in hp.items():
        if key in HPARAM_TYPES:
            check_hparam(key, value, "fit")
    for key in ("eval_every", "patience", "save_every"):
        if hp[key] < 0:
            raise ConfigError(f"fit: {key} = {hp[key]!r} must be >= 0")
    for split in (train, dev):
        if len(split.rows) == 0:
            raise DataError(f"{split.task}/{split.language}/{split.split} has no rows to "
                            f"{'train' if split is train else 'evaluate'} on")
    if task.name not in model.heads:
        raise ModelError(f"the model has no head for task {task.name!r}; it has "
                         f"{sorted(model.heads)}")
    _check_labels(task, [train, dev])


def _check_labels(task: Task, splits: list[Split]) -> None:
    """Class ids must index the task's classes, which sized the head (-1, unlabelled, too)."""
    if not task.label_names:
        return
    n = len(task.label_names)
    for split in splits:
        if "label" not in split.rows.column_names:
            continue
        column = split.rows.with_format("arrow")["label"]
        if not pa.types.is_integer(column.type):
            continue  # per-token or span labels: the format checks its own
        labels = column.to_numpy()
        bad = labels[(labels < 0) | (labels >= n)]
        if len(bad):
            raise DataError(f"{split.task}/{split.language}/{split.split}: label id {int(bad[0])}"
                            f" ({len(bad)} row(s)) is outside the {n} classes of the "
                            f"{task.name!r} head ({', '.join(map(str, task.label_names))})")


# --- the pieces of the loop -----------------------------------------------------------------

def make_accelerator(precision: str, device: torch.device) -> Accelerator:
    # accelerate keeps one global state per process; a notebook or test may fit twice.
    AcceleratorState._reset_state(reset_partial_state=True)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # accelerate trains on the current CUDA device
    mixed = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[precision]
    return Accelerator(mixed_precision=mixed, cpu=device.type == "cpu")


def make_optimizer(model: torch.nn.Module, hp: dict) -> torch.optim.Optimizer:
    # No weight decay on biases and LayerNorm weights, as in the BERT/XLM-R recipes.
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": hp["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=hp["learning_rate"], eps=hp["adam_epsilon"])


def _enable_gradient_checkpointing(model: XtlModel) -> None:
    encoder = model.encoder
    if not getattr(encoder, "supports_gradient_checkpointing", False):
        raise ModelError(f"{type(encoder).__name__} does not support gradient checkpointing; "
                         "set gradient_checkpointing: false")
    # transformers 5 renamed it (the old name warns); non-reentrant works with frozen inputs.
    if hasattr(encoder, "activation_checkpointing_enable"):
        encoder.activation_checkpointing_enable({"use_reentrant": False})
    else:
        encoder.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})


def lengths(feats: Any) -> np.ndarray:
    """Tokens per example, read from the Arrow column (no Python lists of every row)."""
    return pc.list_value_length(feats.with_format("arrow")["input_ids"]).to_numpy()


def _groups(batches: Iterable[dict], size: int) -> Iterator[list[dict]]:
    """Micro-batches in groups of `size` (gradient accumulation); the last may be shorter."""
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def train_step(accelerator: Accelerator, model: torch.nn.Module, optimizer: Any, scheduler: Any,
               task: Task, group: list[dict], max_grad_norm: float) -> tuple[float, int, int]:
    """One optimizer step over a group of micro-batches: (mean loss, padding tokens, tokens)."""
    loss_fn = format_module(task.format).loss
    losses, pad, tokens = [], 0, 0
    for i, batch in enumerate(group):
        mask = batch["attention_mask"]
        pad, tokens = pad + int((mask == 0).sum()), tokens + mask.numel()
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        # Gradients are all-reduced after the last micro-batch only (a no-op on one process).
        sync = accelerator.no_sync(model) if i < len(group) - 1 else nullcontext()
        with sync:
            with accelerator.autocast():
                loss = loss_fn(model(task.name, batch), batch)
            # The mean over the group's real size: an epoch's last group may be short.
            accelerator.backward(loss / len(group))
        losses.append(loss.item())
    accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()  # accelerate skips it when the fp16 scaler skipped the optimizer step
    optimizer.zero_grad()
    return sum(losses) / len(losses), pad, tokens


def _snapshot(accelerator: Accelerator, model: Any, optimizer: Any, scheduler: Any,
              progress: Progress, loader_rng: torch.Generator) -> dict:
    return {"model": accelerator.unwrap_model(model).state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": accelerator.scaler.state_dict() if accelerator.scaler else None,
            "progress": asdict(progress), "rng": resume.capture_rng(loader_rng)}


def _restore(saved: dict, accelerator: Accelerator, model: Any, optimizer: Any, scheduler: Any,
             loader_rng: torch.Generator) -> Progress:
    accelerator.unwrap_model(model).load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if accelerator.scaler is not None and saved["scaler"]:
        accelerator.scaler.load_state_dict(saved["scaler"])
    resume.restore_rng(saved["rng"], loader_rng)  # last: nothing random may run after it
    return Progress(**saved["progress"])


def _open_history(path: Path, entries: list[dict]):
    """history.jsonl holding exactly `entries` (a resumed run drops lines past its step)."""
    atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in entries))
    return open(path, "a", encoding="utf-8", buffering=1)  # line-buffered: a kill keeps lines


def majority_share(task: Task, dev: Split) -> float | None:
    """The dev accuracy of always predicting the most frequent class (None: not accuracy)."""
    if task.metric != "accuracy" or not task.label_names or "label" not in dev.rows.column_names:
        return None
    labels = dev.rows["label"]
    return 100.0 * Counter(labels).most_common(1)[0][1] / len(labels)


def _collapsed(history: list[dict], majority: float | None) -> bool:
    """Dev accuracy at the majority-class level at EVERY evaluation: the head learned a prior."""
    scores = [h["dev_score"] for h in history if "dev_score" in h]
    return majority is not None and bool(scores) and all(
        s <= majority + COLLAPSE_MARGIN for s in scores)


def _eval_due(step: int, hp: dict, steps_per_epoch: int, total: int) -> bool:
    if hp["eval_every"]:
        return step % hp["eval_every"] == 0
    return step % steps_per_epoch == 0 or step == total


# --- the loop --------------------------------------------------------------------------------

def fit(model: XtlModel, tokenizer: Any, task: Task, train: Split, dev: Split, hp: dict,
        seed: int, checkpoint_dir: Path, history_path: Path, meta: dict) -> FitResult:
    """Train `model` for `task` on `train`; keep the best checkpoint by `dev` score, and `last`.

    If an earlier call with the same cell, data and hyperparameters died, continue from its
    last resumable state in `checkpoint_dir/resume` (a different one is an error).
    """
    hp = {**HPARAM_DEFAULTS, **hp}  # a partial dict (ad-hoc use) gets the kit's defaults
    # Everything that can be wrong is checked before any work.
    check_inputs(model, task, train, dev, hp)
    device = resolve_device(hp["device"])
    precision = resolve_precision(hp["precision"], device)
    set_seed(seed)
    accelerator = make_accelerator(precision, device)
    if hp["gradient_checkpointing"]:
        _enable_gradient_checkpointing(model)

    # Data: tokenised once; each epoch's batches are a function of (seed, epoch).
    train_feats = features(task, train, tokenizer, hp, train=True)
    plan = BatchPlan(lengths(train_feats), hp["batch_size"], seed, hp["group_by_length"])
    collate = format_module(task.format).collator(tokenizer)
    loader_rng = torch.Generator().manual_seed(seed)  # keeps the DataLoader off the global RNG
    steps_per_epoch = math.ceil(len(plan) / hp["grad_accum"])
    total = max(1, math.ceil(steps_per_epoch * hp["epochs"]))

    optimizer = make_optimizer(model, hp)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp["warmup_ratio"] * total), total)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    unwrapped = accelerator.unwrap_model(model)

    # Continue an interrupted call, or mark this one as started (resume.pending).
    store = resume.ResumeStore(checkpoint_dir, resume.identity(
        meta, hp, seed, task.name, train, dev, precision, str(device)))
    saved = store.load()
    if saved is None:
        progress = Progress()
        store.save(0, None)
    else:
        progress = _restore(saved, accelerator, model, optimizer, scheduler, loader_rng)
    resumed_from = progress.step
    history = _open_history(Path(history_path), progress.history)

    def log(entry: dict) -> None:
        progress.history.append(entry)
        history.write(json.dumps(entry) + "\n")

    def evaluate_and_keep() -> None:
        score = evaluate.score_split(unwrapped, tokenizer, task, dev, hp, precision)
        log({"step": progress.step, "dev_score": score,
             "epoch": progress.step / steps_per_epoch})
        if score > progress.best_score:
            progress.best_score, progress.best_step, progress.bad_evals = score, progress.step, 0
            save_checkpoint(unwrapped, tokenizer, Path(checkpoint_dir) / "best",
                            {**meta, "step": progress.step, "dev_score": score, "which": "best"})
        else:
            progress.bad_evals += 1
            progress.stop = hp["patience"] > 0 and progress.bad_evals >= hp["patience"]

    model.train()
    bar = progress_bar(total=total, initial=progress.step, desc=f"train {task.name}")
    start, seen = time.perf_counter(), 0
    while progress.step < total and not progress.stop:
        batches = plan.epoch(progress.epoch)[progress.position:]
        loader = DataLoader(train_feats, batch_sampler=batches, collate_fn=collate,
                            generator=loader_rng)
        for group in _groups(loader, hp["grad_accum"]):
            loss, pad, tokens = train_step(accelerator, model, optimizer, scheduler, task, group,
                                           hp["max_grad_norm"])
            progress.step += 1
            progress.position += len(group)
            progress.pad_tokens += pad
            progress.tokens += tokens
            seen += sum(len(b["input_ids"]) for b in group)
            log({"step": progress.step, "loss": loss, "lr": scheduler.get_last_lr()[0],
                 "padded_fraction": pad / tokens,
                 "examples_per_s": seen / (time.perf_counter() - start)})
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            evaluated = _eval_due(progress.step, hp, steps_per_epoch, total)
            if evaluated:
                evaluate_and_keep()
                model.train()
            # Saved after the evaluation, so the state includes its score and best/.
            if (hp["save_every"] and progress.step % hp["save_every"] == 0) or (
                    not hp["save_every"] and evaluated):
                store.save(progress.step, _snapshot(accelerator, model, optimizer, scheduler,
                                                    progress, loader_rng))
            fault("train_step")
            if progress.step >= total or progress.stop:
                break
        if progress.position >= len(plan):
            progress.epoch, progress.position = progress.epoch + 1, 0
    if not progress.history or "dev_score" not in progress.history[-1]:
        evaluate_and_keep()
    bar.close()
    history.close()

    save_checkpoint(unwrapped, tokenizer, Path(checkpoint_dir) / "last",
                    {**meta, "step": progress.step, "which": "last"})
    store.clear()  # complete: `last` supersedes the resume state
    majority = majority_share(task, dev)
    collapsed = _collapsed(progress.history, majority)
    if collapsed:
        print(f"WARNING: {task.name} collapsed: dev {task.metric} never rose above the majority "
              f"class share ({majority:.1f}) + {COLLAPSE_MARGIN:g} at any evaluation")
    return FitResult(history=progress.history, best_score=progress.best_score,
                     best_step=progress.best_step, steps=progress.step, precision=precision,
                     seconds=time.perf_counter() - start, device=str(device),
                     padded_fraction=progress.pad_tokens / max(1, progress.tokens),
                     collapsed=collapsed, flags=["collapsed"] if collapsed else [],
                     resumed_from=resumed_from)
