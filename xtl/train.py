"""The training loop: AdamW, linear warmup then decay, clipping, dev evaluation, best + last.

One explicit loop, readable top to bottom; accelerate places the model, runs mixed precision
and the fp16 GradScaler, and DDP when the cell has several processes. A stage may train SEVERAL
tasks on the shared encoder (one head each): every optimizer step trains one task, drawn by
the multi-task sampler (`xtl.sampling`); a single task is the mixture of one.

Every random choice flows from `seed`, and a run can die anywhere and continue from its last
resumable state (`xtl.resume`) to the same bits on CPU: each task's batches are a function of
(seed, epoch), the task of each step a function of (seed, step), and every other random
stream is saved.

Several processes (`gpus_per_cell`): run under `accelerate launch` / `torchrun`, `fit` is one
rank: each global batch is split across the ranks (the sampler and the batch plans are the
same everywhere), losses and counts are all-reduced, dev scores are the main process's, and
only the main process writes history, checkpoints and resume state. Called with
`processes > 1` from a plain process (a notebook), `fit` starts the ranks itself with torchrun
and loads the trained weights back into `model`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import (
    DataLoaderConfiguration,
    DistributedDataParallelKwargs,
    FullyShardedDataParallelPlugin,
    InitProcessGroupKwargs,
    broadcast_object_list,
    gather_object,
    set_seed,
)
from torch.distributed.checkpoint import state_dict as dcp
from transformers import get_linear_schedule_with_warmup

from xtl import evaluate, metrics, mlm, resume, sampling, smokecaps, tracking
from xtl.errors import ConfigError, DataError, ModelError, XtlError, unknown
from xtl.faults import fault
from xtl.features import features
from xtl.hparams import HPARAM_DEFAULTS, HPARAM_TYPES, TASK_KEYS, check_hparam
from xtl.models import XtlModel, save_checkpoint
from xtl.progress import bar as progress_bar
from xtl.sources import Split
from xtl.store import atomic_write_text
from xtl.tasks import Task, get_format, with_overrides

COLLAPSE_MARGIN = 1.0  # accuracy points above the majority-class share that still count as collapse
PROCESSES_ENV = "XTL_GPUS_PER_CELL"  # the runner's `gpus_per_cell`, for the notebook kernels
STRATEGY_ENV = "XTL_DISTRIBUTED"  # the runner's `distributed`: ddp (default) | fsdp
STRATEGIES = ("ddp", "fsdp")


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    best_score: float = float("-inf")  # the aggregate dev score (one task: its own score)
    best_step: int = 0
    steps: int = 0
    precision: str = "fp32"
    seconds: float = 0.0
    device: str = "cpu"
    padded_fraction: float = 0.0  # padding tokens / all tokens in the training batches
    collapsed: bool = False  # dev score never rose above the majority class (see `_collapsed`)
    flags: list[str] = field(default_factory=list)  # for metrics.json: ["collapsed"]
    resumed_from: int = 0  # optimizer step this call continued from (0: a fresh start)
    best_scores: dict[str, float] = field(default_factory=dict)  # every task's, at best_step
    aggregate: str = "mean"  # how best_score combines best_scores
    task_steps: dict[str, int] = field(default_factory=dict)  # optimizer steps per task
    mixture: list[dict] = field(default_factory=list)  # the sampler's table (xtl.sampling)
    processes: int = 1
    selection: str = ""  # which rule chose the best checkpoint, in words (`selection_rule`)


@dataclass
class Progress:
    """The loop's position and bookkeeping: everything a resumed run needs besides tensors."""

    step: int = 0
    cursors: list[list[int]] = field(default_factory=list)  # per task: [epoch, position]
    best_score: float = float("-inf")
    best_step: int = 0
    best_scores: dict[str, float] = field(default_factory=dict)
    bad_evals: int = 0
    stop: bool = False
    pad_tokens: int = 0
    tokens: int = 0
    history: list[dict] = field(default_factory=list)


