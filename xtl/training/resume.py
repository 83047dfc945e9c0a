"""Resumable training state: `<checkpoint_dir>/resume/`, written atomically, checked on load.

```
resume/resume.json   written last: {format, step, identity, identity_hash, checksum, created}
resume/state.pt      torch.save of {model, optimizer, scheduler, scaler, progress, rng}
``` `progress` holds the step, every task's position in its own epochs (the multi-task sampler's
draws are a function of the seed and the step, so that is all of its state) and the best score;
`rng` is a list with every process's random streams (one entry without DDP).
`fit` writes a step-0 state (the json alone) when it starts and deletes the directory when it
has written `last`, so `pending(checkpoint_dir)` says "a fit started here and did not finish".
The identity (cell meta, seed, task, data, every hyperparameter that changes results) must
match on resume: a mismatch is an error naming the differences, never a silent restart.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xtl.core.atomicdir import recover, remove_dir, replace_dir
from xtl.core.errors import ConfigError, ModelError
from xtl.core.faults import fault
from xtl.core.hparams import Hparams
from xtl.core.store import atomic_write_json, read_json_object, sha256_file
from xtl.data.sources import Split

FORMAT = 2  # 2: per-task cursors and per-process random streams (multi-task, DDP)
DIRNAME = "resume"
MARKER = "resume.json"
STATE = "state.pt"
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

    def load(self) -> dict | None:
        """The saved state (None: nothing to resume, or only the step-0 mark of a start)."""
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
        state_file = self.path / STATE
        if not state_file.is_file() or sha256_file(state_file) != record.get("checksum"):
            raise ModelError(f"resume state {str(self.path)!r} is corrupt ({STATE} is missing or "
                             "does not match its checksum); delete it to start over")
        return torch.load(state_file, map_location="cpu", weights_only=True)

    def save(self, step: int, state: dict | None) -> None:
        """Replace the saved state with the one at optimizer `step` (None: the step-0 mark)."""

        def fill(tmp: Path) -> None:
            record = {"format": FORMAT, "step": step, "identity": self.identity,
                      "identity_hash": self.hash,
                      "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            if state is not None:
                torch.save(state, tmp / STATE)
                fault("checkpoint_write")  # crash tests: state written, marker not yet
                record["checksum"] = sha256_file(tmp / STATE)
            atomic_write_json(tmp / MARKER, record)

        replace_dir(self.path, fill)

    def clear(self) -> None:
        remove_dir(self.path)


def capture_rng() -> dict:
    """Every random stream training reads in this process: python, numpy, torch CPU and CUDA."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {"python": random.getstate(),
              "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                        "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict) -> None:
    random.setstate(states["python"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
