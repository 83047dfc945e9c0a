"""The training loop: AdamW, linear warmup then decay, clipping, dev evaluation, best + last.

One explicit loop, readable top to bottom; accelerate places the model, runs mixed precision
and the fp16 GradScaler, and DDP when the cell has several processes. A stage may train SEVERAL
tasks on the shared encoder (one head each): every optimizer step trains one task, drawn by
the multi-task sampler (`xtl.training.sampling`); a single task is the mixture of one.

Every random choice flows from `seed`, and a run can die anywhere and continue from its last
resumable state (`xtl.training.resume`) to the same bits on CPU: each task's batches are a function
of (seed, epoch), the task of each step a function of (seed, step), and every other random
stream is saved.

Several processes (`gpus_per_cell`): run under `accelerate launch` / `torchrun`, `fit` is one
rank: each global batch is split across the ranks (the sampler and the batch plans are the
same everywhere), losses and counts are all-reduced, dev scores are the main process's, and
only the main process writes history, checkpoints and resume state. Called with
`processes > 1` from a plain process (a notebook), `fit` starts the ranks itself with torchrun
and loads the trained weights back into `model`.

Around the loop: `xtl.training.devices` (device, precision, ranks, the accelerator),
`xtl.training.train_data`
(each task's features and batches, the input checks), `xtl.training.selection` (dev scores, the
checkpoint rule, collapse), `xtl.training.loop_state` (`Progress`, its save and restore,
`FitResult`) and `xtl.training.launch` (the ranks started from a notebook).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import get_linear_schedule_with_warmup

from xtl.core import smokecaps, tracking
from xtl.core.errors import ConfigError, ModelError
from xtl.core.faults import fault
from xtl.core.hparams import Hparams
from xtl.core.progress import bar as progress_bar
from xtl.data.sources import Split
from xtl.data.tasks import Task, get_format
from xtl.model import dropout, embedding_grad
from xtl.model.models import XtlModel, save_checkpoint
from xtl.training import resume, sampling
from xtl.training.devices import (
    PROCESSES_ENV,
    check_fsdp,
    from_main,
    make_accelerator,
    resolve_device,
    resolve_precision,
    strategy,
    world_size,
)
from xtl.training.launch import check_private, launch
from xtl.training.loop_state import (
    FitResult,
    Progress,
    dcp,
    full_model_state,
    full_options,
    open_history,
    restore,
    save_state,
)
from xtl.training.selection import (
    COLLAPSE_MARGIN,
    aggregate,
    dev_score,
    eval_due,
    is_collapsed,
    majority_share,
    selection_rule,
)
from xtl.training.train_data import check_inputs, micro_batches, task_data

# --- the pieces of the loop -----------------------------------------------------------------

def make_optimizer(model: torch.nn.Module, hp: Hparams) -> torch.optim.Optimizer:
    # No weight decay on biases and LayerNorm weights, as in the BERT/XLM-R recipes.
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": hp.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel updates each tensor in one pass instead of a dozen: on CPU it is ~6x
    # faster, which matters when the optimizer step is a large share of the step (e5-small's
    # 96M-parameter embedding matrix). It is the Trainer's default too. Older torch: foreach.
    try:
        return torch.optim.AdamW(groups, lr=hp.learning_rate, eps=hp.adam_epsilon,
                                 fused=True)
    except RuntimeError:
        return torch.optim.AdamW(groups, lr=hp.learning_rate, eps=hp.adam_epsilon)


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


# --- the loop --------------------------------------------------------------------------------

def fit(model: XtlModel, tokenizer: Any, task: Task, train: Split, dev: Split,
        hp: Hparams | Mapping[str, Any],
        seed: int, checkpoint_dir: Path, history_path: Path, meta: dict,
        processes: int | None = None) -> FitResult:
    """Train `model` for one task: `fit_tasks` with a mixture of one."""
    return fit_tasks(model, tokenizer, [task], [train], [dev], hp, seed, checkpoint_dir,
                     history_path, meta, processes)


def fit_tasks(model: XtlModel, tokenizer: Any, tasks: list[Task], trains: list[Split],
              devs: list[Split], hp: Hparams | Mapping[str, Any], seed: int,
              checkpoint_dir: Path, history_path: Path, meta: dict, processes: int | None = None,
              task_hps: list[dict] | None = None) -> FitResult:
    """Train `model` on `tasks` at once; keep the best checkpoint by aggregate dev score, and last.

    `hp` holds the cell's values; `task_hps` (a multi-task stage) each task's own TASK values
    (`xtl.core.hparams.TASK_KEYS`: its max length, epochs, ...) over them. If an earlier call with
    the same cell, data and hyperparameters died, continue from its last resumable state in
    `checkpoint_dir/resume` (a different one is an error). `processes` (default:
    $XTL_GPUS_PER_CELL, else 1) > 1 outside a launcher starts that many DDP ranks.
    """
    hp = Hparams.from_dict(hp, "fit")  # a partial mapping (ad-hoc use) gets the defaults
    # Everything that can be wrong is checked before any work.
    check_inputs(model, tasks, trains, devs, hp, task_hps)
    hps = ([hp.replace(own, f"fit: task {t.name}") for t, own in zip(tasks, task_hps, strict=True)]
           if task_hps else [hp] * len(tasks))
    processes = processes or int(os.environ.get(PROCESSES_ENV, "1"))
    if processes > 1 and world_size() == 1:
        return launch(processes, model, tokenizer, tasks, trains, devs, hp, seed,
                      checkpoint_dir, history_path, meta, task_hps)
    device = resolve_device(hp.device)
    if world_size() > 1 and hp.device.startswith("cuda:"):
        raise ConfigError(f"device {hp.device!r} pins one GPU, but this cell runs "
                          f"{world_size()} processes (one GPU each); use 'cuda' or 'auto'")
    precision = resolve_precision(hp.precision, device)
    sharded = world_size() > 1 and strategy() == "fsdp"
    if sharded:
        check_fsdp(model, tasks, device)
    accelerator = make_accelerator(precision, device,
                                   list(model.encoder._no_split_modules) if sharded else None,
                                   tracking.trackers() or None)
    accelerator.init_trackers(os.environ.get(tracking.PROJECT_ENV) or "xtl",
                              config=tracking.flat_config({**hp, "seed": seed}))
    main = accelerator.is_main_process
    set_seed(seed, device_specific=True)  # + rank: each process its own dropout and masks
    if hp.gradient_checkpointing:
        _enable_gradient_checkpointing(model)
    if hp.freeze_embeddings:
        freeze_word_embeddings(model)
    # On a CPU: cheaper dropout masks (the same distribution) and, in one process, the word
    # embeddings' gradient in a buffer reused across steps (the same values). BENCHMARKS.md.
    reused = []
    if device.type == "cpu":
        dropout.install(model)
        if world_size() == 1:
            reused = embedding_grad.install(model)

    # Data: tokenised once (the main process first, so the others read its cache).
    with accelerator.main_process_first():
        data = [task_data(t, tr, dv, tokenizer, own, seed, k)
                for k, (t, tr, dv, own) in enumerate(zip(tasks, trains, devs, hps, strict=True))]
    mix = sampling.mixture([t.name for t in tasks], [len(d.feats) for d in data],
                           [d.auxiliary for d in data], hp, [own.epochs for own in hps])
    schedule = sampling.schedule(mix, seed)  # the task of every step, drawn up front
    steps_per_epoch, total = mix.steps_per_epoch, smokecaps.cap_steps(mix.total)
    many = len(tasks) > 1

    optimizer = make_optimizer(model, hp)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * total), total)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    unwrapped = accelerator.unwrap_model(model)

    # Continue an interrupted call, or mark this one as started (resume.pending).
    names = [t.name for t in tasks]
    store = resume.ResumeStore(checkpoint_dir, resume.identity(
        meta, hp, seed, names if many else names[0], trains if many else trains[0],
        devs if many else devs[0], precision, device.type if world_size() > 1 else str(device),
        accelerator.num_processes) | ({"strategy": "fsdp"} if sharded else {})
        | ({"task_hps": task_hps} if task_hps else {}))
    progress = restore(store, accelerator, data)
    if progress is None:
        progress = Progress(cursors=[d.cursor.state() for d in data])
        if main:
            store.save(0)
    resumed_from = progress.step
    history = open_history(Path(history_path), progress.history) if main else None

    def log(entry: dict) -> None:
        progress.history.append(entry)  # on every rank: they all take the same decisions
        if history is not None:
            history.write(json.dumps(entry) + "\n")
        accelerator.log(tracking.scalars(entry), step=entry["step"])  # no-op without trackers

    def keep(which: str, record: dict) -> None:
        """Write checkpoint `which` (the main process; with FSDP every rank gathers first)."""
        state = full_model_state(accelerator, model) if sharded else None
        if main:
            save_checkpoint(unwrapped, tokenizer, Path(checkpoint_dir) / which,
                            {**meta, "step": progress.step, **record, "which": which}, state)

    def evaluate_and_keep() -> None:
        # Every rank scores (no rank idles in a collective meanwhile); the main's scores decide.
        scores = {d.task.name: dev_score(unwrapped, tokenizer, d, d.hp, precision) for d in data}
        scores = from_main(accelerator, scores)
        score = aggregate(scores, data, hp.multitask_aggregate)
        log({"step": progress.step, "dev_score": score, "epoch": progress.step / steps_per_epoch,
             **({"dev_scores": scores} if many else {})})
        if score > progress.best_score:
            progress.best_score, progress.best_step, progress.bad_evals = score, progress.step, 0
            progress.best_scores = scores
            keep("best", {"dev_score": score, **({"dev_scores": scores} if many else {})})
        else:
            progress.bad_evals += 1
            progress.stop = hp.patience > 0 and progress.bad_evals >= hp.patience

    model.train()
    bar = progress_bar(total=total, initial=progress.step, desc=f"train {'+'.join(names)}",
                       disable=not main)
    start, seen = time.perf_counter(), 0
    while progress.step < total and not progress.stop:
        d = data[schedule[progress.step]]  # the sampler's task for this step
        group = d.cursor.take(hp.grad_accum)  # global micro-batches of example indices
        batches, weights = micro_batches(d, group, accelerator.process_index,
                                         accelerator.num_processes)
        loss, pad, tokens = train_step(accelerator, model, optimizer, scheduler, d.task, batches,
                                       hp.max_grad_norm, weights)
        progress.step += 1
        progress.pad_tokens += pad
        progress.tokens += tokens
        seen += sum(map(len, group))
        log({"step": progress.step, **({"task": d.task.name} if many else {}), "loss": loss,
             "lr": scheduler.get_last_lr()[0], "padded_fraction": pad / tokens,
             "examples_per_s": seen / (time.perf_counter() - start)})
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        evaluated = eval_due(progress.step, hp, steps_per_epoch, total)
        if evaluated:
            evaluate_and_keep()
            model.train()
        # Saved after the evaluation, so the state includes its score and best/.
        if (hp.save_every and progress.step % hp.save_every == 0) or (
                not hp.save_every and evaluated):
            save_state(store, accelerator, progress, data)
        fault("train_step")
    if not progress.history or "dev_score" not in progress.history[-1]:
        evaluate_and_keep()
    bar.close()
    keep("last", {})
    for embedding in reused:
        embedding.release()
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
        if is_collapsed(scores, majority):
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
                     aggregate=hp.multitask_aggregate if many else names[0],
                     task_steps={n: steps_of.get(k, 0) for k, n in enumerate(names)},
                     mixture=mix.table(), processes=accelerator.num_processes,
                     selection=selection_rule(data, hp, hp.multitask_aggregate,
                                              progress.best_step, progress.step,
                                              steps_per_epoch))


def _rank_main(job_path: str) -> None:
    """One DDP rank of `launch`: train, then the main rank hands back the result and weights."""
    from xtl.training import train  # the importable module, not this __main__ copy of it

    check_private(Path(job_path).parent)
    job = torch.load(job_path, map_location="cpu", weights_only=False)  # see check_private
    model = job.pop("model")
    result = train.fit_tasks(model, job.pop("tokenizer"), job.pop("tasks"), job.pop("trains"),
                             job.pop("devs"), job.pop("hp"), job.pop("seed"),
                             Path(job.pop("checkpoint_dir")), Path(job.pop("history_path")),
                             job.pop("meta"), task_hps=job.pop("task_hps", None))
    state = dcp().get_model_state_dict(model, options=full_options())  # FSDP: gathers
    if int(os.environ.get("RANK", "0")) == 0:
        work = Path(job_path).parent
        torch.save(state, work / "model.pt")
        (work / "result.json").write_text(json.dumps(asdict(result)))


if __name__ == "__main__":
    _rank_main(sys.argv[1])
