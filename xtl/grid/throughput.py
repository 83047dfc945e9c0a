"""Throughput figures for `xtl plan --estimate`: examples/s per model and task (or format) for
training and evaluation, a model load, a checkpoint write and the fixed per-cell and per-run
overheads. Either measured by a short calibration run (`xtl.grid.calibrate`) or written by the user
in a YAML/JSON file (`load_throughput`; its format is in the README). Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xtl.core.errors import ConfigError, closest, unknown
from xtl.core.hparams import Hparams
from xtl.data.tasks import Task
from xtl.grid.config import read_yaml

DEFAULT_OVERHEAD_S = 7.0  # per cell: kernel start, imports, plots, HTML (bench/runner_overhead.py)
DEFAULT_RUN_S = 15.0  # per `xtl run`: planning, then the analysis notebook and index
DEFAULT_LOAD_S = 5.0  # one model load (from a local directory)
DEFAULT_CHECKPOINT_S = 2.0  # one checkpoint write (safetensors + checksum)
KINDS = ("train", "eval")
DEVICES = ("cpu", "cuda")
# The hyperparameters that change how fast a task trains or evaluates (a calibration key).
SPEED_HPARAMS = ("batch_size", "grad_accum", "max_length", "doc_stride", "input_prefix",
                 "precision", "device", "freeze_embeddings", "gradient_checkpointing",
                 "group_by_length", "layer", "pooling")


@dataclass
class ModelFigures:
    """One model's figures: fixed costs, and examples/s by key (settings key, task, format)."""

    load_s: float = DEFAULT_LOAD_S
    checkpoint_s: float = DEFAULT_CHECKPOINT_S
    rates: dict[str, dict[str, float]] = field(default_factory=dict)  # key -> {train, eval}
    snapshot_s: float | None = None  # one resume snapshot (None: as long as a checkpoint)

    @property
    def snapshot(self) -> float:
        return self.checkpoint_s if self.snapshot_s is None else self.snapshot_s


@dataclass
class Throughput:
    """Where the figures came from and the figures themselves."""

    source: str
    device: str = "cpu"
    overhead_s: float = DEFAULT_OVERHEAD_S
    run_s: float = DEFAULT_RUN_S
    models: dict[str, ModelFigures] = field(default_factory=dict)

    def model(self, name: str) -> ModelFigures:
        if name not in self.models:
            raise ConfigError(f"{self.source} has no figures for model {name!r}"
                              f"{closest(name, self.models)}; it has: "
                              f"{', '.join(sorted(self.models)) or 'none'}")
        return self.models[name]

    def rate(self, model: str, task: Task, kind: str, hp: Hparams) -> float:
        """examples/s: the calibrated settings key, else the task's name, format, `default`."""
        rates = self.model(model).rates
        for key in (speed_key(task, hp), task.name, task.format, "default"):
            if kind in rates.get(key, {}):
                return rates[key][kind]
        raise ConfigError(f"{self.source} has no {kind} rate for model {model!r}, task "
                          f"{task.name!r} (format {task.format!r}); give "
                          f"models.{model}.rates.{task.format}.{kind} (or rates.default.{kind})")


def speed_key(task: Task, hp: Hparams) -> str:
    """'<task>@<settings>': the calibration key of a task under the settings that set its speed."""
    settings = ",".join(f"{k}={hp.get(k)!r}" for k in SPEED_HPARAMS)
    return f"{task.name}@{hashlib.sha256(settings.encode()).hexdigest()[:10]}"


FILE_KEYS = ("device", "overhead_s", "run_s", "models")
MODEL_KEYS = ("load_s", "checkpoint_s", "snapshot_s", "rates")


def load_throughput(path: str | Path) -> Throughput:
    """A user's throughput file (YAML or JSON); every error names the file and the bad value."""
    path = Path(path)
    doc = read_yaml(path, "throughput file")
    return parse_throughput(doc, str(path))


def parse_throughput(doc: Any, source: str) -> Throughput:
    _mapping(doc, source, "the file")
    _known(doc, FILE_KEYS, source, "top-level key")
    device = doc.get("device", "cpu")
    if device not in DEVICES:
        raise unknown(f"device in {source}", device, DEVICES)
    models = doc.get("models")
    _mapping(models, source, "models")
    if not models:
        raise ConfigError(f"{source}: models is empty; expected at least one model's figures")
    figures = {}
    for name, spec in models.items():
        where = f"models.{name}"
        _mapping(spec, source, where)
        _known(spec, MODEL_KEYS, source, f"key of {where}")
        rates = spec.get("rates")
        _mapping(rates, source, f"{where}.rates")
        checked: dict[str, dict[str, float]] = {}
        for key, pair in rates.items():
            _mapping(pair, source, f"{where}.rates.{key}")
            _known(pair, KINDS, source, f"key of {where}.rates.{key}")
            checked[str(key)] = {kind: _positive(value, source, f"{where}.rates.{key}.{kind}",
                                                 "examples/s")
                                 for kind, value in pair.items()}
        figures[str(name)] = ModelFigures(
            _positive(spec.get("load_s", DEFAULT_LOAD_S), source, f"{where}.load_s", "seconds",
                      zero=True),
            _positive(spec.get("checkpoint_s", DEFAULT_CHECKPOINT_S), source,
                      f"{where}.checkpoint_s", "seconds", zero=True),
            checked,
            None if spec.get("snapshot_s") is None else
            _positive(spec["snapshot_s"], source, f"{where}.snapshot_s", "seconds", zero=True))
    return Throughput(f"throughput file {source}", device,
                      _positive(doc.get("overhead_s", DEFAULT_OVERHEAD_S), source, "overhead_s",
                                "seconds", zero=True),
                      _positive(doc.get("run_s", DEFAULT_RUN_S), source, "run_s", "seconds",
                                zero=True),
                      figures)


def _mapping(value: Any, source: str, what: str) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {what} must be a mapping, got {value!r}")


def _known(doc: dict, valid: tuple[str, ...], source: str, what: str) -> None:
    for key in doc:
        if key not in valid:
            raise unknown(f"{what} in {source}", key, valid)


def _positive(value: Any, source: str, where: str, unit: str, zero: bool = False) -> float:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value >= 0 if zero else value > 0))
    if not ok:
        bound = ">= 0" if zero else "> 0"
        raise ConfigError(f"{source}: {where} = {value!r}; expected a finite number {bound} "
                          f"({unit})")
    return float(value)
