"""Scores, on the 0-100 scale the XTREME tables use.

`score(task, predictions, references, language=None) -> dict` is the one entry point every
notebook uses. This version knows accuracy (XNLI, PAWS-X, XCOPA, Tatoeba); the other XTREME
metrics arrive with the evaluation issue.
"""

from __future__ import annotations

from collections.abc import Sequence

from xtl.errors import DataError, unknown
from xtl.tasks import Task


def accuracy(predictions: Sequence, references: Sequence) -> float:
    """Percentage of exact matches; labels compared as given (ints or stripped strings)."""
    if not references:
        raise DataError("accuracy of an empty set is undefined")
    hits = sum(p == r for p, r in zip(predictions, references, strict=True))
    return 100.0 * hits / len(references)


METRICS = {"accuracy": accuracy}


def score(task: Task, predictions: Sequence, references: Sequence,
          language: str | None = None) -> dict[str, float]:
    """{metric name: value in 0-100} for one language of `task`.

    `predictions` and `references` are aligned lists of label ids (classification).
    """
    if len(predictions) != len(references):
        raise DataError(f"{task.name}/{language}: {len(predictions)} predictions for "
                        f"{len(references)} references")
    if task.metric not in METRICS:
        raise unknown("metric", task.metric, METRICS)
    return {task.metric: METRICS[task.metric](predictions, references)}


def collapsed(predictions: Sequence) -> bool:
    """A classifier that predicts one class for every example has collapsed (XNLI at ~33%)."""
    return len(set(predictions)) <= 1 and len(predictions) > 1