@dataclass
class TaskData:
    """One task of the mixture: rows, features, its cursor through its epochs, how to batch,
    and its own hyperparameters (the cell's LOOP values with this task's TASK values)."""

    task: Task
    train: Split
    dev: Split  # the rows the selection scores (`dev_subset`)
    feats: datasets.Dataset
    cursor: sampling.Cursor
    collate: Callable[[list[dict]], dict]
    hp: dict = field(default_factory=dict)
    full_dev: Split | None = None  # the whole dev split (`dev` when no subset is taken)

    def __post_init__(self) -> None:
        if self.full_dev is None:
            self.full_dev = self.dev

    @property
    def auxiliary(self) -> bool:
        """MLM: trained alongside, not selected on (unless it is all the stage trains)."""
        return self.task.format == mlm.FORMAT


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


def check_inputs(model: XtlModel, tasks: list[Task], trains: list[Split], devs: list[Split],
                 hp: dict, task_hps: list[dict] | None = None) -> None:
    """Raise for every bad input before any work, naming the offending value."""
    for key, value in hp.items():
        if key in HPARAM_TYPES:
            check_hparam(key, value, "fit")
    names = [t.name for t in tasks]
    if task_hps is not None:
        if len(task_hps) != len(tasks):
            raise ConfigError(f"fit: {len(task_hps)} per-task hyperparameter sets for "
                              f"{len(tasks)} tasks {names}")
        for name, own in zip(names, task_hps, strict=True):
            for key, value in own.items():
                if key not in TASK_KEYS:
                    raise ConfigError(f"fit: {key!r} of task {name!r} is one value per cell "
                                      f"(a LOOP value), not per task; per-task keys: "
                                      f"{', '.join(TASK_KEYS)}")
                check_hparam(key, value, f"fit: task {name}")
    if not tasks or len(set(names)) != len(names) or not len(tasks) == len(trains) == len(devs):
        raise ConfigError(f"fit: tasks {names} must be distinct and have one train and one dev "
                          f"split each ({len(trains)} train, {len(devs)} dev given)")
    if len(tasks) > 1 and hp["multitask_aggregate"] not in ("mean", *names):
        raise unknown("multitask_aggregate (the dev score that selects the best checkpoint)",
                      hp["multitask_aggregate"], ("mean", *names))
    for task, train, dev in zip(tasks, trains, devs, strict=True):
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


def _check_fsdp(model: XtlModel, tasks: list[Task], device: torch.device) -> None:
    """FSDP shards over CUDA devices; what it cannot do here is refused before any work."""
    if device.type != "cuda":
        raise ConfigError("distributed: fsdp needs CUDA devices (accelerate runs CPU processes "
                          "as DDP); use ddp")
    if any(t.format == mlm.FORMAT for t in tasks):
        raise ConfigError("distributed: fsdp cannot train an MLM task: its head reads the word "
                          "embeddings outside their shard unit; use ddp")
    if not getattr(model.encoder, "_no_split_modules", None):
        raise ModelError(f"{type(model.encoder).__name__} names no layer classes "
                         "(_no_split_modules) to shard FSDP units on; use ddp")


# --- the pieces of the loop -----------------------------------------------------------------

