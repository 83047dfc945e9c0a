"""What every cell shares: its parameters, hyperparameters, directories, the data it read and
the provenance gathered on the way, and writing metrics.json. `xtl.cells.phases.start` opens
one; each kind adds its own steps in a subclass (docs/architecture.md, "Inside a cell").
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xtl.core.errors import ConfigError, DataError
from xtl.core.hparams import Hparams
from xtl.core.provenance import collect
from xtl.core.store import atomic_write_json, atomic_write_text
from xtl.data import sources
from xtl.data.tasks import Task
from xtl.data.tasks import resolve as resolve_task
from xtl.model import zoo
from xtl.model.models import build
from xtl.training import devices

METRICS_SCHEMA = "xtl.metrics/1"


@dataclass
class Cell:
    """The running cell: parameters, directories and the provenance gathered on the way."""

    cell_id: str
    kind: str
    cell_dir: Path
    checkpoint_dir: Path
    params: dict[str, Any]
    hparams: Hparams  # checked once, by `start`
    mirror: Path | None
    raw: Path | None
    declared: dict[str, dict]
    data: dict[str, dict] = field(default_factory=dict)
    model_source: str = ""
    parent: dict | None = None
    precision: str = "fp32"
    flags: set[str] = field(default_factory=set)  # e.g. "collapsed" from training
    training: dict | None = None  # fit_summary of this run's training (None: evaluation only)
    started: float = field(default_factory=time.time)
    # a multi-task stage: each task's own TASK values over `hparams` (xtl.core.hparams.TASK_KEYS)
    task_hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    # where each value came from: {"*": {key: layer}, "<task>": {key: layer}} (xtl.grid.plan.Recipe)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)

    def open(self) -> None:
        """The kind's own checks of its parameters, once the shared ones passed."""

    def task(self, name: str) -> Task:
        return resolve_task(name, self.declared)

    def hparams_for(self, task: Task) -> Hparams:
        """What `task` runs with: the cell's values, its own TASK values over them."""
        return self.hparams.replace(self.task_hparams.get(task.name, {}),
                                    f"notebook parameter task_hparams.{task.name}")

    def load(self, task: Task, split: str, language: str | None = None, size: int | None = None,
             subsample_seed: int = 0) -> sources.Split:
        """Canonical rows; `size` takes a fixed random subset (nested across sizes)."""
        language = language or task.train_language
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise ConfigError(f"train size {size!r} must be a positive integer or None")
        loaded = sources.load(task, split, language, self.mirror, raw=self.raw)
        if size is not None:
            if size > len(loaded.rows):
                raise DataError(f"train size {size} is larger than {task.name}/{language}/{split}"
                                f" ({len(loaded.rows)} usable rows); not capping silently")
            # Shuffle once with the subsample seed, then take a prefix: smaller sizes nest.
            loaded.rows = loaded.rows.shuffle(seed=subsample_seed).select(range(size))
            loaded.fingerprint = f"{loaded.fingerprint}|n={size}|seed={subsample_seed}"
        self.data[f"{task.name}/{language}/{split}"] = loaded.provenance()
        return loaded

    def _device(self) -> Any:
        """The device of the `device` hyperparameter; sets the precision run on it."""
        device = devices.resolve_device(self.hparams.device)
        self.precision = devices.resolve_precision(self.hparams.precision, device)
        return device

    def finish(self, records: list[dict], examples: list[dict] | None = None,
               extra: dict | None = None, baselines: list[dict] | None = None,
               estimates: list[dict] | None = None) -> dict:
        """Write predictions, then metrics.json (last: its presence means the cell is done);
        `baselines`: the shortcut scores on the same rows (`xtl.evaluation.shortcuts.for_cell`);
        `estimates`: a transferability cell's records (`xtl.cells.transferability_cell`)."""
        if examples:
            by_file: dict[str, list[str]] = {}
            for ex in examples:
                name = f"{ex['task']}.{ex['language']}.{ex['split']}.jsonl"
                by_file.setdefault(name, []).append(json.dumps(ex, ensure_ascii=False))
            for name, lines in by_file.items():
                atomic_write_text(self.cell_dir / "predictions" / name, "\n".join(lines) + "\n")
        previous = self.cell_dir / "metrics.json"
        baselines = _merge(previous, baselines or [], "baselines")
        records = _merge(previous, records)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        doc = {
            "schema": METRICS_SCHEMA,
            "cell": self.cell_id,
            "kind": self.kind,
            "params": self.params,
            "records": records,
            "flags": sorted(self.flags | {f for r in records for f in r.get("flags", [])}),
            **({"baselines": baselines} if baselines else {}),
            **({"estimates": estimates} if estimates is not None else {}),
            "provenance": collect(data=self.data, hparams=self.hparams.to_dict(),
                                  precision=self.precision, model_source=self.model_source,
                                  parent=self.parent, training=self.training, finished=now,
                                  wall_seconds=round(time.time() - self.started, 2),
                                  **(extra or {})),
        }
        atomic_write_json(self.cell_dir / "metrics.json", doc, fault_point="metrics_write")
        return doc


@dataclass
class FrozenCell(Cell):
    """A cell that reads an encoder as it is (retrieval, transferability): no training, no head.
    `open` sets `target` (the task evaluated) and `languages`."""

    target: Any = None  # xtl.data.tasks.Task
    languages: list[str] = field(default_factory=list)
    encoder: Any = None
    tokenizer: Any = None
    device: Any = "cpu"

    def checkpoint_text(self) -> str:
        """Which encoder, for the notebook's first line."""
        init = self.params.get("init_checkpoint")
        return (f"intermediate checkpoint {init}" if init
                else f"the base model {self.params['model']}")

    def load_encoder(self) -> tuple[Any, Any]:
        """The base model's encoder, or the `encoder/` of an intermediate checkpoint (checksum
        verified, architecture checked against the base model), in eval mode on its device;
        where it came from and the precision go to the provenance."""
        location, source = zoo.materialize(self.params["model"])
        init = Path(self.params["init_checkpoint"]) if self.params.get("init_checkpoint") else None
        net, tokenizer, report = build(location, [], init, expect_like=location if init else None)
        self.model_source = source
        if report.parent is not None:
            self.model_source = (f"encoder of checkpoint {init} (cell "
                                 f"{report.parent.get('cell')}; base model: {source})")
            self.parent = {"cell": report.parent.get("cell"),
                           "checksum": report.parent.get("checksum"), "path": str(init)}
        self.device = self._device()
        self.encoder, self.tokenizer = net.encoder.to(self.device).eval(), tokenizer
        return self.encoder, self.tokenizer


def check_compatible(target: Task, source: Task) -> None:
    """A target trained on another task's rows (XNLI on MNLI) needs the same format and labels."""
    if (target.format, tuple(target.label_names)) != (source.format, tuple(source.label_names)):
        raise ConfigError(f"target {target.name!r} ({target.format}, {list(target.label_names)}) "
                          f"cannot train on {source.name!r} ({source.format}, "
                          f"{list(source.label_names)})")


def _merge(path: Path, records: list[dict], key: str = "records") -> list[dict]:
    """Keep earlier records (or baselines) of (task, language, split) this run did not
    evaluate again."""
    if not path.is_file():
        return records
    fresh = {(r["task"], r["language"], r["split"]) for r in records}
    old = json.loads(path.read_text(encoding="utf-8")).get(key, [])
    return [r for r in old if (r["task"], r["language"], r["split"]) not in fresh] + records
