"""The loop's state and its result: `Progress` (everything a resumed run needs besides tensors),
its snapshot and restore around `xtl.training.resume`'s store, history.jsonl, and `FitResult`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from xtl.core.store import atomic_write_text
from xtl.training import resume
from xtl.training.devices import gather
from xtl.training.train_data import TaskData


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
    collapsed: bool = False  # dev score never rose above the majority class (see `is_collapsed`)
    flags: list[str] = field(default_factory=list)  # for metrics.json: ["collapsed"]
    resumed_from: int = 0  # optimizer step this call continued from (0: a fresh start)
    best_scores: dict[str, float] = field(default_factory=dict)  # every task's, at best_step
    aggregate: str = "mean"  # how best_score combines best_scores
    task_steps: dict[str, int] = field(default_factory=dict)  # optimizer steps per task
    mixture: list[dict] = field(default_factory=list)  # the sampler's table (xtl.training.sampling)
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



def dcp() -> Any:
    """torch.distributed.checkpoint's state-dict API, for sharded (FSDP) models only: importing
    it costs about 1 s, which every notebook kernel paid at `import xtl.training.train`."""
    from torch.distributed.checkpoint import state_dict

    return state_dict


def full_options(**kw: Any) -> Any:
    return dcp().StateDictOptions(full_state_dict=True, cpu_offload=True, **kw)


def model_state(accelerator: Accelerator, model: Any, sharded: bool) -> dict | None:
    """The whole model's state dict; sharded (FSDP): gathered to the main process (a
    collective: every rank calls it; the others get None)."""
    if not sharded:
        return accelerator.unwrap_model(model).state_dict()
    state = dcp().get_model_state_dict(model, options=full_options())
    return state if accelerator.is_main_process else None


def snapshot(accelerator: Accelerator, model: Any, optimizer: Any, scheduler: Any,
              progress: Progress, data: list[TaskData], sharded: bool = False) -> dict:
    # Every process's random streams (its dropout and MLM masks), gathered: a collective.
    rngs = gather(accelerator, resume.capture_rng())
    progress.cursors = [d.cursor.state() for d in data]
    optimizer_state = (dcp().get_optimizer_state_dict(model, optimizer.optimizer,
                                                    options=full_options())
                       if sharded else optimizer.state_dict())
    return {"model": model_state(accelerator, model, sharded), "optimizer": optimizer_state,
            "scheduler": scheduler.state_dict(),
            "scaler": accelerator.scaler.state_dict() if accelerator.scaler else None,
            "progress": asdict(progress), "rng": rngs}


def restore(saved: dict, accelerator: Accelerator, model: Any, optimizer: Any, scheduler: Any,
             data: list[TaskData], sharded: bool = False) -> Progress:
    if sharded:  # every rank read the full state; each keeps its shards of it
        dcp().set_model_state_dict(model, saved["model"], options=full_options())
        dcp().set_optimizer_state_dict(model, optimizer.optimizer, saved["optimizer"],
                                     options=full_options())
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


def open_history(path: Path, entries: list[dict]):
    """history.jsonl holding exactly `entries` (a resumed run drops lines past its step)."""
    atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in entries))
    return open(path, "a", encoding="utf-8", buffering=1)  # line-buffered: a kill keeps lines