def world_size() -> int:
    """Processes of this training run: >1 under torchrun / accelerate launch."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def strategy() -> str:
    """'ddp', or 'fsdp' (parameters, gradients and optimizer state sharded across ranks)."""
    value = os.environ.get(STRATEGY_ENV, "ddp")
    if value not in STRATEGIES:
        raise unknown(f"{STRATEGY_ENV} (the distributed strategy)", value, STRATEGIES)
    return value


def make_accelerator(precision: str, device: torch.device,
                     shard_layers: list[str] | None = None,
                     log_with: list[Any] | None = None) -> Accelerator:
    """One process, or a DDP rank; with `shard_layers` (class names) an FSDP2 rank;
    `log_with`: experiment trackers (xtl.tracking)."""
    # accelerate keeps one global state per process; a notebook or test may fit twice.
    AcceleratorState._reset_state(reset_partial_state=True)
    mixed = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[precision]
    if shard_layers:
        # Each transformer layer (and the embeddings) is one shard unit; full (gathered) state
        # dicts for checkpoints, which the main process writes.
        plugin = FullyShardedDataParallelPlugin(
            fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
            transformer_cls_names_to_wrap=shard_layers, state_dict_type="FULL_STATE_DICT",
            cpu_ram_efficient_loading=False, reshard_after_forward=True)
        return Accelerator(mixed_precision=mixed, fsdp_plugin=plugin, log_with=log_with,
                           kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(hours=3))],
                           dataloader_config=DataLoaderConfiguration(split_batches=True))
    if world_size() == 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)  # accelerate trains on the current CUDA device
        return Accelerator(mixed_precision=mixed, cpu=device.type == "cpu", log_with=log_with)
    # DDP: each rank on its local GPU (accelerate's choice). Unused parameters are the norm
    # here: a step runs one task's head, and no head reads the encoder's pooler. Ranks wait
    # for each other around dev evaluations: allow long ones.
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True),
                InitProcessGroupKwargs(timeout=timedelta(hours=3))]
    # split_batches: batch_size is the GLOBAL batch, split across ranks, so the scheduler steps
    # once per optimizer step (accelerate's default steps it once per rank).
    return Accelerator(mixed_precision=mixed, cpu=device.type == "cpu", kwargs_handlers=handlers,
                       dataloader_config=DataLoaderConfiguration(split_batches=True),
                       log_with=log_with)


def make_optimizer(model: torch.nn.Module, hp: dict) -> torch.optim.Optimizer:
    # No weight decay on biases and LayerNorm weights, as in the BERT/XLM-R recipes.
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": hp["weight_decay"]},
              {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel updates each tensor in one pass instead of a dozen: on CPU it is ~6x
    # faster, which matters when the optimizer step is a large share of the step (e5-small's
    # 96M-parameter embedding matrix). It is the Trainer's default too. Older torch: foreach.
    try:
        return torch.optim.AdamW(groups, lr=hp["learning_rate"], eps=hp["adam_epsilon"],
                                 fused=True)
    except RuntimeError:
        return torch.optim.AdamW(groups, lr=hp["learning_rate"], eps=hp["adam_epsilon"])


def freeze_word_embeddings(model: XtlModel) -> None:
    """Keep the word-embedding matrix fixed: no gradient, so the optimizer never holds it.

    On small English data this keeps the words of the other languages where pre-training put
    them (the English rows cannot drag their shared space apart), and on CPU it removes the
    dense gradient and AdamW update of e5-small's 96 M-value matrix from every step.
    """
    model.encoder.get_input_embeddings().weight.requires_grad_(False)


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


def collator(task: Task, tokenizer: Any, hp: dict) -> Callable[[list[dict]], dict]:
    """The format's collator; MLM's masks with the run's masking probability."""
    if task.format == mlm.FORMAT:
        return mlm.collator(tokenizer, hp["mlm_probability"])
    return get_format(task.format).collator(tokenizer)


def task_data(task: Task, train: Split, dev: Split, tokenizer: Any, hp: dict, seed: int,
              stream: int) -> TaskData:
    """Tokenised once (cached) with the task's own `hp`; the task's batches are a function of
    (seed, epoch, stream); `dev` is cut to the rows the selection evaluates (`dev_subset`)."""
    feats = features(task, train, tokenizer, hp, train=True)
    plan = sampling.BatchPlan(lengths(feats), hp["batch_size"], seed, hp["group_by_length"],
                              stream=stream)
    return TaskData(task, train, selection_split(dev, hp["dev_subset"]), feats,
                    sampling.Cursor(plan), collator(task, tokenizer, hp), hp, full_dev=dev)


def selection_split(dev: Split, first: int) -> Split:
    """The dev rows the checkpoint selection scores: the first `first` (jiant's
    `eval_subset_num`, a fixed deterministic subset); 0, or more than there are: all."""
    if not first or first >= len(dev.rows):
        return dev
    return replace(dev, rows=dev.rows.select(range(first)),
                   fingerprint=f"{dev.fingerprint}|first={first}")


def selection_rule(data: list[TaskData], hp: dict, how: str, best_step: int, steps: int,
                   steps_per_epoch: int) -> str:
    """Which rule chose the best checkpoint, in words, for reports and metrics.json."""
    scored = [d for d in data if not d.auxiliary] or data
    if len(data) == 1:
        d = data[0]
        what = f"best {_language(d.dev.language)} dev {_score_name(d)} of {d.task.name}"
    elif how == "mean":
        what = (f"best mean of the dev scores of {', '.join(d.task.name for d in scored)}"
                + (" (MLM trained alongside, not selected on)" if len(scored) < len(data)
                   else ""))
    else:
        what = f"best dev score of {how}"
    when = (f"every {hp['eval_every']} optimizer steps and at the end" if hp["eval_every"]
            else f"at the end of every epoch ({steps_per_epoch} optimizer steps)")
    rows = "; ".join(
        (f"the first {len(d.dev.rows):,} {d.dev.task} dev rows" if d.dev is not d.full_dev
         else f"all {len(d.dev.rows):,} {d.dev.task} dev rows") for d in data)
    patience = (f"early stop after {hp['patience']} evaluations without improvement"
                if hp["patience"] else "no early stopping")
    return (f"{what}, evaluated {when} on {rows}; {patience}; chosen at step {best_step} "
            f"of {steps}")


