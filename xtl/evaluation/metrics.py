"""Scores, on the 0-100 scale the XTREME tables use, reproducing the official XTREME scorers.

`score(task, predictions, references, language=None) -> dict[str, float]` is the one entry point
every notebook uses; it dispatches on `task.metric`:

| task.metric  | tasks                        | keys returned                        |
|--------------|------------------------------|--------------------------------------|
| "accuracy"   | XNLI, PAWS-X, XCOPA, Tatoeba | accuracy                             |
| "seqeval_f1" | PAN-X                        | f1, token_accuracy                   |
| "udpos_f1"   | UD-POS                       | f1, token_accuracy                   |
| "squad"      | XQuAD, TyDiQA-GoldP          | exact_match, f1                      |
| "mlqa"       | MLQA (needs `language`)      | exact_match, f1                      |
| "squad_v2"   | SQuAD 2.0-style (no-answer)  | exact_match, f1, HasAns_*, NoAns_*   |
| "bucc_f1"    | BUCC 2018                    | f1, precision, recall[, threshold]   |
| "map@20"     | LAReQA, Mewsli-X             | map@20                               |

Every value is a percentage (0-100). `headline(task, scores)` gives the one number a table shows
(QA: (EM + F1) / 2, as XTREME's `avg_metric`). Each family's functions are public in its
module: xtl.evaluation.tagging_metrics (`tagging_scores` / `udpos_scores` add precision and recall),
xtl.evaluation.qa_metrics, xtl.evaluation.retrieval_metrics (`bucc_dev_test` is the BUCC
dev-tuned-threshold protocol). Bad inputs raise `xtl.core.errors.DataError` before any scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from xtl.core.errors import DataError, unknown
from xtl.evaluation.metric_checks import check_aligned
from xtl.evaluation.qa_metrics import mlqa, qa_score, squad, squad_v2
from xtl.evaluation.retrieval_metrics import bucc_f1, map_at_k, pair_scores
from xtl.evaluation.tagging_metrics import tag_names, tagging_scores, token_accuracy, udpos_scores

if TYPE_CHECKING:  # only for hints: importing the registry loads torch (seconds)
    from xtl.data.tasks import Task


def accuracy(predictions: Sequence, references: Sequence) -> float:
    """Percentage of exact matches over examples; labels compared as given (ints or strings).

    No stripping or type coercion happens here: 1 and "1" differ (as the official XCOPA scorer);
    strip string labels before calling where the official scorer strips (XNLI, PAWS-X, Tatoeba).
    For Tatoeba the examples are the queries: a duplicate target sentence retrieved at the wrong
    index is a miss, and each query counts once however many copies of it exist.
    """
    check_aligned(predictions, references, "accuracy")
    hits = sum(p == r for p, r in zip(predictions, references, strict=True))
    return 100.0 * hits / len(references)


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def _score_accuracy(task: Task, predictions: Any, references: Any, language: str | None
                    ) -> dict[str, float]:
    return {"accuracy": accuracy(predictions, references)}


def _recorded(scores: dict[str, float]) -> dict[str, float]:
    """What a tagging scorer's result records (its precision and recall are not kept)."""
    return {"f1": scores["f1"], "token_accuracy": scores["token_accuracy"]}


def _score_bucc(task: Task, predictions: Any, references: Any, language: str | None
                ) -> dict[str, float]:
    # Scored candidates: threshold tuned on these references (dev protocol); plain pairs: an
    # already-extracted prediction set (a submission), scored as is.
    if isinstance(predictions, Mapping):
        return bucc_f1(predictions, references)
    rows = list(predictions)
    if not rows:
        raise DataError("BUCC: no predicted pairs (empty input)")
    if len(rows[0]) == 3:
        return bucc_f1(rows, references)
    return pair_scores(rows, references)


METRICS: dict[str, Callable[[Task, Any, Any, str | None], dict[str, float]]] = {
    "accuracy": _score_accuracy,
    "seqeval_f1": lambda task, p, r, lang: _recorded(tagging_scores(p, r, task.label_names)),
    "udpos_f1": lambda task, p, r, lang: _recorded(udpos_scores(p, r, task.label_names)),
    "squad": lambda task, p, r, lang: squad(p, r),
    "mlqa": lambda task, p, r, lang: mlqa(p, r, lang),
    "squad_v2": lambda task, p, r, lang: squad_v2(p, r),
    "bucc_f1": _score_bucc,
    "map@20": lambda task, p, r, lang: {"map@20": map_at_k(p, r, 20)},
    # supertagging (CCG): per-token accuracy, as jiant reports it
    "token_accuracy": lambda task, p, r, lang: {"token_accuracy": token_accuracy(
        tag_names(p, task.label_names, "prediction"), tag_names(r, task.label_names,
                                                                  "reference"))},
}
QA_METRICS = frozenset({"squad", "mlqa", "squad_v2"})


def score(task: Task, predictions: Any, references: Any, language: str | None = None
          ) -> dict[str, float]:
    """{metric name: value in 0-100} for one language of `task`, by `task.metric` (table above).

    Input shapes: accuracy -- aligned label lists; tagging -- aligned lists of per-sentence tag
    lists (strings or ids into task.label_names); QA -- see `squad`; BUCC -- scored candidates
    ({(src, tgt): score} or (src, tgt, score) triples; threshold tuned on `references`, the gold
    pairs) or already-predicted (src, tgt) pairs; map@20 -- per query, ranked candidate ids and
    the relevant ids (`map_at_k`).
    """
    if task.metric not in METRICS:
        raise unknown("metric", task.metric, METRICS)
    try:
        return METRICS[task.metric](task, predictions, references, language)
    except DataError as err:
        raise DataError(f"{task.name}/{language}: {err}") from None


def headline(task: Task, scores: Mapping[str, float]) -> float:
    """The one number a table shows for `scores` from `score`: accuracy, F1, or for QA tasks
    (EM + F1) / 2."""
    if task.metric in QA_METRICS:
        return qa_score(scores)
    return scores[headline_key(task)]


def headline_key(task: Task) -> str:
    """The record (metric name) a per-language table or figure shows for `task`."""
    return {"accuracy": "accuracy", "token_accuracy": "token_accuracy",
            "map@20": "map@20"}.get(task.metric, "f1")


def collapsed(predictions: Sequence) -> bool:
    """A classifier that predicts one class for every example has collapsed (XNLI at ~33%)."""
    return len(set(predictions)) <= 1 and len(predictions) > 1
