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

from xtl.core.errors import ConfigError, DataError
from xtl.core.hparams import TASK_KEYS, Hparams, split_scope
from xtl.core.tables import plural
from xtl.data import sources
from xtl.evaluation import transferability
from xtl.grid.config import CONTRACT_VERSION, Experiment, intermediate_stages
from xtl.grid.config import resolve_task as _task
from xtl.grid.precedence import identity_hparams, resolve_hparams
from xtl.model import zoo
from xtl.offline import synth


@dataclass
class Cell:
    id: str
    kind: str  # "stage" | "target" | "retrieval" | "transferability"
    notebook: str  # "intermediate" | "target" | "retrieval" | "transferability"
    label: str
    identity: dict[str, Any]  # what the id hashes
    parent: str | None
    axes: dict[str, Any]  # model, intermediate, target, seed, train_size, grid values
    evaluation: dict[str, Any] = field(default_factory=dict)  # split, languages (not hashed)
    # every resolved hyperparameter and its source, what the notebook runs with (not hashed;
    # absent from plans written before revision 3: `hparams_of` falls back to the identity)
    recipe: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recipe:
    """What a cell trains or evaluates with: LOOP values for the whole cell, TASK values per
    task (a multi-task stage only: each task featurised, decoded and counted on its own),
    and where each value came from (`xtl.grid.precedence.resolve_hparams`)."""

    hparams: dict[str, Any]
    sources: dict[str, str]
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> TASK values
    task_sources: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def hparams_of(cell: Cell) -> Hparams:
    """A cell's full cell-level hyperparameters (a plan before revision 3: from its identity)."""
    return Hparams.from_dict(cell.recipe["hparams"] if cell.recipe else cell.identity["hparams"],
                             f"plan cell {cell.id}")


def task_hparams_of(cell: Cell, task: str) -> Hparams:
    """The hyperparameters one task of the cell runs with: its TASK values over the cell's."""
    return hparams_of(cell).replace(cell.recipe.get("tasks", {}).get(task, {}),
                                    f"plan cell {cell.id}, task {task}")


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
    raw_dir: str | None = None

    def by_id(self) -> dict[str, Cell]:
        return {c.id: c for c in self.cells}

    @classmethod
    def from_json(cls, doc: dict) -> Plan:
        return cls(doc["experiment"], [Cell(**c) for c in doc["cells"]], doc.get("mirror"),
                   doc.get("contract", CONTRACT_VERSION), doc.get("raw_dir"))

    def to_json(self) -> dict:
        return {"contract": self.contract, "experiment": self.experiment, "mirror": self.mirror,
                "raw_dir": self.raw_dir, "cells": [asdict(c) for c in self.cells]}


def _grid_points(grid: dict[str, list]) -> list[dict[str, Any]]:
    keys = sorted(grid)
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(grid[k] for k in keys))]


def _grid_label(point: dict[str, Any], phase: str) -> str:
    """' | key=value' for the grid values that apply to `phase` (part of a cell's label)."""
    return "".join(f" | {k}={val}" for k, val in point.items()
                   if split_scope(k)[0] in (None, phase))


def _intermediate_label(entry: Any) -> str:
    stages = intermediate_stages(entry)
    return ">".join("+".join(stage) for stage in stages) or "none"


