"""The loop's state and its result: `Progress` (everything a resumed run needs besides what
accelerate saves), its save and restore through `xtl.training.resume`'s store, history.jsonl,
and `FitResult`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from xtl.core.store import atomic_write_text
from xtl.training import resume
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
    """The loop's position and bookkeeping: everything a resumed run needs besides what
    accelerate's save_state holds (tensors, random streams); saved as JSON."""

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


def full_model_state(accelerator: Accelerator, model: Any) -> dict | None:
    """A sharded (FSDP) model's whole state dict, gathered to the main process (a collective:
    every rank calls it; the others get None)."""
    state = dcp().get_model_state_dict(model, options=full_options())
    return state if accelerator.is_main_process else None


def save_state(store: resume.ResumeStore, accelerator: Accelerator, progress: Progress,
               data: list[TaskData]) -> None:
    """Save the resumable state at `progress.step` (every process calls it: a collective)."""
    progress.cursors = [d.cursor.state() for d in data]
    store.save(progress.step, accelerator, asdict(progress))


def restore(store: resume.ResumeStore, accelerator: Accelerator,
            data: list[TaskData]) -> Progress | None:
    """The saved state put back (tensors and random streams into `accelerator`'s objects), or
    None when there is nothing to resume."""
    saved = store.load(accelerator)
    if saved is None:
        return None
    progress = Progress(**saved)
    for d, (epoch, position) in zip(data, progress.cursors, strict=True):
        d.cursor.epoch, d.cursor.position = epoch, position
    return progress


def open_history(path: Path, entries: list[dict]):
    """history.jsonl holding exactly `entries` (a resumed run drops lines past its step)."""
    atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in entries))
    return open(path, "a", encoding="utf-8", buffering=1)  # line-buffered: a kill keeps lines


