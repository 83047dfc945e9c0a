"""Where each hyperparameter of a cell comes from: the layers of values (kit defaults, model
preset, task recipe, the experiment file's `hparams`, per-model and per-task entries, the grid
value) in their order of precedence (docs/contracts.md section 1), numbers in one canonical
type, and the part of them a cell id hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xtl.core.hparams import (
    HPARAM_DEFAULTS,
    MODEL_INTRINSIC,
    POST_V1,
    V1_HPARAMS,
    Hparams,
    reads,
    split_scope,
)

if TYPE_CHECKING:
    from xtl.data.tasks import Task


def canonical(key: str, value: Any) -> Any:
    """A number in the type of the kit's default, so `1` and `1.0` make the same cell id:
    learning_rate 1 -> 1.0, epochs 2.0 -> 2. Not `layer`, where 1 (an index) and 1.0 (a
    fraction of depth) mean different layers."""
    name = split_scope(key)[1]
    default = HPARAM_DEFAULTS.get(name)
    if name == "layer" or isinstance(value, bool) or isinstance(default, bool):
        return value
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def task_overrides(entry: dict) -> dict:
    """A tasks.<name> entry's hyperparameter overrides (declarations nest them in 'hparams')."""
    return dict(entry.get("hparams", {})) if "format" in entry else dict(entry)


# Layers of hyperparameter values, low to high (docs/contracts.md section 1): the kit's
# defaults, the model preset, the task's recipe, the file's `hparams`, the file's per-model
# hparams, `tasks.<name>`, the grid value. MODEL_INTRINSIC keys swap the preset and the task.
PRECEDENCE = ("kit", "preset", "task", "file", "model", "tasks", "grid")
INTRINSIC_PRECEDENCE = ("kit", "task", "preset", "file", "model", "tasks", "grid")


@dataclass
class Resolved:
    """A cell's hyperparameters and, for each, the layer its value came from (`kit`,
    `preset`, `task`, `file`, `model`, `tasks.<name>` or `grid`)."""

    values: dict[str, Any]
    sources: dict[str, str]


def _scoped(layer: dict, phase: str) -> dict:
    """A file-level layer's values for `phase`: plain keys and `<phase>.<key>`; a scoped key
    beats the plain one wherever both are given."""
    plain, scoped = {}, {}
    for key, value in layer.items():
        scope, name = split_scope(key)
        if scope is None:
            plain[name] = value
        elif scope == phase:
            scoped[name] = value
    return plain | scoped


def resolve_hparams(phase: str, task: Task | None, preset: dict, values: dict,
                    grid_point: dict, model: str | None = None) -> Resolved:
    """Every hyperparameter of a cell of `phase`, and where its value came from.

    Low to high: kit < preset < task recipe < file `hparams` < the file's hparams of `model` <
    `tasks.<name>` < grid value; for MODEL_INTRINSIC keys the preset beats the task recipe.
    `task` None (the LOOP values of a multi-task stage) leaves out the two per-task layers.
    """
    task_name = task.name if task is not None else None
    layers = {
        "kit": HPARAM_DEFAULTS,
        "preset": preset,
        "task": dict(task.hparams) if task is not None else {},
        "file": _scoped(values["hparams"], phase),
        "model": _scoped(values.get("model_hparams", {}).get(model, {}), phase),
        "tasks": (_scoped(task_overrides(values["tasks"].get(task_name, {})), phase)
                  if task is not None else {}),
        "grid": _scoped(grid_point, phase),
    }
    resolved = Resolved({}, {})
    for key in HPARAM_DEFAULTS:
        order = INTRINSIC_PRECEDENCE if key in MODEL_INTRINSIC else PRECEDENCE
        for layer in order:
            if key in layers[layer]:  # canonical: a recipe's 0 and a file's 0.0 are one value
                resolved.values[key] = canonical(key, layers[layer][key])
                resolved.sources[key] = f"tasks.{task_name}" if layer == "tasks" else layer
    # checked once, merged: a preset's or a task recipe's value too (the file's were at load)
    Hparams(resolved.values, f"{phase} hyperparameters" + (f" of {task_name}" if task else ""))
    return resolved


def identity_hparams(resolved: dict, formats: set[str] | frozenset[str] = frozenset()) -> dict:
    """The hparams a cell id hashes: every v1 key; a later key only where the cell's task
    formats read it and its value differs from what v1 computed (POST_V1)."""
    return {k: v for k, v in resolved.items()
            if k in V1_HPARAMS or (reads(k, formats) and v != POST_V1.get(k, HPARAM_DEFAULTS[k]))}