def build(exp: Experiment, check_models: bool = True, require_models: bool = True) -> Plan:
    """Expand the grid into deduplicated cells in dependency order; validate everything first.

    `require_models=False` (`xtl plan`) names each model by its identity without checking that
    its weights are here (`unavailable` lists what is missing)."""
    v = exp.values
    mirror = sources.resolve_mirror(v["mirror"])
    raw = sources.resolve_raw(v["raw_dir"])
    resolve = zoo.validate if require_models else zoo.reference
    models = {name: resolve(name) if check_models else None for name in v["models"]}
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
        target_task = _task(target, exp.declared)
        # a target's own English prelude (XCOPA: Social IQa before COPA) follows the stages
        stages = intermediate_stages(entry) + [[t] for t in target_task.train_prelude]
        parent, chain = None, []
        for stage in stages:
            chain.append("+".join(stage))
            recipe = stage_recipe([_task(t, exp.declared) for t in stage], defaults, v, point,
                                  model)
            check_max_length(recipe, ref, model)
            identity = {
                "contract": CONTRACT_VERSION, "kind": "stage", "model": identity_model,
                "tasks": [_task_identity(t, exp) for t in stage], "seed": stage_seed,
                **stage_identity(recipe, [_task(t, exp.declared) for t in stage]),
                "parent": parent,
            }
            cid = cell_id("stage", identity)
            if cid not in cells:
                cells[cid] = Cell(cid, "stage", "intermediate",
                                  f"{model} | {'>'.join(chain)} | seed {stage_seed}"
                                  + _grid_label(point, "intermediate"), identity, parent,
                                  {"model": model, "intermediate": ">".join(chain),
                                   "seed": stage_seed}, recipe=recipe.to_json())
            parent = cid
        task = _task(target, exp.declared)
        languages = [lang for lang in (v["eval_languages"] or task.languages)
                     if lang in task.languages]
        if not languages:  # never silently "all of them"
            raise ConfigError(f"target {target!r} has none of the eval_languages "
                              f"{v['eval_languages']}; it has {', '.join(task.languages)}. "
                              "Add one of these, or evaluate it in an experiment of its own")
        # the TARGET's recipe (XNLI: 2 epochs), though the rows come from its train task
        recipe = single_recipe("target", task, defaults, v, point, model)
        check_max_length(recipe, ref, model)
        if task.format == "retrieval":  # no training: the stage's encoder (or the base) embeds
            _add_retrieval_cell(cells, task, identity_model, recipe, v, point, parent, axes,
                                model, inter_label, languages, exp)
            continue
        train_task = task.train_task or task.name
        identity = {
            "contract": CONTRACT_VERSION, "kind": "target", "model": identity_model,
            "task": _task_identity(target, exp), "train_task": _task_identity(train_task, exp),
            "seed": seed, "train_size": size,
            "subsample_seed": v["subsample_seed"] if size is not None else None,
            "hparams": identity_hparams(recipe.hparams, {task.format}),
            "parent": parent,
        }
        if v["transferability"] and task.format in transferability.FORMATS:
            _add_transferability_cell(cells, task, identity_model, recipe, v, parent, model,
                                      inter_label, stage_seed, languages, exp)
        cid = cell_id("target", identity)
        if cid not in cells:
            cells[cid] = Cell(cid, "target", "target",
                              f"{model} | {inter_label} -> {target} | seed {seed}"
                              + (f" | n={size}" if size else "") + _grid_label(point, "target"),
                              identity, parent, axes,
                              {"split": v["eval_split"], "languages": languages},
                              recipe.to_json())
    if not cells:
        raise ConfigError("the experiment expands to zero cells")
    # stages, then the cheap estimates that need only them, then the targets
    ordered = [c for c in cells.values() if c.kind == "stage"]
    ordered += [c for c in cells.values() if c.kind == "transferability"]
    ordered += [c for c in cells.values() if c.kind not in ("stage", "transferability")]
    return Plan(v["name"], ordered, str(mirror) if mirror else None,
                raw_dir=str(raw) if raw else None)


def check_max_length(recipe: Recipe, ref: Any, model: str) -> None:
    """max_length beyond the model's positions fails in the first batch: refuse it here."""
    limit = getattr(ref, "positions", None)
    if limit is None:
        return
    values = [(recipe.sources.get("max_length", "?"), recipe.hparams["max_length"])]
    values += [(f"{name}: {src.get('max_length', '?')}", hp["max_length"])
               for (name, hp), src in zip(recipe.tasks.items(), recipe.task_sources.values(),
                                          strict=True)]
    for source, value in values:
        if isinstance(value, int) and value > limit:
            raise ConfigError(f"max_length = {value} (from {source}) is more than model "
                              f"{model!r} has positions for ({limit} tokens); expected at most "
                              f"{limit}")


