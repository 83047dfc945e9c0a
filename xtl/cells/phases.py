"""The one entry of every phase notebook: `start(kind, ...)` checks the notebook's parameters
and opens the cell, an object of the kind's class (KINDS) over `xtl.cells.base.Cell`: it knows
its directories, loads data, builds, trains or embeds with the model, evaluates and writes
metrics.json. Stage and target cells are here; retrieval and transferability cells in their
own modules.

The notebooks hold the narrative and display; the logic lives here so it is testable without
a kernel (tests call these functions directly).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets

from xtl.cells.base import Cell, check_compatible
from xtl.cells.retrieval import RetrievalCell
from xtl.cells.transferability_cell import TransferabilityCell
from xtl.core.errors import ConfigError, ModelError, unknown
from xtl.core.hparams import (
    HPARAM_DEFAULTS,
    MULTITASK_KEYS,
    SPLITS,
    TASK_KEYS,
    Hparams,
    check_hparam,
    reads,
)
from xtl.core.progress import headless
from xtl.data import mlm, sources
from xtl.data.tasks import Task
from xtl.evaluation import evaluate
from xtl.model import zoo
from xtl.model.models import build, load_heads, verify_checkpoint
from xtl.training import resume, sampling, train


class _TrainingCell(Cell):
    """A cell that trains (stage, target): model building, its finished checkpoint."""

    def build_model(self, name: str, tasks: list[Task], init_checkpoint: str | None = None):
        location, self.model_source = zoo.materialize(name)
        init = Path(init_checkpoint) if init_checkpoint else None
        model, tokenizer, report = build(location, tasks, init, seed=self.params["seed"],
                                         expect_like=location if init else None)
        if report.parent is not None:
            self.model_source = (f"checkpoint {init_checkpoint} of cell "
                                 f"{report.parent.get('cell')} (base model: {self.model_source})")
            self.parent = {"cell": report.parent.get("cell"),
                           "checksum": report.parent.get("checksum"),
                           "path": str(init_checkpoint)}
        return model, tokenizer, report

    def finished_checkpoint(self) -> Path | None:
        """This cell's own best checkpoint if a previous run completed its training.

        A run killed mid-training leaves a valid `best` too; its pending resume state says the
        training is not finished, so the cell trains (resuming) instead of evaluating it.
        """
        if resume.pending(self.checkpoint_dir):
            return None
        best = self.checkpoint_dir / "best"
        try:
            record = verify_checkpoint(best)
        except ModelError:
            return None
        if record.get("cell") != self.cell_id:
            return None
        # metrics.json keeps the training summary (and its selection rule) of that run
        self.training = self.training or _earlier_training(self.cell_dir / "metrics.json")
        return best

    def load_trained(self, tasks: list[Task], checkpoint: Path):
        """The encoder AND heads of a finished checkpoint of this cell, ready to evaluate."""
        record = verify_checkpoint(checkpoint)
        self.parent = self.parent or record.get("parent")
        model, tokenizer, _ = build(checkpoint / "encoder", tasks)
        load_heads(model, checkpoint)
        return model, tokenizer

    def _record(self, result: train.FitResult, **extra: Any) -> train.FitResult:
        """What a finished fit leaves in metrics.json: precision, flags, the training summary."""
        self.precision = result.precision
        self.flags |= set(result.flags)
        self.training = {**fit_summary(result), **extra}
        return result


class TargetCell(_TrainingCell):
    """A target: fine-tuned on English rows (its own or another task's), evaluated zero-shot."""

    def open(self) -> None:
        task, train_task = self.params.get("task"), self.params.get("train_task")
        if task and train_task:  # an ad-hoc run may not name them
            check_compatible(self.task(task), self.task(train_task))

    def fit(self, model, tokenizer, task: Task, train_split, dev_split) -> train.FitResult:
        meta = {"cell": self.cell_id, "kind": self.kind, "task": task.name,
                "parent": self.parent}
        result = train.fit(model, tokenizer, task, train_split, dev_split, self.hparams,
                           self.params["seed"], self.checkpoint_dir, self.cell_dir /
                           "history.jsonl", meta)
        return self._record(result)

    def evaluate(self, model, tokenizer, task: Task, splits: list[sources.Split]):
        """All languages in one process, on the training device, in the training precision."""
        return evaluate.evaluate(model.to(self._device()), tokenizer, task, splits,
                                 self.hparams, self.precision)


class StageCell(_TrainingCell):
    """An intermediate stage of one task or SEVERAL trained at once on the shared encoder, one
    head each (`xtl.training.train.fit_tasks`; the sampler in `xtl.training.sampling`), each
    featurised, decoded and counted with its own TASK values (`hparams_for`). Each task is read
    in its own `train_language`; an MLM task mixes every language it lists. metrics.json gets
    one record per task and metric on that task's dev set."""

    def load_split(self, task: Task, split: str) -> sources.Split:
        """One task's rows: its train_language; an MLM task every language it lists."""
        if task.format != mlm.FORMAT:
            return self.load(task, split)  # in its train_language
        task = mlm.with_reader(task)
        if len(task.languages) == 1:
            return self.load(task, split, task.languages[0])
        parts = [self.load(task, split, language) for language in task.languages]
        rows = datasets.concatenate_datasets([p.rows for p in parts])
        return sources.Split(task.name, split, "mul", rows,
                             "+".join(sorted({p.source for p in parts})),
                             " + ".join(p.location for p in parts),
                             "+".join(p.fingerprint for p in parts))

    def load_stage(self, tasks: list[Task]) -> tuple[list[sources.Split], list[sources.Split]]:
        """(train splits, dev splits) of the stage's tasks, in task order."""
        return ([self.load_split(t, "train") for t in tasks],
                [self.load_split(t, "validation") for t in tasks])

    def fit(self, model, tokenizer, tasks: list[Task], trains: list[sources.Split],
            devs: list[sources.Split]) -> train.FitResult:
        names = [t.name for t in tasks]
        meta = {"cell": self.cell_id, "kind": self.kind, "task": "+".join(names),
                **({"tasks": names} if len(names) > 1 else {}), "parent": self.parent}
        task_hps = ([self.task_hparams.get(t.name, {}) for t in tasks] if self.task_hparams
                    else None)
        result = train.fit_tasks(model, tokenizer, tasks, trains, devs, self.hparams,
                                 self.params["seed"], self.checkpoint_dir,
                                 self.cell_dir / "history.jsonl", meta, task_hps=task_hps)
        return self._record(result, best_dev_scores=result.best_scores,
                            aggregate=result.aggregate, task_steps=result.task_steps,
                            processes=result.processes)

    def evaluate(self, model, tokenizer, tasks: list[Task], devs: list[sources.Split]
                 ) -> tuple[list[dict], list[dict]]:
        """Every task's dev records (its metrics; MLM: masked-token accuracy) and predictions."""
        model = model.to(self._device())
        records, examples = [], []
        for task, dev in zip(tasks, devs, strict=True):
            score = mlm.evaluate if task.format == mlm.FORMAT else evaluate.evaluate
            got, predicted = score(model, tokenizer, task, [dev], self.hparams_for(task),
                                   self.precision)
            records += got
            examples += predicted
        return records, examples


# The cell each kind of notebook opens.
KINDS: dict[str, type[Cell]] = {"stage": StageCell, "target": TargetCell,
                                "retrieval": RetrievalCell,
                                "transferability": TransferabilityCell}


METRIC_NOTES = {
    "udpos_f1": "UD-POS F1 uses seqeval 0.0.12's chunking of UPOS tags, which reproduces the "
                "official XTREME numbers (seqeval >= 0.0.19 reads 'NOUN' as prefix 'N' + type "
                "'OUN' and scores differently); token accuracy is reported beside it.",
    "seqeval_f1": "Entity F1 as seqeval computes it (micro, lenient), per language; token "
                  "accuracy beside it.",
    "mlqa": "MLQA EM/F1 use the official per-language answer normaliser.",
    "squad": "EM/F1 with the SQuAD v1.1 (English) normaliser for every language, as XTREME does.",
}


def metric_note(task: Task) -> str:
    """How the task's scores are computed, for the report (empty when there is nothing to say)."""
    return METRIC_NOTES.get(task.metric, "")


def fit_summary(result: train.FitResult) -> dict:
    """What metrics.json keeps of a training run."""
    return {"steps": result.steps, "best_step": result.best_step, "best_dev": result.best_score,
            "precision": result.precision, "device": result.device,
            "padded_fraction": round(result.padded_fraction, 4), "collapsed": result.collapsed,
            "resumed_from": result.resumed_from, "seconds": round(result.seconds, 2),
            "selection": result.selection}


def describe_fit(result: train.FitResult, tasks: list[Task]) -> None:
    """One paragraph on a finished fit, for the notebook; a multi-task stage: each task's part
    in it."""
    resumed = f", resumed from step {result.resumed_from}" if result.resumed_from else ""
    if len(tasks) == 1:
        print(f"{result.steps} optimizer steps in {result.seconds:.1f}s on {result.device} "
              f"({result.precision}{resumed}); padded tokens {result.padded_fraction:.1%}; "
              f"best dev {tasks[0].metric} {result.best_score:.2f} at step {result.best_step}")
    else:
        print(f"{result.steps} optimizer steps in {result.seconds:.1f}s on {result.device} x "
              f"{result.processes} ({result.precision}{resumed}); padded tokens "
              f"{result.padded_fraction:.1%}; best aggregate dev score ({result.aggregate}) "
              f"{result.best_score:.2f} at step {result.best_step}")
        for name, score in result.best_scores.items():
            print(f"  {name}: {result.task_steps.get(name, 0)} steps, dev {score:.2f} at that "
                  "step")
    print(f"checkpoint: {result.selection}")
    if result.collapsed and len(tasks) == 1:
        print("WARNING: collapsed: the dev score never rose above the majority class; this run "
              "is flagged in metrics.json")
    elif result.collapsed:
        print("WARNING: a task collapsed (its dev score never rose above the majority class); "
              "flagged in metrics.json")


def mixture_table(tasks: list[Task], trains: list[sources.Split], hp: Hparams,
                  epochs: list[float] | None = None):
    """How a multi-task stage's sampler will share the steps (before tokenising: rows, not
    features), each task for its own `epochs` (None: hp's)."""
    import pandas as pd

    mix = sampling.mixture([t.name for t in tasks], [len(s.rows) for s in trains],
                           [t.format == mlm.FORMAT for t in tasks], hp, epochs)
    frame = pd.DataFrame(mix.table()).set_index("task")
    frame.attrs["total"] = mix.total
    return frame


def task_curves(history: list[dict]):
    """Per task: training loss by step and dev score by evaluation, as one long table."""
    import pandas as pd

    rows = [{"step": h["step"], "task": h.get("task", "all"), "loss": h["loss"]}
            for h in history if "loss" in h]
    rows += [{"step": h["step"], "task": name, "dev_score": score}
             for h in history if "dev_scores" in h for name, score in h["dev_scores"].items()]
    return pd.DataFrame(rows)


def _earlier_training(path: Path) -> dict | None:
    """The training summary an earlier run of this cell wrote to metrics.json, if any."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("provenance", {}).get("training")
    except (ValueError, OSError, AttributeError):
        return None


def records_table(records: list[dict]):
    """Records as a language x metric table (pandas), for display."""
    import pandas as pd

    frame = pd.DataFrame(records)
    return frame.pivot_table(index="language", columns="metric", values="value").round(2)


def start(kind: str, cell_id: str, cell_dir: str, checkpoint_dir: str, hparams: dict,
          mirror: str | None = None, declared_tasks: dict | None = None,
          raw_dir: str | None = None, *, task_hparams: dict | None = None,
          hparam_sources: dict | None = None, **params: Any) -> Cell:
    """Validate a notebook's parameters and open its cell (also for ad-hoc runs in Jupyter):
    the shared checks, then the kind's own (`Cell.open`). A retrieval or transferability
    notebook passes its cell_dir as checkpoint_dir (it writes no checkpoint).

    `task_hparams` (a multi-task stage): {task: its TASK values}; `hparam_sources`: where the
    plan resolved each value from ({"*": {key: layer}, task: {key: layer}}), for the report.
    """
    for key, value in (("hparams", hparams), ("declared_tasks", declared_tasks or {}),
                       ("task_hparams", task_hparams or {}),
                       ("hparam_sources", hparam_sources or {})):
        if not isinstance(value, dict):
            raise ConfigError(f"notebook parameter {key} must be a mapping, got {value!r}")
    for key, value in (("cell_id", cell_id), ("cell_dir", cell_dir),
                       ("checkpoint_dir", checkpoint_dir)):
        if not isinstance(value, (str, Path)) or not str(value):
            raise ConfigError(f"notebook parameter {key} must be a non-empty string, got "
                              f"{value!r}")
    resolved = Hparams.from_dict(hparams, "notebook parameter hparams")
    if kind not in KINDS:
        raise ConfigError(f"kind must be 'stage', 'target', 'retrieval' or 'transferability', "
                          f"got {kind!r}")
    run = KINDS[kind](cell_id, kind, Path(cell_dir), Path(checkpoint_dir),
                  {"cell_id": cell_id, "kind": kind, **params}, resolved,
                  sources.resolve_mirror(mirror), sources.resolve_raw(raw_dir),
                  dict(declared_tasks or {}), task_hparams=_task_values(task_hparams or {}),
                  sources=_sources(hparam_sources, hparams, task_hparams or {}))
    _check_names(run, params)
    stage_tasks = params.get("tasks") or []
    for name in run.task_hparams:
        if name not in stage_tasks:
            raise ConfigError(f"notebook parameter task_hparams names {name!r}, which is not a "
                              f"task of this cell ({stage_tasks})")
    run.cell_dir.mkdir(parents=True, exist_ok=True)
    run.open()
    if headless():
        datasets.disable_progress_bars()
    return run


def _sources(given: dict | None, hparams: dict, task_hparams: dict) -> dict[str, dict[str, str]]:
    """The plan's sources; an ad-hoc run (none given): `notebook` for what its parameters
    set, `kit` for the defaults."""
    if given:
        return {scope: dict(keys) for scope, keys in given.items()}
    out = {"*": {k: "notebook" if k in hparams else "kit" for k in HPARAM_DEFAULTS}}
    for name, values in task_hparams.items():
        out[name] = {k: "notebook" if k in values else out["*"][k] for k in TASK_KEYS}
    return out


def _task_values(task_hparams: dict) -> dict[str, dict[str, Any]]:
    """Per-task TASK values, checked: a LOOP value (one per cell) cannot be given per task."""
    out = {}
    for name, values in task_hparams.items():
        if not isinstance(values, dict):
            raise ConfigError(f"notebook parameter task_hparams.{name} must be a mapping, got "
                              f"{values!r}")
        for key, value in values.items():
            if key not in TASK_KEYS:
                raise ConfigError(f"notebook parameter task_hparams.{name}: {key!r} is one value "
                                  f"per cell, not per task; per-task keys: {', '.join(TASK_KEYS)}")
            check_hparam(key, value, f"notebook parameter task_hparams.{name}")
        out[name] = dict(values)
    return out


# What a retrieval cell reads (no training).
RETRIEVAL_KEYS = ("max_length", "input_prefix", "pooling", "layer", "batch_size", "precision",
                  "device")


def recipe_table(run: Cell, tasks: list[Task]):
    """The values this cell runs with and where each came from (`kit`, `preset`, `task`,
    `file`, `model`, `tasks.<name>`, `grid`; `notebook` for an ad-hoc run), keys the cell's
    tasks do not read left out. A multi-task stage: the stage's values, then each task's own
    TASK values (featurisation, decoding, epochs)."""
    import pandas as pd

    formats = {t.format for t in tasks}
    if run.kind == "retrieval":
        keys = list(RETRIEVAL_KEYS)
    else:
        keys = [k for k in HPARAM_DEFAULTS if reads(k, formats)
                and (len(tasks) > 1 or k not in MULTITASK_KEYS)]
    own = run.sources.get("*", {})
    rows = []
    per_task = bool(run.task_hparams)
    for key in keys:
        if per_task and key in TASK_KEYS:
            continue
        rows.append({"scope": "stage" if per_task else "cell", "key": key,
                     "value": repr(run.hparams[key]) if isinstance(run.hparams[key], str)
                     else run.hparams[key], "from": own.get(key, "kit")})
    for task in tasks if per_task else []:
        values, where = run.hparams_for(task), run.sources.get(task.name, {})
        for key in TASK_KEYS:
            if reads(key, {task.format}):
                value = values[key]
                rows.append({"scope": task.name, "key": key,
                             "value": repr(value) if isinstance(value, str) else value,
                             "from": where.get(key, "kit")})
    frame = pd.DataFrame(rows).set_index(["scope", "key"] if per_task else "key")
    frame["value"] = [_shown_value(v) for v in frame["value"]]
    return frame.drop(columns="scope", errors="ignore")


def _check_names(run: Cell, params: dict[str, Any]) -> None:
    """Tasks, evaluation split and languages named by the parameters, before any data is read
    (a bad evaluation language would otherwise fail only after training)."""
    names = params.get("tasks") or [params[k] for k in ("task", "train_task") if params.get(k)]
    for name in names if isinstance(names, list) else [names]:
        if not isinstance(name, str):
            raise ConfigError(f"notebook parameters name tasks by strings, got {name!r}")
        run.task(name)
    split = params.get("eval_split")
    if split is not None and split not in SPLITS:
        raise unknown("notebook parameter eval_split", split, SPLITS)
    languages = params.get("eval_languages")
    if languages is not None and params.get("task"):
        task = run.task(params["task"])
        for lang in languages if isinstance(languages, list) else [languages]:
            if lang not in task.languages:
                raise unknown(f"language of task {task.name!r} in notebook parameter "
                              "eval_languages", lang, task.languages)


def _shown_value(value: Any) -> str:
    """A recipe value as text: floats as written (1e-08, 0.0005), a long one to 4 significant
    digits (a layer fraction 14/24 = 0.5833)."""
    if isinstance(value, float) and not isinstance(value, bool) and len(repr(value)) > 8:
        return f"{value:.4g}"
    return str(value)


def data_table(run: Cell, columns: list[str] | None = None):
    """The data the cell read, one row per task/language/split (`columns` of its provenance,
    default all). Unusable rows (reason: count) only when some split has them: otherwise the
    column would be empty in every row."""
    import pandas as pd

    frame = pd.DataFrame(run.data).T
    if columns is not None:
        frame = frame[[c for c in columns if c in frame]]
    if "unusable" in frame:
        if not any(frame["unusable"]):
            return frame.drop(columns="unusable")
        frame["unusable"] = ["; ".join(f"{why}: {n}" for why, n in v.items()) if v else "-"
                             for v in frame["unusable"]]
    return frame
