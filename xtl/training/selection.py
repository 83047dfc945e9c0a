"""Checkpoint selection: each task's dev score, the one score that picks the best checkpoint,
when the loop evaluates, the rule in words for metrics.json, and collapse to the majority class.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from xtl.core.hparams import Hparams
from xtl.data import mlm
from xtl.data.sources import Split
from xtl.data.tasks import Task
from xtl.evaluation import evaluate, metrics
from xtl.model.models import XtlModel
from xtl.training.train_data import TaskData

COLLAPSE_MARGIN = 1.0  # accuracy points above the majority-class share that still count as collapse


def selection_rule(data: list[TaskData], hp: Hparams, how: str, best_step: int, steps: int,
                   steps_per_epoch: int) -> str:
    """Which rule chose the best checkpoint, in words, for reports and metrics.json."""
    scored = [d for d in data if not d.auxiliary] or data
    if len(data) == 1:
        d = data[0]
        what = f"best {_language(d.dev.language)} dev {_score_name(d)} of {d.task.name}"
    elif how == "mean":
        what = (f"best mean of the dev scores of {', '.join(d.task.name for d in scored)}"
                + (" (MLM trained alongside, not selected on)" if len(scored) < len(data)
                   else ""))
    else:
        what = f"best dev score of {how}"
    when = (f"every {hp.eval_every} optimizer steps and at the end" if hp.eval_every
            else f"at the end of every epoch ({steps_per_epoch} optimizer steps)")
    rows = "; ".join(
        (f"the first {len(d.dev.rows):,} {d.dev.task} dev rows" if d.dev is not d.full_dev
         else f"all {len(d.dev.rows):,} {d.dev.task} dev rows") for d in data)
    patience = (f"early stop after {hp.patience} evaluations without improvement"
                if hp.patience else "no early stopping")
    return (f"{what}, evaluated {when} on {rows}; {patience}; chosen at step {best_step} "
            f"of {steps}")


def _score_name(data: TaskData) -> str:
    """The headline dev score's name (QA: (EM+F1)/2; MLM: masked-token accuracy)."""
    if data.auxiliary:
        return "masked-token accuracy"
    if data.task.metric in metrics.QA_METRICS:
        return "(EM+F1)/2"
    return metrics.headline_key(data.task)


def _language(code: str) -> str:
    return {"en": "English", "mul": "multilingual"}.get(code, code)



def dev_score(model: XtlModel, tokenizer: Any, data: TaskData, hp: Hparams, precision: str
              ) -> float:
    """A task's headline dev score; MLM's is masked-token accuracy (0-100)."""
    if data.auxiliary:
        return mlm.masked_accuracy(model, tokenizer, data.task, data.dev, hp, precision)[0]
    return evaluate.score_split(model, tokenizer, data.task, data.dev, hp, precision)


def aggregate(scores: dict[str, float], data: list[TaskData], how: str) -> float:
    """The one dev score that picks the best checkpoint and drives patience.

    'mean': the mean of the labelled tasks' headline scores (MLM tasks are trained alongside
    and reported, not selected on, unless the stage has nothing else); a task name: its score.
    """
    if how != "mean":
        return scores[how]
    chosen = [d.task.name for d in data if not d.auxiliary] or [d.task.name for d in data]
    return sum(scores[name] for name in chosen) / len(chosen)


def majority_share(task: Task, dev: Split) -> float | None:
    """The dev accuracy of always predicting the most frequent class (None: not accuracy)."""
    if task.metric != "accuracy" or not task.label_names or "label" not in dev.rows.column_names:
        return None
    labels = dev.rows["label"]
    return 100.0 * Counter(labels).most_common(1)[0][1] / len(labels)


def is_collapsed(scores: list[float], majority: float | None) -> bool:
    """Dev accuracy at the majority-class level at EVERY evaluation: the head learned a prior."""
    return majority is not None and bool(scores) and all(
        s <= majority + COLLAPSE_MARGIN for s in scores)


def eval_due(step: int, hp: Hparams, steps_per_epoch: int, total: int) -> bool:
    if hp.eval_every:
        return step % hp.eval_every == 0
    return step % steps_per_epoch == 0 or step == total


