"""From an experiment to cells: grid expansion, stage reuse and the cell-id rule.

A cell is one phase notebook with one parameter set. Its id is a hash of the parameters that
change its results, with defaults resolved first and output, executor, mirror and evaluation
settings left out, so adding a seed, target, train size or evaluation language reuses the cells
that already exist. Stage cells (intermediate training) come before the targets using them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xtl import sources, zoo
from xtl.config import CONTRACT_VERSION, Experiment, intermediate_stages, resolve_hparams
from xtl.config import resolve_task as _task
from xtl.errors import ConfigError


@dataclass
class Cell:
    id: str
    kind: str  # "stage" | "target"
    notebook: str  # "intermediate" | "target"
    label: str
    identity: dict[str, Any]  # what the id hashes
    parent: str | None
    axes: dict[str, Any]  # model, intermediate, target, seed, train_size, grid values
    evaluation: dict[str, Any] = field(default_factory=dict)  # split, languages (not hashed)


def cell_id(kind: str, identity: dict[str, Any]) -> str:
    """'<kind>-<12 hex>': sha256 of the canonical JSON of the identity."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


@dataclass
class Plan:
    experiment: str
    cells: list[Cell]
    mirror: str | None
    contract: int = CONTRACT_VERSION

    def by_id(self) -> dict[str, Cell]:
        return {c.id: c for c in self.cells}

    def to_json(self) -> dict:
        return {"contract": self.contract, "experiment": self.experiment, "mirror": self.mirror,
                "cells": [asdict(c) for c in self.cells]}


def _grid_points(grid: dict[str, list]) -> list[dict[str, Any]]:
    keys = sorted(grid)
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(grid[k] for k in keys))]


def _intermediate_label(entry: Any) -> str:
    stages = intermediate_stages(entry)
    return ">".join("+".join(stage) for stage in stages) or "none"


def build(exp: Experiment, check_models: bool = True) -> Plan:
    """Expand the grid into deduplicated cells in dependency order; validate everything first."""
    v = exp.values
    mirror = sources.resolve_mirror(v["mirror"])
    models = {name: zoo.validate(name) if check_models else None for name in v["models"]}
    cells: dict[str, Cell] = {}
    points = _grid_points(v["grid"])
    for model, entry, target, seed, size, point in itertools.product(
            v["models"], v["intermediate"], v["targets"], v["seeds"], v["train_sizes"], points):
        ref = models[model]
        identity_model = ref.identity if ref else model
        defaults = ref.hparams if ref else {}
        stage_seed = v["intermediate_seed"] if v["intermediate_seed"] is not None else seed
        inter_label = _intermediate_label(entry)
        axes = {"model": model, "intermediate": inter_label, "target": target, "seed": seed,
                "train_size": size, **{f"grid.{k}": val for k, val in point.items()}}
        parent = None
        for stage in intermediate_stages(entry):
            task = _task(stage[0], exp.declared)
            identity = {
                "contract": CONTRACT_VERSION, "kind": "stage", "model": identity_model,
                "tasks": [_task_identity(t, exp) for t in stage], "seed": stage_seed,
                "hparams": resolve_hparams("intermediate", task, defaults, v, point),
                "parent": parent,
            }
            cid = cell_id("stage", identity)
            if cid not in cells:
                cells[cid] = Cell(cid, "stage", "intermediate", f"{model} | {'+'.join(stage)} "
                                  f"| seed {stage_seed}", identity, parent,
                                  {"model": model, "intermediate": "+".join(stage),
                                   "seed": stage_seed})
            parent = cid
        task = _task(target, exp.declared)
        train_task = task.train_task or task.name
        identity = {
            "contract": CONTRACT_VERSION, "kind": "target", "model": identity_model,
            "task": _task_identity(target, exp), "train_task": _task_identity(train_task, exp),
            "seed": seed, "train_size": size,
            "subsample_seed": v["subsample_seed"] if size is not None else None,
            # the TARGET's recipe (XNLI: 2 epochs), though the rows come from its train task
            "hparams": resolve_hparams("target", task, defaults, v, point),
            "parent": parent,
        }
        cid = cell_id("target", identity)
        languages = [lang for lang in (v["eval_languages"] or task.languages)
                     if lang in task.languages]
        if cid not in cells:
            cells[cid] = Cell(cid, "target", "target",
                              f"{model} | {inter_label} -> {target} | seed {seed}"
                              + (f" | n={size}" if size else ""), identity, parent, axes,
                              {"split": v["eval_split"], "languages": languages})
    if not cells:
        raise ConfigError("the experiment expands to zero cells")
    ordered = [c for c in cells.values() if c.kind == "stage"]
    ordered += [c for c in cells.values() if c.kind == "target"]
    return Plan(v["name"], ordered, str(mirror) if mirror else None)


def _task_identity(name: str, exp: Experiment) -> Any:
    """A registered task is its name; a declared one is its whole declaration."""
    return {"name": name, **exp.declared[name]} if name in exp.declared else name


def preflight(plan: Plan, exp: Experiment) -> None:
    """Check that every (task, split, language) a cell reads is available in the mirror."""
    mirror = Path(plan.mirror) if plan.mirror else None
    for cell in plan.cells:
        if cell.kind == "stage":
            for t in cell.identity["tasks"]:
                task = _task(t if isinstance(t, str) else t["name"], exp.declared)
                for split in ("train", "validation"):
                    sources.check_available(task, split, task.train_language, mirror)
        else:
            task = _task(cell.axes["target"], exp.declared)
            train = _task(task.train_task or task.name, exp.declared)
            sources.check_available(train, "train", train.train_language, mirror)
            sources.check_available(train, "validation", train.train_language, mirror)
            for lang in cell.evaluation["languages"]:
                sources.check_available(task, cell.evaluation["split"], lang, mirror)


def describe(plan: Plan, done: set[str] | None = None) -> str:
    """The cells as text: one line each, dependants indented under their stage."""
    done = done or set()
    lines = [f"experiment {plan.experiment!r}: {len(plan.cells)} cells "
             f"({sum(c.kind == 'stage' for c in plan.cells)} intermediate stages, "
             f"{sum(c.kind == 'target' for c in plan.cells)} targets); mirror: {plan.mirror}"]
    for cell in plan.cells:
        mark = "done" if cell.id in done else "todo"
        after = f" (after {cell.parent})" if cell.parent else ""
        lines.append(f"  [{mark}] {cell.id}  {cell.label}{after}")
    return "\n".join(lines)
