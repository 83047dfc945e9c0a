"""What every metric family shares: the input check that predictions and references align,
micro precision/recall/F1 of two sets, and a short listing of bad items for error messages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from xtl.core.errors import DataError


def check_aligned(predictions: Sequence, references: Sequence, what: str) -> None:
    if len(references) == 0:
        raise DataError(f"{what}: no references to score (empty input)")
    if len(predictions) != len(references):
        raise DataError(f"{what}: {len(predictions)} predictions for {len(references)} references")


def set_prf(gold: set, predicted: set) -> dict[str, float]:
    """Micro precision/recall/F1 (0-100) of two sets; 0 where undefined, as seqeval does."""
    correct = len(gold & predicted)
    precision = correct / len(predicted) if predicted else 0.0
    recall = correct / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": 100.0 * f1, "precision": 100.0 * precision, "recall": 100.0 * recall}


def listed(items: Iterable, limit: int = 5) -> str:
    items = list(items)
    head = ", ".join(repr(x) for x in items[:limit])
    return head + (f", ... ({len(items)} in all)" if len(items) > limit else "")