def check_train_sizes(plan: Plan, exp: Experiment) -> None:
    """A train size above the rows its split has (where the count is known without loading)."""
    mirror = Path(plan.mirror) if plan.mirror else None
    counted: dict[str, int | None] = {}
    for cell in plan.cells:
        size = cell.identity.get("train_size") if cell.kind == "target" else None
        if size is None:
            continue
        task = _task(cell.axes["target"], exp.declared)
        train = _task(task.train_task or task.name, exp.declared)
        if train.name not in counted:
            counted[train.name] = sources.count_rows(train, "train", train.train_language, mirror)
        rows = counted[train.name]
        if rows is not None and size > rows:
            raise ConfigError(f"train size {size} ({cell.label}) is more than the {rows} rows of "
                              f"{train.name}/{train.train_language}/train; expected at most "
                              f"{rows}, or null for all of them")


def _add_retrieval_cell(cells: dict, task: Any, identity_model: str, recipe: Recipe, v: dict,
                        point: dict, parent: str | None, axes: dict, model: str,
                        inter_label: str, languages: list[str], exp: Experiment) -> None:
    """A retrieval evaluation: no seed or train size of its own (only its parent's)."""
    identity = {"contract": CONTRACT_VERSION, "kind": "retrieval", "model": identity_model,
                "task": _task_identity(task.name, exp),
                "hparams": identity_hparams(recipe.hparams, {task.format}), "parent": parent}
    cid = cell_id("retrieval", identity)
    if cid not in cells:
        seed = f" | seed {axes['seed']}" if parent else ""
        cells[cid] = Cell(cid, "retrieval", "retrieval",
                          f"{model} | {inter_label} -> {task.name}{seed}"
                          + _grid_label(point, "target"), identity, parent,
                          {**axes, "train_size": None},
                          {"split": v["eval_split"], "languages": languages}, recipe.to_json())


# The target hyperparameters a transferability estimate depends on (featurisation, precision).
TRANSFERABILITY_HPARAMS = ("max_length", "input_prefix", "doc_stride", "tag_subtoken",
                           "precision")


def _add_transferability_cell(cells: dict, task: Any, identity_model: str, recipe: Recipe,
                              v: dict, parent: str | None, model: str, inter_label: str,
                              stage_seed: int, languages: list[str], exp: Experiment) -> None:
    """One estimate per (model, checkpoint the target starts from, target): no seed, train
    size or target training hyperparameters of its own (opt-in: `transferability:`)."""
    settings = v["transferability"]
    train_task = task.train_task or task.name
    identity = {"contract": CONTRACT_VERSION, "kind": "transferability",
                "model": identity_model, "task": _task_identity(task.name, exp),
                "train_task": _task_identity(train_task, exp),
                "hparams": {k: recipe.hparams[k] for k in TRANSFERABILITY_HPARAMS},
                "estimate": {**settings, "revision": transferability.REVISION,
                             "subsample_seed": v["subsample_seed"]},
                "parent": parent}
    cid = cell_id("transferability", identity)
    if cid not in cells:
        seed = f" | seed {stage_seed}" if parent else ""
        cells[cid] = Cell(cid, "transferability", "transferability",
                          f"{model} | {inter_label} ~> {task.name} (transferability){seed}",
                          identity, parent,
                          {"model": model, "intermediate": inter_label, "target": task.name,
                           "seed": stage_seed if parent else None, "train_size": None},
                          {"split": "validation",
                           "languages": languages if settings["language_rows"] else []},
                          recipe.to_json())


def single_recipe(phase: str, task: Any, preset: dict, values: dict, point: dict,
                  model: str | None) -> Recipe:
    """The recipe of a cell of one task: every value resolved through the task's layers."""
    resolved = resolve_hparams(phase, task, preset, values, point, model)
    return Recipe(resolved.values, resolved.sources)