def _score_name(data: TaskData) -> str:
    """The headline dev score's name (QA: (EM+F1)/2; MLM: masked-token accuracy)."""
    if data.auxiliary:
        return "masked-token accuracy"
    if data.task.metric in metrics.QA_METRICS:
        return "(EM+F1)/2"
    return metrics.headline_key(data.task)


def _language(code: str) -> str:
    return {"en": "English", "mul": "multilingual"}.get(code, code)


def feature_rows(feats: datasets.Dataset, indices: list[int]) -> list[dict]:
    """Feature rows by index, as the list of dicts collators take."""
    columns = feats[indices]
    return [dict(zip(columns, values, strict=True))
            for values in zip(*columns.values(), strict=True)]


def micro_batches(data: TaskData, group: list[list[int]], rank: int, world: int
                  ) -> tuple[list[dict], list[float]]:
    """This process's collated share of each global micro-batch, and each share's loss weight.

    With several processes, each runs a strided share of every batch (`sampling.shard`); the
    weights make the gradient DDP averages equal the gradient of the whole batch.
    """
    batches, weights = [], []
    for indices in group:
        mine, weight = sampling.shard(indices, rank, world)
        batch = data.collate(feature_rows(data.feats, mine))
        if not weight:  # a stand-in row: a loss gathering across processes leaves it out
            batch["stand_in"] = torch.ones(())  # xtl.tasks.dual_encoder.STAND_IN
        batches.append(batch)
        weights.append(weight)
    return batches, weights


def train_step(accelerator: Accelerator, model: torch.nn.Module, optimizer: Any, scheduler: Any,
               task: Task, group: list[dict], max_grad_norm: float,
               weights: list[float] | None = None) -> tuple[float, int, int]:
    """One optimizer step over a group of micro-batches: (mean loss, padding tokens, tokens).

    `weights` (default 1 each) scale each micro-batch's loss (see `micro_batches`); with
    several processes the numbers returned are those of the global batch (all-reduced).
    """
    loss_fn = get_format(task.format).loss
    weights = weights or [1.0] * len(group)
    stats = torch.zeros(3, dtype=torch.float64)  # weighted loss, padding, tokens
    for i, (batch, weight) in enumerate(zip(group, weights, strict=True)):
        if weight:  # a weight-0 stand-in (an empty share) is not counted
            mask = batch["attention_mask"]
            stats[1] += int((mask == 0).sum())
            stats[2] += mask.numel()
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        # Gradients are all-reduced after the last micro-batch only (a no-op on one process).
        sync = accelerator.no_sync(model) if i < len(group) - 1 else nullcontext()
        with sync:
            with accelerator.autocast():
                loss = loss_fn(model(task.name, batch), batch)
            # The mean over the group's real size: an epoch's last group may be short.
            accelerator.backward(loss * weight / len(group))
        stats[0] += loss.detach().double().cpu() * weight
    accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()  # accelerate skips it when the fp16 scaler skipped the optimizer step
    optimizer.zero_grad()
    world = accelerator.num_processes
    if world > 1:
        stats = accelerator.reduce(stats.to(accelerator.device), "sum").cpu()
    loss_sum, pad, tokens = stats.tolist()
    return loss_sum / (world * len(group)), int(pad), int(tokens)


def dev_score(model: XtlModel, tokenizer: Any, data: TaskData, hp: dict, precision: str
              ) -> float:
    """A task's headline dev score; MLM's is masked-token accuracy (0-100)."""
    if data.auxiliary:
        return mlm.masked_accuracy(model, tokenizer, data.task, data.dev, hp, precision)[0]
    return evaluate.score_split(model, tokenizer, data.task, data.dev, hp, precision)


