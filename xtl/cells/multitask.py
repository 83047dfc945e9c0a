"""What the intermediate notebook calls for a stage of one or SEVERAL tasks.

A stage cell's `tasks` parameter is a list: one task is the classic X-STILTs stage, several
are trained at once on the shared encoder, one head each (`xtl.training.train.fit_tasks`; the
sampler in `xtl.training.sampling`), each featurised, decoded and counted with its own TASK values
(its max length, epochs, ...: `CellRun.hparams_for`). Each task is read in its own `train_language`
(an English task, its machine translation, or a task in another language can share a stage);
an MLM task mixes every language it lists. metrics.json gets one record per task and metric
on that task's dev set.
"""

from __future__ import annotations

from typing import Any

import datasets

from xtl.cells import phases
from xtl.core.hparams import Hparams
from xtl.data import mlm
from xtl.data.sources import Split
from xtl.data.tasks import Task
from xtl.evaluation import evaluate
from xtl.model.models import XtlModel
from xtl.training import devices, sampling, train


def load_split(run: phases.CellRun, task: Task, split: str) -> Split:
    """One task's rows for a stage: its train_language; an MLM task every language it lists."""
    if task.format != mlm.FORMAT:
        return run.load(task, split)  # in its train_language
    task = mlm.with_reader(task)
    if len(task.languages) == 1:
        return run.load(task, split, task.languages[0])
    parts = [run.load(task, split, language) for language in task.languages]
    rows = datasets.concatenate_datasets([p.rows for p in parts])
    return Split(task.name, split, "mul", rows, "+".join(sorted({p.source for p in parts})),
                 " + ".join(p.location for p in parts),
                 "+".join(p.fingerprint for p in parts))


def load_stage(run: phases.CellRun, tasks: list[Task]) -> tuple[list[Split], list[Split]]:
    """(train splits, dev splits) of the stage's tasks, in task order."""
    return ([load_split(run, t, "train") for t in tasks],
            [load_split(run, t, "validation") for t in tasks])


def mixture_table(tasks: list[Task], trains: list[Split], hp: Hparams,
                  epochs: list[float] | None = None):
    """How the sampler will share the steps (before tokenising: rows, not features), each
    task for its own `epochs` (None: hp's)."""
    import pandas as pd

    mix = sampling.mixture([t.name for t in tasks], [len(s.rows) for s in trains],
                           [t.format == mlm.FORMAT for t in tasks], hp, epochs)
    frame = pd.DataFrame(mix.table()).set_index("task")
    frame.attrs["total"] = mix.total
    return frame


def fit_cell(run: phases.CellRun, model: XtlModel, tokenizer: Any, tasks: list[Task],
             trains: list[Split], devs: list[Split]) -> train.FitResult:
    """`CellRun.fit` for a stage of any number of tasks (one task: the same training)."""
    names = [t.name for t in tasks]
    meta = {"cell": run.cell_id, "kind": run.kind, "task": "+".join(names),
            **({"tasks": names} if len(names) > 1 else {}), "parent": run.parent}
    task_hps = ([run.task_hparams.get(t.name, {}) for t in tasks] if run.task_hparams
                else None)
    result = train.fit_tasks(model, tokenizer, tasks, trains, devs, run.hparams,
                             run.params["seed"], run.checkpoint_dir,
                             run.cell_dir / "history.jsonl", meta, task_hps=task_hps)
    run.precision = result.precision
    run.flags |= set(result.flags)
    run.training = {**phases.fit_summary(result), "best_dev_scores": result.best_scores,
                    "aggregate": result.aggregate, "task_steps": result.task_steps,
                    "processes": result.processes}
    return result


def describe_fit(result: train.FitResult, tasks: list[Task]) -> None:
    """One paragraph on a finished fit, and each task's part in it."""
    if len(tasks) == 1:
        phases.describe_fit(result, tasks[0])
        return
    resumed = f", resumed from step {result.resumed_from}" if result.resumed_from else ""
    print(f"{result.steps} optimizer steps in {result.seconds:.1f}s on {result.device} x "
          f"{result.processes} ({result.precision}{resumed}); padded tokens "
          f"{result.padded_fraction:.1%}; best aggregate dev score ({result.aggregate}) "
          f"{result.best_score:.2f} at step {result.best_step}")
    for name, score in result.best_scores.items():
        print(f"  {name}: {result.task_steps.get(name, 0)} steps, dev {score:.2f} at that step")
    print(f"checkpoint: {result.selection}")
    if result.collapsed:
        print("WARNING: a task collapsed (its dev score never rose above the majority class); "
              "flagged in metrics.json")


def task_curves(history: list[dict]):
    """Per task: training loss by step and dev score by evaluation, as one long table."""
    import pandas as pd

    rows = [{"step": h["step"], "task": h.get("task", "all"), "loss": h["loss"]}
            for h in history if "loss" in h]
    rows += [{"step": h["step"], "task": name, "dev_score": score}
             for h in history if "dev_scores" in h for name, score in h["dev_scores"].items()]
    return pd.DataFrame(rows)


def evaluate_stage(run: phases.CellRun, model: XtlModel, tokenizer: Any, tasks: list[Task],
                   devs: list[Split]) -> tuple[list[dict], list[dict]]:
    """Every task's dev records (its metrics; MLM: masked-token accuracy) and predictions."""
    device = devices.resolve_device(run.hparams.device)
    run.precision = devices.resolve_precision(run.hparams.precision, device)
    model = model.to(device)
    records, examples = [], []
    for task, dev in zip(tasks, devs, strict=True):
        score = mlm.evaluate if task.format == mlm.FORMAT else evaluate.evaluate
        got, predicted = score(model, tokenizer, task, [dev], run.hparams_for(task),
                               run.precision)
        records += got
        examples += predicted
    return records, examples
