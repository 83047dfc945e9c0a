"""Several training processes from one (a notebook kernel): `launch` starts the DDP ranks with
torchrun (`python -m xtl.training.train job.pt`) and loads their result back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from xtl.core.errors import ConfigError, XtlError
from xtl.core.hparams import Hparams
from xtl.data.sources import Split
from xtl.data.tasks import Task
from xtl.model.models import XtlModel
from xtl.training.devices import PROCESSES_ENV, strategy
from xtl.training.loop_state import FitResult


class TrainingError(XtlError, RuntimeError):
    """The training processes of a multi-process fit failed."""


def launch(processes: int, model: XtlModel, tokenizer: Any, tasks: list[Task],
           trains: list[Split], devs: list[Split], hp: Hparams, seed: int, checkpoint_dir: Path,
           history_path: Path, meta: dict, task_hps: list[dict] | None = None) -> FitResult:
    """Run `fit_tasks` in `processes` DDP ranks (torchrun) and load the result into `model`.

    The job (model, tokenizer, rows, settings) goes to the ranks as one torch.save file; fresh
    processes, not forks, so a kernel that already touched CUDA can launch them. The ranks'
    output is printed here, so it lands in the notebook.
    """
    strategy()  # a bad XTL_DISTRIBUTED fails here, not in every rank
    cuda = torch.cuda.is_available() and hp.device != "cpu"
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
               trains: list[Split], devs: list[Split], hp: Hparams, seed: int,
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
               f"--nproc_per_node={processes}", "-m", "xtl.training.train", str(work / "job.pt")]
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
    return replace(task, generator=None, raw_reader=None)


def check_private(work: Path) -> None:
    """Unpickle a job only from a directory `launch` made: ours, and no one else may write it."""
    info = work.stat()
    if not work.name.startswith(".launch-") or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise TrainingError(f"refusing to load {work}/job.pt: not a private launch directory "
                            "(expected one made by xtl.training.launch.launch, mode 0700)")