def aggregate(scores: dict[str, float], data: list[TaskData], how: str) -> float:
    """The one dev score that picks the best checkpoint and drives patience.

    'mean': the mean of the labelled tasks' headline scores (MLM tasks are trained alongside
    and reported, not selected on, unless the stage has nothing else); a task name: its score.
    """
    if how != "mean":
        return scores[how]
    chosen = [d.task.name for d in data if not d.auxiliary] or [d.task.name for d in data]
    return sum(scores[name] for name in chosen) / len(chosen)


def _gather(accelerator: Accelerator, value: Any) -> list:
    """`value` of every process, in rank order, on every process."""
    return [value] if accelerator.num_processes == 1 else gather_object([value])


def _from_main(accelerator: Accelerator, value: Any) -> Any:
    """The main process's `value` on every process: decisions must agree across ranks."""
    if accelerator.num_processes == 1:
        return value
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def _full_options(**kw: Any) -> dcp.StateDictOptions:
    return dcp.StateDictOptions(full_state_dict=True, cpu_offload=True, **kw)


def _model_state(accelerator: Accelerator, model: Any, sharded: bool) -> dict | None:
    """The whole model's state dict; sharded (FSDP): gathered to the main process (a
    collective: every rank calls it; the others get None)."""
    if not sharded:
        return accelerator.unwrap_model(model).state_dict()
    state = dcp.get_model_state_dict(model, options=_full_options())
    return state if accelerator.is_main_process else None


def _snapshot(accelerator: Accelerator, model: Any, optimizer: Any, scheduler: Any,
              progress: Progress, data: list[TaskData], sharded: bool = False) -> dict:
    # Every process's random streams (its dropout and MLM masks), gathered: a collective.
    rngs = _gather(accelerator, resume.capture_rng())
    progress.cursors = [d.cursor.state() for d in data]
    optimizer_state = (dcp.get_optimizer_state_dict(model, optimizer.optimizer,
                                                    options=_full_options())
                       if sharded else optimizer.state_dict())
    return {"model": _model_state(accelerator, model, sharded), "optimizer": optimizer_state,
            "scheduler": scheduler.state_dict(),
            "scaler": accelerator.scaler.state_dict() if accelerator.scaler else None,
            "progress": asdict(progress), "rng": rngs}


def _restore(saved: dict, accelerator: Accelerator, model: Any, optimizer: Any, scheduler: Any,
             data: list[TaskData], sharded: bool = False) -> Progress:
    if sharded:  # every rank read the full state; each keeps its shards of it
        dcp.set_model_state_dict(model, saved["model"], options=_full_options())
        dcp.set_optimizer_state_dict(model, optimizer.optimizer, saved["optimizer"],
                                     options=_full_options())
    else:
        accelerator.unwrap_model(model).load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if accelerator.scaler is not None and saved["scaler"]:
        accelerator.scaler.load_state_dict(saved["scaler"])
    progress = Progress(**saved["progress"])
    for d, (epoch, position) in zip(data, progress.cursors, strict=True):
        d.cursor.epoch, d.cursor.position = epoch, position
    resume.restore_rng(saved["rng"][accelerator.process_index])  # last: nothing random after
    return progress


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


def _collapsed(scores: list[float], majority: float | None) -> bool:
    """Dev accuracy at the majority-class level at EVERY evaluation: the head learned a prior."""
    return majority is not None and bool(scores) and all(
        s <= majority + COLLAPSE_MARGIN for s in scores)


def _eval_due(step: int, hp: dict, steps_per_epoch: int, total: int) -> bool:
    if hp["eval_every"]:
        return step % hp["eval_every"] == 0
    return step % steps_per_epoch == 0 or step == total


# --- the loop --------------------------------------------------------------------------------

def fit(model: XtlModel, tokenizer: Any, task: Task, train: Split, dev: Split, hp: dict,
        seed: int, checkpoint_dir: Path, history_path: Path, meta: dict,
        processes: int | None = None) -> FitResult:
    """Train `model` for one task: `fit_tasks` with a mixture of one."""
    return fit_tasks(model, tokenizer, [task], [train], [dev], hp, seed, checkpoint_dir,
                     history_path, meta, processes)


