"""Training curves in TensorBoard, Weights & Biases or MLflow, through accelerate's trackers.

Off by default; `report_to: tensorboard` (or a list) in the experiment file turns it on. Every
training cell is one tracked run named by its cell id:
- tensorboard: event files in <run dir>/tensorboard/<cell id>/ (`tensorboard --logdir
  <run dir>/tensorboard` shows one run per cell);
- wandb: project = the experiment's name, run name = the cell id (wandb's own settings, e.g.
  WANDB_MODE=offline, come from its environment variables);
- mlflow: experiment = the experiment's name, run name = the cell id (MLFLOW_TRACKING_URI
  says where).
Each logged step holds the training loss, learning rate, padded fraction and examples/s, and
each evaluation the dev score (per task in a multi-task stage). `report_to` is not part of a
cell's identity: it changes what is recorded elsewhere, not a number of the cell.

accelerate drops a tracker whose package is missing with only a debug message, so `check`
refuses it when the experiment is planned.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from xtl.core.errors import ConfigError, unknown

# tracker -> (modules that provide it, the pip package to install)
TRACKERS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
}
# what `xtl run` hands to the kernels (and the workers of other executors)
REPORT_TO_ENV = "XTL_REPORT_TO"
DIR_ENV = "XTL_TRACKING_DIR"
PROJECT_ENV = "XTL_TRACKING_PROJECT"
CELL_ENV = "XTL_CELL"


def parse(value: Any, source: str) -> list[str]:
    """`report_to` as a list of tracker names ([] = off)."""
    if value is None or value == "none":
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{source}: report_to is {value!r}; expected a tracker name or a list "
                          f"of them ({', '.join(TRACKERS)})")
    for name in names:
        if name not in TRACKERS:
            raise unknown(f"tracker in report_to of {source}", name, TRACKERS)
    return list(dict.fromkeys(names))


def check(names: list[str]) -> None:
    """Every requested tracker's package is importable here, else a ConfigError saying which
    to install."""
    missing = [n for n in names
               if not any(importlib.util.find_spec(m) for m in TRACKERS[n][0])]
    if missing:
        packages = " ".join(TRACKERS[n][1] for n in missing)
        raise ConfigError(
            f"report_to: {', '.join(missing)} needs the package(s) {packages!r}, not installed "
            f"in this environment ({sys.prefix}): pip install {packages}, or remove it from "
            "report_to")


def export(names: list[str], root: str | os.PathLike, project: str) -> None:
    """Tell the kernels of this run what to report, where, and under which project."""
    if names:
        os.environ[REPORT_TO_ENV] = ",".join(names)
        os.environ[DIR_ENV] = str(root)
        os.environ[PROJECT_ENV] = project
    else:
        os.environ.pop(REPORT_TO_ENV, None)


def requested() -> list[str]:
    """The trackers this process should report to (from `xtl run`'s environment)."""
    return [n for n in os.environ.get(REPORT_TO_ENV, "").split(",") if n]


def trackers(cell_id: str | None = None) -> list[Any]:
    """accelerate tracker objects for this cell, named by its id ([] when tracking is off)."""
    names = requested()
    if not names:
        return []
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    check(names)
    cell = cell_id or os.environ.get(CELL_ENV) or "adhoc"
    root = os.environ.get(DIR_ENV, ".")
    project = os.environ.get(PROJECT_ENV) or "xtl"
    made = {"tensorboard": lambda: TensorBoardTracker(cell, os.path.join(root, "tensorboard")),
            "wandb": lambda: WandBTracker(project, name=cell),
            "mlflow": lambda: MLflowTracker(experiment_name=project, run_name=cell)}
    return [made[n]() for n in names]


def flat_config(hp: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as trackers accept them: numbers, text and booleans; the rest as text
    (TensorBoard's hparams refuse lists and None)."""
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v)
            for k, v in sorted(hp.items())}


def scalars(entry: dict[str, Any]) -> dict[str, float]:
    """One history entry as tracker scalars: `loss/<task>` in a multi-task stage,
    `dev_score/<task>` for each task's dev score."""
    task = entry.get("task")
    out = {}
    for key, value in entry.items():
        if key in ("step", "task"):
            continue
        if isinstance(value, dict):
            out.update({f"{key}/{k}": float(v) for k, v in value.items()
                        if isinstance(v, (int, float))})
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{key}/{task}" if task and key == "loss" else key] = float(value)
    return out