def stage_recipe(tasks: list[Any], preset: dict, values: dict, point: dict,
                 model: str | None) -> Recipe:
    """A stage's recipe. One task: `single_recipe`. Several: the LOOP values come from the
    layers that are not per task (kit, preset, file, model, grid: one optimizer, one
    schedule, as jiant's multi-task runs), each task's TASK values from all its layers."""
    if len(tasks) == 1:
        return single_recipe("intermediate", tasks[0], preset, values, point, model)
    loop = resolve_hparams("intermediate", None, preset, values, point, model)
    recipe = Recipe(loop.values, loop.sources)
    for task in tasks:
        own = resolve_hparams("intermediate", task, preset, values, point, model)
        recipe.tasks[task.name] = {k: own.values[k] for k in TASK_KEYS}
        recipe.task_sources[task.name] = {k: own.sources[k] for k in TASK_KEYS}
    return recipe


def stage_identity(recipe: Recipe, tasks: list[Any]) -> dict[str, Any]:
    """The hyperparameters a stage id hashes. One task: `{"hparams": ...}` as in v1. Several:
    the LOOP values, and `task_hparams` with each task's TASK values (revision 3)."""
    if not recipe.tasks:
        return {"hparams": identity_hparams(recipe.hparams, {tasks[0].format})}
    formats = {t.format for t in tasks}
    loop = {k: v for k, v in recipe.hparams.items() if k not in TASK_KEYS}
    return {"hparams": identity_hparams(loop, formats),
            "task_hparams": {t.name: identity_hparams(recipe.tasks[t.name], {t.format})
                             for t in tasks}}


def _task_identity(name: str, exp: Experiment) -> Any:
    """A registered task is its name (a generated one with the generators' revision); a
    declared one is its whole declaration."""
    if name in exp.declared:
        return {"name": name, **exp.declared[name]}
    if _task(name, exp.declared).generator is not None:
        return {"name": name, "generator": synth.REVISION}
    return name


def needed_splits(plan: Plan, exp: Experiment) -> list[tuple[Any, str, str]]:
    """Every (task, split, language) some cell reads, each once, in plan order."""
    needed: dict[tuple[str, str, str], Any] = {}
    for cell in plan.cells:
        for task, split, lang in cell_splits(cell, exp):
            needed[(task.name, split, lang)] = task
    return [(task, split, lang) for (_, split, lang), task in needed.items()]


def cell_splits(cell: Cell, exp: Experiment) -> list[tuple[Any, str, str]]:
    """The (task, split, language) one cell reads, in the order it reads them."""
    if cell.kind == "stage":
        tasks = [_task(t if isinstance(t, str) else t["name"], exp.declared)
                 for t in cell.identity["tasks"]]
        return [(t, split, t.train_language) for t in tasks for split in ("train", "validation")]
    task = _task(cell.axes["target"], exp.declared)
    needed = []
    if cell.kind in ("target", "transferability"):
        train = _task(task.train_task or task.name, exp.declared)
        needed = [(train, split, train.train_language) for split in ("train", "validation")]
    split = cell.evaluation["split"]
    return needed + [(task, split, lang) for lang in cell.evaluation["languages"]]


def preflight(plan: Plan, exp: Experiment) -> None:
    """Check that every (task, split, language) a cell reads is available in the mirror."""
    mirror = Path(plan.mirror) if plan.mirror else None
    raw = Path(plan.raw_dir) if plan.raw_dir else None
    for task, split, lang in needed_splits(plan, exp):
        sources.check_available(task, split, lang, mirror, raw)
    check_train_sizes(plan, exp)