def fit_tasks(model: XtlModel, tokenizer: Any, tasks: list[Task], trains: list[Split],
              devs: list[Split], hp: dict, seed: int, checkpoint_dir: Path, history_path: Path,
              meta: dict, processes: int | None = None,
              task_hps: list[dict] | None = None) -> FitResult:
    """Train `model` on `tasks` at once; keep the best checkpoint by aggregate dev score, and last.

    `hp` holds the cell's values; `task_hps` (a multi-task stage) each task's own TASK values
    (`xtl.hparams.TASK_KEYS`: its max length, epochs, ...) over them. If an earlier call with
    the same cell, data and hyperparameters died, continue from its last resumable state in
    `checkpoint_dir/resume` (a different one is an error). `processes` (default:
    $XTL_GPUS_PER_CELL, else 1) > 1 outside a launcher starts that many DDP ranks.
    """
    hp = {**HPARAM_DEFAULTS, **hp}  # a partial dict (ad-hoc use) gets the kit's defaults
    # Everything that can be wrong is checked before any work.
    check_inputs(model, tasks, trains, devs, hp, task_hps)
    hps = [hp | own for own in task_hps] if task_hps else [hp] * len(tasks)
    processes = processes or int(os.environ.get(PROCESSES_ENV, "1"))
    if processes > 1 and world_size() == 1:
        return launch(processes, model, tokenizer, tasks, trains, devs, hp, seed,
                      checkpoint_dir, history_path, meta, task_hps)
    device = resolve_device(hp["device"])
    if world_size() > 1 and hp["device"].startswith("cuda:"):
        raise ConfigError(f"device {hp['device']!r} pins one GPU, but this cell runs "
                          f"{world_size()} processes (one GPU each); use 'cuda' or 'auto'")
    precision = resolve_precision(hp["precision"], device)
    sharded = world_size() > 1 and strategy() == "fsdp"
    if sharded:
        _check_fsdp(model, tasks, device)
    accelerator = make_accelerator(precision, device,
                                   list(model.encoder._no_split_modules) if sharded else None,
                                   tracking.trackers() or None)
    accelerator.init_trackers(os.environ.get(tracking.PROJECT_ENV) or "xtl",
                              config=tracking.flat_config({**hp, "seed": seed}))
    main = accelerator.is_main_process
    set_seed(seed, device_specific=True)  # + rank: each process its own dropout and masks
    if hp["gradient_checkpointing"]:
        _enable_gradient_checkpointing(model)
    if hp["freeze_embeddings"]:
        freeze_word_embeddings(model)

    # Data: tokenised once (the main process first, so the others read its cache).
    with accelerator.main_process_first():
        data = [task_data(t, tr, dv, tokenizer, own, seed, k)
                for k, (t, tr, dv, own) in enumerate(zip(tasks, trains, devs, hps, strict=True))]
    mix = sampling.mixture([t.name for t in tasks], [len(d.feats) for d in data],
                           [d.auxiliary for d in data], hp, [own["epochs"] for own in hps])
    schedule = sampling.schedule(mix, seed)  # the task of every step, drawn up front
    steps_per_epoch, total = mix.steps_per_epoch, smokecaps.cap_steps(mix.total)
    many = len(tasks) > 1

    optimizer = make_optimizer(model, hp)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp["warmup_ratio"] * total), total)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    unwrapped = accelerator.unwrap_model(model)

    # Continue an interrupted call, or mark this one as started (resume.pending).
    names = [t.name for t in tasks]
    store = resume.ResumeStore(checkpoint_dir, resume.identity(
        meta, hp, seed, names if many else names[0], trains if many else trains[0],
        devs if many else devs[0], precision, device.type if world_size() > 1 else str(device),
        accelerator.num_processes) | ({"strategy": "fsdp"} if sharded else {})
        | ({"task_hps": task_hps} if task_hps else {}))
    saved = store.load()
    if saved is None:
        progress = Progress(cursors=[d.cursor.state() for d in data])
        if main:
            store.save(0, None)
    else:
        progress = _restore(saved, accelerator, model, optimizer, scheduler, data, sharded)
    resumed_from = progress.step
    history = _open_history(Path(history_path), progress.history) if main else None

    def log(entry: dict) -> None:
        progress.history.append(entry)  # on every rank: they all take the same decisions
        if history is not None:
            history.write(json.dumps(entry) + "\n")
        accelerator.log(tracking.scalars(entry), step=entry["step"])  # no-op without trackers

    def keep(which: str, record: dict) -> None:
        """Write checkpoint `which` (the main process; with FSDP every rank gathers first)."""
        state = _model_state(accelerator, model, sharded) if sharded else None
        if main:
            save_checkpoint(unwrapped, tokenizer, Path(checkpoint_dir) / which,
                            {**meta, "step": progress.step, **record, "which": which}, state)

    def evaluate_and_keep() -> None:
        # Every rank scores (no rank idles in a collective meanwhile); the main's scores decide.
        scores = {d.task.name: dev_score(unwrapped, tokenizer, d, d.hp, precision) for d in data}
        scores = _from_main(accelerator, scores)
        score = aggregate(scores, data, hp["multitask_aggregate"])
        log({"step": progress.step, "dev_score": score, "epoch": progress.step / steps_per_epoch,
             **({"dev_scores": scores} if many else {})})
        if score > progress.best_score:
            progress.best_score, progress.best_step, progress.bad_evals = score, progress.step, 0
            progress.best_scores = scores
            keep("best", {"dev_score": score, **({"dev_scores": scores} if many else {})})
        else:
            progress.bad_evals += 1
            progress.stop = hp["patience"] > 0 and progress.bad_evals >= hp["patience"]

    model.train()
    bar = progress_bar(total=total, initial=progress.step, desc=f"train {'+'.join(names)}",
                       disable=not main)
    start, seen = time.perf_counter(), 0
    while progress.step < total and not progress.stop:
        d = data[schedule[progress.step]]  # the sampler's task for this step
        group = d.cursor.take(hp["grad_accum"])  # global micro-batches of example indices
        batches, weights = micro_batches(d, group, accelerator.process_index,
                                         accelerator.num_processes)
        loss, pad, tokens = train_step(accelerator, model, optimizer, scheduler, d.task, batches,
                                       hp["max_grad_norm"], weights)
        progress.step += 1
        progress.pad_tokens += pad
        progress.tokens += tokens
        seen += sum(map(len, group))
        log({"step": progress.step, **({"task": d.task.name} if many else {}), "loss": loss,
             "lr": scheduler.get_last_lr()[0], "padded_fraction": pad / tokens,
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
            state = _snapshot(accelerator, model, optimizer, scheduler, progress, data, sharded)
            if main:
                store.save(progress.step, state)
        fault("train_step")
    if not progress.history or "dev_score" not in progress.history[-1]:
        evaluate_and_keep()
    bar.close()
    keep("last", {})
    if main:
        history.close()
        store.clear()  # complete: `last` supersedes the resume state
    for tracker in accelerator.trackers:  # not end_training(): it also ends the process group
        tracker.finish()
    accelerator.wait_for_everyone()  # no rank returns before the checkpoints are written
    collapsed = []
    for d in data:
        majority = majority_share(d.task, d.dev)
        scores = [h["dev_scores"][d.task.name] if many else h["dev_score"]
                  for h in progress.history if "dev_score" in h]
        if _collapsed(scores, majority):
            collapsed.append(d.task.name)
            if main:
                print(f"WARNING: {d.task.name} collapsed: dev {d.task.metric} never rose above "
                      f"the majority class share ({majority:.1f}) + {COLLAPSE_MARGIN:g} at any "
                      "evaluation")
    steps_of = Counter(schedule[:progress.step].tolist())
    return FitResult(history=progress.history, best_score=progress.best_score,
                     best_step=progress.best_step, steps=progress.step, precision=precision,
                     seconds=time.perf_counter() - start, device=str(accelerator.device),
                     padded_fraction=progress.pad_tokens / max(1, progress.tokens),
                     collapsed=bool(collapsed), flags=["collapsed"] if collapsed else [],
                     resumed_from=resumed_from, best_scores=progress.best_scores,
                     aggregate=hp["multitask_aggregate"] if many else names[0],
                     task_steps={n: steps_of.get(k, 0) for k, n in enumerate(names)},
                     mixture=mix.table(), processes=accelerator.num_processes,
                     selection=selection_rule(data, hp, hp["multitask_aggregate"],
                                              progress.best_step, progress.step,
                                              steps_per_epoch))


# --- several processes from one (a notebook kernel) ------------------------------------------

class TrainingError(XtlError, RuntimeError):
    """The training processes of a multi-process fit failed."""


def launch(processes: int, model: XtlModel, tokenizer: Any, tasks: list[Task],
           trains: list[Split], devs: list[Split], hp: dict, seed: int, checkpoint_dir: Path,
           history_path: Path, meta: dict, task_hps: list[dict] | None = None) -> FitResult:
    """Run `fit_tasks` in `processes` DDP ranks (torchrun) and load the result into `model`.

    The job (model, tokenizer, rows, settings) goes to the ranks as one torch.save file; fresh
    processes, not forks, so a kernel that already touched CUDA can launch them. The ranks'
    output is printed here, so it lands in the notebook.
    """
    strategy()  # a bad XTL_DISTRIBUTED fails here, not in every rank
    cuda = torch.cuda.is_available() and hp["device"] != "cpu"
    if cuda and torch.cuda.device_count() < processes:
        raise ConfigError(f"gpus_per_cell = {processes}, but this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s)")
    if not cuda:
        print(f"no CUDA device: {processes} CPU processes (gloo)")
    # job.pt is a full pickle (the model object), so it lives in a private (0700) directory
    # that only this user can write; the ranks refuse a job file anywhere else.
    Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".launch-", dir=checkpoint_dir))
    try:
        return _launch_in(work, processes, model, tokenizer, tasks, trains, devs, hp, seed,
                          checkpoint_dir, history_path, meta, task_hps)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _launch_in(work: Path, processes: int, model: XtlModel, tokenizer: Any, tasks: list[Task],
               trains: list[Split], devs: list[Split], hp: dict, seed: int,
               checkpoint_dir: Path, history_path: Path, meta: dict,
               task_hps: list[dict] | None = None) -> FitResult:
    # The rows are loaded: the ranks need no generator or reader (and a test's may not import).
    own_tasks = model.tasks
    model.tasks = {name: _without_loaders(t) for name, t in own_tasks.items()}
    try:
        torch.save({"model": model, "tokenizer": tokenizer, "hp": hp, "seed": seed,
                    "tasks": [_without_loaders(t) for t in tasks], "trains": trains,
                    "devs": devs, "checkpoint_dir": str(checkpoint_dir),
                    "history_path": str(history_path), "meta": meta, "task_hps": task_hps},
                   work / "job.pt")
    finally:
        model.tasks = own_tasks
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "xtl.train", str(work / "job.pt")]
    print(f"training on {processes} processes: {' '.join(command)}", flush=True)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, PROCESSES_ENV: "1"})
    tail: list[str] = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        tail = (tail + [line])[-40:]
    if proc.wait() != 0:
        raise TrainingError(f"the {processes} training processes failed (exit {proc.returncode})"
                            f"; last output:\n{''.join(tail)}")
    result = FitResult(**json.loads((work / "result.json").read_text()))
    model.load_state_dict(torch.load(work / "model.pt", map_location="cpu", weights_only=True))
    return result


