"""Resumable training state: `<checkpoint_dir>/resume/`, written atomically, checked on load.

```
resume/resume.json    written last: {format, step, identity, identity_hash, checksum, created}
resume/progress.json  the loop's `Progress` (xtl.training.loop_state): step, every task's
                      position in its own epochs, best score, history
resume/model.safetensors optimizer.bin scheduler.bin [scaler.pt] random_states_<rank>.pkl
                      (FSDP: pytorch_model_fsdp.bin for the model)   accelerate's save_state
```
What accelerate saves (`Accelerator.save_state`, accelerate/checkpointing.py): the prepared
model, optimizer and scheduler, the fp16 GradScaler, and every process's random streams
(python, numpy, torch CPU and CUDA), one file per rank; with FSDP (FULL_STATE_DICT, set in
`xtl.training.devices.make_accelerator`) the full model and optimizer state gathered to rank 0,
as xtl's own torch.distributed.checkpoint code did (not run here: FSDP needs GPUs).
`load_state` reads them back, tensors with `weights_only=True`.

What xtl adds: the marker, written last, with the run's identity (cell meta, seed, task, data,
every hyperparameter that changes results: a mismatch is an error naming the differences,
never a silent restart) and one checksum over every other file (a torn or edited state is an
error, never a silent load); the atomic directory replace; `Progress` as JSON, not through
`register_for_checkpointing` (accelerate unpickles custom objects with `weights_only=False`,
which runs whatever code a pickle names); a check that the random streams came back
(accelerate logs and goes on when it cannot read them: resume would silently differ); the
step-0 mark: `fit` writes the json alone when it starts and deletes the directory when it has
written `last`, so `pending(checkpoint_dir)` says "a fit started here and did not finish".
The multi-task sampler's draws are a function of the seed and the step, so `Progress` is all
of its state.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import RNG_STATE_NAME
from accelerate.utils import load as accelerate_load

from xtl.core.atomicdir import recover, remove_dir, replace_dir
from xtl.core.errors import ConfigError, ModelError
from xtl.core.faults import fault
from xtl.core.hparams import Hparams
from xtl.core.store import atomic_write_json, read_json, read_json_object, sha256_tree
from xtl.data.sources import Split
from xtl.training.devices import from_main

# 2: per-task cursors and per-process random streams; 3: accelerate's save_state files
FORMAT = 3
DIRNAME = "resume"
MARKER = "resume.json"
PROGRESS = "progress.json"
# Cadence of saving only: changing it between a crash and the rerun changes no result.
NOT_IN_IDENTITY = ("save_every",)


def pending(checkpoint_dir: Path) -> bool:
    """True if a fit started in `checkpoint_dir` and has not finished (its `last` is not final)."""
    path = Path(checkpoint_dir) / DIRNAME
    recover(path)
    return (path / MARKER).is_file()


def _data_identity(split: Split) -> dict:
    ids = split.rows["id"] if "id" in split.rows.column_names else []
    digest = hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()[:16]
    return {"fingerprint": split.fingerprint, "rows": len(split.rows), "ids": digest}


def identity(meta: dict, hp: Hparams, seed: int, task: str | list[str], train: Split | list[Split],
             dev: Split | list[Split], precision: str, device: str, processes: int = 1) -> dict:
    """What a resumed run must share with the run that saved the state.

    A multi-task run passes lists (tasks, their train and dev splits); a single task keeps the
    plain form. The number of processes is part of it: a DDP run resumes with as many.
    """
    many = isinstance(task, list)
    hparams = {k: v for k, v in sorted(hp.items()) if k not in NOT_IN_IDENTITY}
    doc = {"meta": meta, "seed": seed, "task": task, "hparams": hparams, "precision": precision,
           "device": device,
           "train": [_data_identity(s) for s in train] if many else _data_identity(train),
           "dev": [_data_identity(s) for s in dev] if many else _data_identity(dev)}
    if processes > 1:
        doc["processes"] = processes
    return json.loads(json.dumps(doc, sort_keys=True, default=str))  # plain JSON, as stored


def _hash(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(doc, dict):
        return {prefix: doc}
    flat = {}
    for key, value in doc.items():
        flat |= _flatten(value, f"{prefix}.{key}" if prefix else key)
    return flat


def differences(saved: dict, current: dict) -> list[str]:
    """'key: saved X, now Y' for every leaf that differs."""
    a, b = _flatten(saved), _flatten(current)
    return [f"{k}: saved {a.get(k, '<absent>')!r}, now {b.get(k, '<absent>')!r}"
            for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")]


class ResumeStore:
    """The resume directory of one fit, bound to that fit's identity."""

    def __init__(self, checkpoint_dir: Path, run_identity: dict):
        self.path = Path(checkpoint_dir) / DIRNAME
        self.identity = run_identity
        self.hash = _hash(run_identity)

    def load(self, accelerator: Accelerator) -> dict | None:
        """Put the saved state into `accelerator`'s model, optimizer, scheduler, scaler and this
        process's random streams; return the saved progress (None: nothing to resume, or only
        the step-0 mark of a start). Every process calls it (FSDP: a collective)."""
        recover(self.path)
        marker = self.path / MARKER
        if not marker.is_file():
            return None
        record = read_json_object(marker)
        if record is None:
            raise ModelError(f"resume state {str(self.path)!r} is corrupt: {MARKER} is not a "
                             "JSON object; delete it to start over")
        if record.get("format") != FORMAT:
            raise ModelError(f"resume state {str(self.path)!r} has format "
                             f"{record.get('format')!r}; this xtl reads {FORMAT}. Delete it to "
                             "start over")
        if record.get("identity_hash") != self.hash:
            diffs = differences(record.get("identity", {}), self.identity)
            raise ConfigError(f"resume state {str(self.path)!r} (step {record.get('step')}) was "
                              f"written by a different run: {'; '.join(diffs[:8])}. Rerun with "
                              "the same settings, or delete that directory to start over")
        if record["step"] == 0:
            return None
        if sha256_tree(self.path, exclude=(MARKER,)) != record.get("checksum"):
            raise ModelError(f"resume state {str(self.path)!r} is corrupt (its files are missing "
                             "or do not match their checksum); delete it to start over")
        accelerator.load_state(str(self.path))
        rng = self.path / f"{RNG_STATE_NAME}_{accelerator.process_index}.pkl"
        if not torch.equal(torch.get_rng_state(), accelerate_load(rng)["torch_manual_seed"]):
            raise ModelError(f"resume state {str(self.path)!r}: accelerate could not restore the "
                             f"random streams from {rng.name}; delete it to start over")
        return read_json(self.path / PROGRESS)

    def save(self, step: int, accelerator: Accelerator | None = None,
             progress: dict | None = None) -> None:
        """Replace the saved state with `accelerator`'s and `progress` at optimizer `step`
        (every process calls it: each writes its random streams); without them, the step-0
        mark (the main process only)."""
        if accelerator is not None and not accelerator.is_main_process:
            accelerator.save_state(from_main(accelerator, None))  # into the main's temp dir
            accelerator.wait_for_everyone()
            return

        def fill(tmp: Path) -> None:
            record = {"format": FORMAT, "step": step, "identity": self.identity,
                      "identity_hash": self.hash,
                      "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            if accelerator is not None:
                accelerator.save_state(from_main(accelerator, str(tmp)))
                accelerator.wait_for_everyone()  # every rank's random streams are written
                atomic_write_json(tmp / PROGRESS, progress)
                fault("checkpoint_write")  # crash tests: state written, marker not yet
                record["checksum"] = sha256_tree(tmp)
            atomic_write_json(tmp / MARKER, record)

        replace_dir(self.path, fill)

    def clear(self) -> None:
        remove_dir(self.path)