def unavailable(plan: Plan, exp: Experiment) -> list[str]:
    """Models and (task, split, language) files the plan needs that are not here, each with
    the command or setting that fixes it (`xtl plan` lists them; `--check` and `xtl run`
    refuse)."""
    missing = [why for why in (zoo.unavailable(zoo.reference(m)) for m in exp.values["models"])
               if why]
    mirror = Path(plan.mirror) if plan.mirror else None
    raw = Path(plan.raw_dir) if plan.raw_dir else None
    for task, split, lang in needed_splits(plan, exp):
        try:
            sources.check_available(task, split, lang, mirror, raw)
        except DataError as err:
            missing.append(f"{task.name}/{lang}/{split}: {err}")
    return missing


def work(cell: Cell, exp: Experiment, mirror: Path | None) -> str:
    """Examples x epochs of a cell's training (and rows it evaluates), from cheap row counts."""
    epochs = hparams_of(cell).epochs
    if cell.kind == "stage":
        names = [t if isinstance(t, str) else t["name"] for t in cell.identity["tasks"]]
        rows = [sources.count_rows(_task(n, exp.declared), "train", "en", mirror) for n in names]
        if len(names) > 1:
            return " + ".join(_times(n, task_hparams_of(cell, name).epochs)
                              for name, n in zip(names, rows, strict=True))
        return _times(None if None in rows else sum(rows), epochs)
    task = _task(cell.axes["target"], exp.declared)
    evals = [sources.count_rows(task, cell.evaluation["split"], lang, mirror)
             for lang in cell.evaluation["languages"]]
    shown = "?" if None in evals else f"{sum(evals):,}"
    if cell.kind == "retrieval":
        return f"no training; embeds {shown} rows in {plural(len(evals), 'language')}"
    if cell.kind == "transferability":
        settings = cell.identity["estimate"]
        train = _task(task.train_task or task.name, exp.declared)
        n = sources.count_rows(train, "train", train.train_language, mirror)
        rows = "?" if n is None else f"{min(n, settings['rows']):,}"
        per = (f"; up to {settings['language_rows']} validation rows in each of "
               f"{plural(len(evals), 'language')}" if evals else "")
        return f"no training; embeds {rows} English training rows{per}"
    train = _task(task.train_task or task.name, exp.declared)
    n = cell.identity["train_size"] or sources.count_rows(train, "train", train.train_language,
                                                          mirror)
    return f"{_times(n, epochs)}; evaluates {shown} rows in {plural(len(evals), 'language')}"


def _times(rows: int | None, epochs: float) -> str:
    if rows is None:
        return f"? examples x {_epochs(epochs)} (row count known after download)"
    return f"{rows:,} examples x {_epochs(epochs)} = {rows * epochs:,.0f}"


def _epochs(epochs: float) -> str:
    return f"{epochs} epoch" + ("" if epochs == 1 else "s")


def describe(plan: Plan, states: dict[str, tuple[str, str]], works: dict[str, str],
             times: dict[str, str] | None = None) -> str:
    """The cells as a dependency tree: each stage, then the cells that start from it; `times`
    (`xtl plan --estimate`) adds a line per cell."""
    stages = sum(c.kind == "stage" for c in plan.cells)
    estimates = sum(c.kind == "transferability" for c in plan.cells)
    also = f", {plural(estimates, 'transferability estimate')}" if estimates else ""
    lines = [f"experiment {plan.experiment!r}: {plural(len(plan.cells), 'cell')} "
             f"({plural(stages, 'intermediate stage')}, "
             f"{plural(len(plan.cells) - stages - estimates, 'target')}{also}); "
             f"mirror: {plan.mirror}"]
    children: dict[str | None, list[Cell]] = {}
    for cell in plan.cells:
        children.setdefault(cell.parent, []).append(cell)

    def walk(parent: str | None, depth: int) -> None:
        for cell in children.get(parent, []):
            state, note = states.get(cell.id, ("pending", ""))
            lines.append(f"{'    ' * depth}  [{state}] {cell.id}  {cell.label}"
                         + (f"  ({note})" if note else ""))
            lines.append(f"{'    ' * depth}      work: {works.get(cell.id, '?')}")
            if times is not None:
                lines.append(f"{'    ' * depth}      time: {times.get(cell.id, '?')}")
            walk(cell.id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)