def _without_loaders(task: Task) -> Task:
    return with_overrides(task, generator=None, raw_reader=None)


def _check_private(work: Path) -> None:
    """Unpickle a job only from a directory `launch` made: ours, and no one else may write it."""
    info = work.stat()
    if not work.name.startswith(".launch-") or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise TrainingError(f"refusing to load {work}/job.pt: not a private launch directory "
                            "(expected one made by xtl.train.launch, mode 0700)")


def _rank_main(job_path: str) -> None:
    """One DDP rank of `launch`: train, then the main rank hands back the result and weights."""
    from xtl import train  # the importable module, not this __main__ copy of it

    _check_private(Path(job_path).parent)
    job = torch.load(job_path, map_location="cpu", weights_only=False)  # see _check_private
    model = job.pop("model")
    result = train.fit_tasks(model, job.pop("tokenizer"), job.pop("tasks"), job.pop("trains"),
                             job.pop("devs"), job.pop("hp"), job.pop("seed"),
                             Path(job.pop("checkpoint_dir")), Path(job.pop("history_path")),
                             job.pop("meta"), task_hps=job.pop("task_hps", None))
    state = dcp.get_model_state_dict(model, options=train._full_options())  # FSDP: gathers
    if int(os.environ.get("RANK", "0")) == 0:
        work = Path(job_path).parent
        torch.save(state, work / "model.pt")
        (work / "result.json").write_text(json.dumps(asdict(result)))


if __name__ == "__main__":
    _rank_main(sys.argv[1])
