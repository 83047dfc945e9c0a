"""Prediction for a task's splits, batched and in inference mode, and the per-language records.

Classification-like formats go through the generic path here (logits per row, the format's
`decode`); a format with its own `predict` hook (extractive QA: windows and span decoding) is
asked instead. The format's `references` and `example_ids` hooks name the scored rows' gold
answers and ids (`xtl.data.tasks.Format`: by default the `label` and `id` columns).
"""

from __future__ import annotations

from typing import Any

import torch

from xtl.core.faults import fault
from xtl.core.hparams import Hparams
from xtl.data.features import features, head_logits
from xtl.data.sources import Split
from xtl.data.tasks import Task, get_format
from xtl.evaluation import metrics
from xtl.model.models import XtlModel


def _logits(model: XtlModel, tokenizer: Any, task: Task, split: Split, hp: Hparams,
            precision: str) -> torch.Tensor:
    rows = features(task, split, tokenizer, hp)
    collate = get_format(task.format).collator(tokenizer)
    return torch.cat([logits.float().cpu() for _, logits in
                      head_logits(model, task, rows, collate, hp, precision)])


def predict(model: XtlModel, tokenizer: Any, task: Task, split: Split, hp: Hparams,
            precision: str = "fp32") -> tuple[list, torch.Tensor | None]:
    """(predictions, logits or None) for every row of `split`, in row order."""
    fmt = get_format(task.format)
    if fmt.predict is not None:
        return fmt.predict(model, tokenizer, task, split, hp, precision), None
    logits = _logits(model, tokenizer, task, split, hp, precision)
    return fmt.decode(logits), logits


def references(task: Task, split: Split) -> list:
    return get_format(task.format).references(split.rows)


def score_split(model: XtlModel, tokenizer: Any, task: Task, split: Split, hp: Hparams,
                precision: str = "fp32") -> float:
    """The task's headline score on one split (dev evaluation while training)."""
    predictions, _ = predict(model, tokenizer, task, split, hp, precision)
    scores = metrics.score(task, predictions, references(task, split), split.language)
    return metrics.headline(task, scores)


def _shown(task: Task, value: Any) -> Any:
    """A label id as its name; QA references as their answer texts; anything else as is."""
    if isinstance(value, dict) and "answers" in value:
        return value["answers"]
    if task.label_names and isinstance(value, int):
        return task.label_names[value]
    return value


def evaluate(model: XtlModel, tokenizer: Any, task: Task, splits: list[Split], hp: Hparams,
             precision: str = "fp32") -> tuple[list[dict], list[dict]]:
    """Metric records (one per language and metric) and per-example prediction records."""
    records, examples = [], []
    for split in splits:
        predictions, logits = predict(model, tokenizer, task, split, hp, precision)
        fault("evaluate")  # crash tests: a language predicted, nothing recorded yet
        refs = references(task, split)
        flags = ["collapsed"] if logits is not None and metrics.collapsed(predictions) else []
        for name, value in metrics.score(task, predictions, refs, split.language).items():
            records.append({"task": task.name, "language": split.language, "split": split.split,
                            "metric": name, "value": value, "n": len(refs), "flags": flags})
        ids = get_format(task.format).example_ids(split.rows)
        for i, (ex_id, pred, ref) in enumerate(zip(ids, predictions, refs, strict=True)):
            example = {"id": ex_id, "task": task.name, "language": split.language,
                       "split": split.split, "prediction": _shown(task, pred),
                       "reference": _shown(task, ref)}
            if logits is not None:
                example["logits"] = [round(x, 5) for x in logits[i].tolist()]
            examples.append(example)
    return records, examples
