"""Retrieval scores: BUCC 2018 (threshold search over mined candidate pairs, the dev-tuned
threshold protocol) and mAP@k of ranked retrieval (LAReQA, Mewsli-X).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence

from xtl.core.errors import DataError
from xtl.evaluation.metric_checks import check_aligned, listed, set_prf

Pair = tuple[Hashable, Hashable]


def bucc_candidates(candidates: Mapping[Pair, float] | Iterable[tuple[Hashable, Hashable, float]]
                    ) -> dict[Pair, float]:
    """{(source id, target id): score} from a mapping or (source, target, score) triples.

    A pair listed twice keeps its max score (as the official candidate reader); order of first
    appearance is kept, since it decides ties in the threshold search. NaN scores and an empty
    candidate list are errors.
    """
    items = candidates.items() if isinstance(candidates, Mapping) else _triples(candidates)
    out: dict[Pair, float] = {}
    for pair, value in items:
        value = float(value)
        if math.isnan(value):
            raise DataError(f"BUCC: candidate {pair!r} has a NaN score")
        out[pair] = max(value, out.get(pair, -math.inf))
    if not out:
        raise DataError("BUCC: no candidate pairs to score (empty input)")
    return out


def _triples(candidates: Iterable) -> Iterable[tuple[Pair, float]]:
    for row in candidates:
        if len(row) != 3:
            raise DataError(f"BUCC: candidate {row!r} is not (source, target, score)")
        yield (row[0], row[1]), row[2]


def _gold_pairs(gold: Iterable[Sequence]) -> set[Pair]:
    pairs = set()
    for row in gold:
        if len(row) != 2:
            raise DataError(f"BUCC: gold row {row!r} is not (source, target)")
        pairs.add((row[0], row[1]))
    if not pairs:
        raise DataError("BUCC: the gold pair list is empty (recall is undefined)")
    return pairs


def bucc_threshold(candidates: Mapping[Pair, float] | Iterable, gold: Iterable[Sequence]
                   ) -> float:
    """The official BUCC threshold search (utils_retrieve.bucc_optimize), on `gold`.

    Candidates sorted by score, descending (ties keep their input order, like the official
    stable sort); walking down, P/R/F1 of "the top n are predicted" are computed against the
    gold and the first strictly best F1 is kept; the threshold is the MIDPOINT between that
    candidate's score and the next candidate's. Pairs with score >= threshold are predicted.
    Edge cases: if the best F1 is at the LAST candidate (the official code crashes there on
    items[i + 1]) the threshold is that last candidate's score, so every candidate is predicted,
    which is exactly the F1-maximising cut; if no candidate is gold the official 0.0 is kept.
    """
    cands, gold_set = bucc_candidates(candidates), _gold_pairs(gold)
    ranked = sorted(cands.items(), key=lambda item: -item[1])
    best_f1, best, correct = 0.0, None, 0
    for n, (pair, _) in enumerate(ranked, start=1):
        correct += pair in gold_set
        if correct:
            # P and R first, then F1: the same float path as the official code, so ties compare
            # equal where it would.
            precision, recall = correct / n, correct / len(gold_set)
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best_f1:
                best_f1, best = f1, n - 1
    if best is None:
        return 0.0
    if best == len(ranked) - 1:
        return ranked[best][1]
    return (ranked[best][1] + ranked[best + 1][1]) / 2


def pair_scores(predicted: Iterable[Sequence], gold: Iterable[Sequence]) -> dict[str, float]:
    """{"f1", "precision", "recall"} (0-100) of a set of predicted pairs against the gold pairs
    (the official evaluate.py on a BUCC submission); no correct pair scores 0 throughout."""
    predicted_set = {(row[0], row[1]) for row in predicted}
    return set_prf(_gold_pairs(gold), predicted_set)


def bucc_extract(candidates: Mapping[Pair, float] | Iterable, threshold: float) -> set[Pair]:
    """The candidate pairs predicted at `threshold` (score >= threshold)."""
    return {pair for pair, value in bucc_candidates(candidates).items() if value >= threshold}


def bucc_f1(candidates: Mapping[Pair, float] | Iterable, gold: Iterable[Sequence],
            threshold: float | None = None) -> dict[str, float]:
    """P/R/F1 of the pairs predicted at `threshold`; with threshold=None it is tuned on this same
    gold (the official dev/"sample" protocol, an oracle on that split).

    Returns {"f1", "precision", "recall", "threshold"}; the first three 0-100, the threshold on
    the candidates' score scale.
    """
    gold = list(gold)
    if threshold is None:
        threshold = bucc_threshold(candidates, gold)
    if math.isnan(threshold):
        raise DataError("BUCC: the threshold is NaN")
    return {**pair_scores(bucc_extract(candidates, threshold), gold), "threshold": threshold}


def bucc_dev_test(dev_candidates: Mapping[Pair, float] | Iterable, dev_gold: Iterable[Sequence],
                  test_candidates: Mapping[Pair, float] | Iterable,
                  test_gold: Iterable[Sequence]) -> dict[str, float]:
    """BUCC test scores with the threshold tuned on dev: {"f1", "precision", "recall" (test,
    0-100), "threshold" (tuned on dev)}."""
    return bucc_f1(test_candidates, test_gold, threshold=bucc_threshold(dev_candidates, dev_gold))

# ranked retrieval: LAReQA and Mewsli-X


def average_precision_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int
                           ) -> float:
    """AP@k (0-1) of one query, as XTREME's LAReQA scorer (`utils_lareqa.average_precision_at_k`):
    at each rank i <= k holding a relevant item not seen higher up, add (hits so far) / i; divide
    by min(|relevant|, k). A repeated prediction counts once; Mewsli-X (one gold entity) is
    1 / rank of the gold entity, 0 beyond rank k."""
    gold = set(relevant)
    if not gold:
        raise DataError("average precision: a query with no relevant item")
    hits, total, seen = 0, 0.0, set()
    for i, item in enumerate(list(ranked)[:k], start=1):
        if item in gold and item not in seen:
            hits += 1
            total += hits / i
        seen.add(item)
    return total / min(len(gold), k)


def map_at_k(predictions: Sequence[Sequence[Hashable]], references: Sequence[Iterable[Hashable]],
             k: int = 20) -> float:
    """mAP@k (0-100): the mean over queries of `average_precision_at_k`. `predictions[i]` is
    query i's ranked candidate ids (best first; only the first k are read), `references[i]`
    the ids of its relevant candidates (at least one)."""
    check_aligned(predictions, references, f"mAP@{k}")
    if k < 1:
        raise DataError(f"mAP@k: k must be >= 1, got {k}")
    empty = [i for i, ref in enumerate(references) if not list(ref)]
    if empty:
        raise DataError(f"mAP@{k}: queries {listed(empty)} have no relevant candidate")
    return 100.0 * sum(average_precision_at_k(p, r, k)
                       for p, r in zip(predictions, references, strict=True)) / len(references)
