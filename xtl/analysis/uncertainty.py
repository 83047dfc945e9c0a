"""Paired bootstrap confidence intervals for gains, from per-example predictions.

The baseline and the intermediate cell are evaluated on the same examples, so one resample of
example indices is applied to both (paired), and the gain is recomputed on it. Corpus-level
metrics are recomputed per resample, not averaged per example: each example contributes
additive counts (`Statistic`) and the metric is computed from the resample's summed counts:
- accuracy (classification, multiple choice, retrieval top-1): [correct, 1];
- QA (SQuAD / MLQA EM and F1, by `metrics.score` on each question): [em, f1, 1] -> the
  headline (EM + F1) / 2, a mean over questions;
- seqeval entity F1 (PAN-X) and UD-POS chunk F1: [correct chunks, predicted, gold] per
  sentence -> micro F1 = 2 correct / (predicted + gold); chunks never cross a sentence (both
  seqeval versions put an "O" between sentences), so sentence counts add up exactly.
Every file's full-sample value is checked against the metrics.json record before use.

Several seeds: a resample's value per side is the MEAN over that side's seeds (each seed's
predictions under the same resample); the interval covers example sampling only, seed
variation is reported separately (`xtl.analysis.results.seed_stats`). A task-level interval
resamples each language independently (stratified) and averages the languages' gains.
BUCC (mined pairs, threshold tuned per set) and mAP@20 have no interval here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xtl.analysis.results import condition_keys, task_for
from xtl.core.errors import DataError
from xtl.evaluation import metrics, tagging_metrics

SAMPLES = 1000
LEVEL = 0.95
TOLERANCE = 1e-6  # points: a predictions file must reproduce its metrics.json record


@dataclass(frozen=True)
class Statistic:
    """Per-example additive counts and the metric (0-100) computed from their sums."""

    name: str
    columns: tuple[str, ...]
    value: Callable[[np.ndarray], np.ndarray]  # sums [..., len(columns)] -> values [...]


def _ratio(sums: np.ndarray) -> np.ndarray:
    return 100.0 * sums[..., 0] / sums[..., 1]


def _qa(sums: np.ndarray) -> np.ndarray:
    return 100.0 * (sums[..., 0] + sums[..., 1]) / 2 / sums[..., 2]


def _f1(sums: np.ndarray) -> np.ndarray:
    denominator = sums[..., 1] + sums[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 200.0 * sums[..., 0] / denominator, 0.0)


ACCURACY = Statistic("accuracy", ("correct", "examples"), _ratio)
QA = Statistic("(EM+F1)/2", ("exact_match", "f1", "questions"), _qa)
CHUNK_F1 = Statistic("f1", ("correct", "predicted", "gold"), _f1)
STATISTICS = {"accuracy": ACCURACY, "squad": QA, "mlqa": QA, "squad_v2": QA,
              "seqeval_f1": CHUNK_F1, "udpos_f1": CHUNK_F1}


def statistic_for(task: Any) -> Statistic | None:
    """The additive statistic of a task's headline metric, or None (BUCC, mAP@20, ...)."""
    return STATISTICS.get(task.metric)


def example_counts(task: Any, examples: Sequence[Mapping], language: str | None = None
                   ) -> tuple[list[str], np.ndarray]:
    """(ids, counts [n, k]) of prediction lines (docs/contracts.md section 4) for `task`."""
    stat = statistic_for(task)
    if stat is None:
        raise DataError(f"{task.name}: no per-example bootstrap for metric {task.metric!r}")
    ids = [str(ex["id"]) for ex in examples]
    if len(set(ids)) != len(ids):
        raise DataError(f"{task.name}/{language}: duplicate example ids in the predictions")
    if stat is ACCURACY:
        rows = [[float(_hit(ex)), 1.0] for ex in examples]
    elif stat is QA:
        rows = [_qa_counts(task, ex, language) for ex in examples]
    else:
        chunks = _legacy_chunks if task.metric == "udpos_f1" else _seqeval_chunks
        rows = [_chunk_counts(task, ex, chunks) for ex in examples]
    return ids, np.asarray(rows, dtype=float).reshape(len(rows), len(stat.columns))


def _hit(ex: Mapping) -> bool:
    prediction = ex["prediction"]
    if isinstance(prediction, Mapping):  # retrieval: the hit per direction; XTREME's is en->xx
        prediction = prediction["en_xx"]
    return prediction == ex["reference"]


def _qa_counts(task: Any, ex: Mapping, language: str | None) -> list[float]:
    scores = metrics.score(task, [ex["prediction"]], [{"id": str(ex["id"]),
                                                      "answers": ex["reference"]}], language)
    return [scores["exact_match"] / 100, scores["f1"] / 100, 1.0]


def _seqeval_chunks(sentence: list[str]) -> set:
    from seqeval.metrics.sequence_labeling import get_entities

    return set(get_entities(sentence))


def _legacy_chunks(sentence: list[str]) -> set:
    return tagging_metrics.legacy_chunks([sentence])


def _chunk_counts(task: Any, ex: Mapping, chunks: Callable[[list[str]], set]) -> list[float]:
    predicted, gold = (chunks(tagging_metrics.tag_names([ex[side]], task.label_names, side)[0])
                       for side in ("prediction", "reference"))
    return [float(len(predicted & gold)), float(len(predicted)), float(len(gold))]


# --------------------------------------------------------------------------- the bootstrap


@dataclass(frozen=True)
class Interval:
    gain: float  # on the full sample
    low: float
    high: float
    level: float
    samples: int
    examples: int


def _weights(n: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each example is drawn in each resample: [samples, n] (multinomial)."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=samples).astype(float)


def paired_bootstrap(base: Mapping[str, Sequence[np.ndarray]],
                     inter: Mapping[str, Sequence[np.ndarray]], statistic: Statistic,
                     samples: int = SAMPLES, level: float = LEVEL, seed: int = 0) -> Interval:
    """Percentile interval of the gain mean_seeds(inter) - mean_seeds(base), averaged over
    languages; each language's examples are resampled independently (stratified).

    `base` / `inter`: {language: [counts [n_language, k] per seed]}, rows aligned by example
    (the same example in the same row on both sides and in every seed).
    """
    if not 0 < level < 1:
        raise DataError(f"confidence level must be between 0 and 1, got {level!r}")
    if samples < 1:
        raise DataError(f"bootstrap samples must be positive, got {samples!r}")
    if set(base) != set(inter) or not base:
        raise DataError(f"baseline languages {sorted(base)} and intermediate languages "
                        f"{sorted(inter)} differ (or are empty)")
    rng = np.random.default_rng(seed)
    point, resampled, total = [], [], 0
    for language in sorted(base):
        sides = [base[language], inter[language]]
        n = {len(c) for side in sides for c in side}
        if len(n) != 1 or min(len(side) for side in sides) == 0:
            raise DataError(f"{language}: every seed of both sides needs the same examples "
                            f"(row counts {sorted(n)})")
        n_examples = n.pop()
        total += n_examples
        weights = _weights(n_examples, samples, rng)
        means = [np.mean([statistic.value(c.sum(axis=0)) for c in side]) for side in sides]
        point.append(means[1] - means[0])
        resampled.append(np.mean([statistic.value(weights @ c) for c in sides[1]], axis=0)
                         - np.mean([statistic.value(weights @ c) for c in sides[0]], axis=0))
    gains = np.mean(resampled, axis=0)
    low, high = np.quantile(gains, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(np.mean(point)), float(low), float(high), level, samples, total)


# --------------------------------------------------------------------------- run directories


@lru_cache(maxsize=512)
def _read_lines(path: str, mtime: float) -> tuple[dict, ...]:
    with open(path, encoding="utf-8") as f:
        return tuple(json.loads(line) for line in f if line.strip())


def load_counts(row: Mapping) -> tuple[list[str], np.ndarray, Statistic]:
    """Counts of one language_scores row's predictions file, checked against its score."""
    path = row["predictions"]
    if not isinstance(path, str) or not Path(path).is_file():
        raise DataError(f"cell {row['cell']} ({row['task']}/{row['language']}): no "
                        "predictions file")
    task = task_for(row)
    if task is None:
        raise DataError(f"cell {row['cell']}: task {row['task']!r} is not known to this kit")
    stat = statistic_for(task)
    if stat is None:
        raise DataError(f"{task.name}: no per-example bootstrap for metric {task.metric!r}")
    ids, counts = example_counts(task, _read_lines(path, Path(path).stat().st_mtime),
                                 row["language"])
    full = float(stat.value(counts.sum(axis=0)))
    if abs(full - float(row["score"])) > TOLERANCE:
        raise DataError(f"{path}: the predictions give {stat.name} {full:.6f}, metrics.json "
                        f"records {float(row['score']):.6f}; the file is stale or not this "
                        "cell's")
    return ids, counts, stat


def _aligned(rows: pd.DataFrame, order: list[str] | None) -> tuple[list[np.ndarray], list[str],
                                                                  Statistic]:
    out, stat = [], None
    for _, row in rows.sort_values("seed").iterrows():
        ids, counts, stat = load_counts(row)
        if order is None:
            order = ids
        position = {i: k for k, i in enumerate(ids)}
        if set(position) != set(order):
            raise DataError(f"cell {row['cell']} ({row['task']}/{row['language']}) was not "
                            f"evaluated on the same {len(order)} examples as its baseline "
                            f"({len(set(position) ^ set(order))} ids differ)")
        out.append(counts[[position[i] for i in order]])
    return out, order, stat


def gain_intervals(scores: pd.DataFrame, baseline: str = "none", samples: int = SAMPLES,
                   level: float = LEVEL, seed: int = 0, languages: bool = True
                   ) -> pd.DataFrame:
    """Paired-bootstrap intervals of every gain over `baseline` in `scores`
    (`xtl.analysis.results.language_scores` rows, which carry the predictions' paths).

    One row per (condition, intermediate) with `language` "all" (the task: the mean over
    languages of the per-language gains, stratified), and per language when `languages`.
    Columns: the condition, intermediate, language, gain, low, high, level, samples, examples,
    seeds (intermediate), baseline_seeds, note (why no interval, when there is none).
    """
    if scores.empty or baseline not in set(scores["intermediate"]):
        return pd.DataFrame()
    keys = [k for k in condition_keys(scores) if k != "intermediate"]
    out = []
    for key, group in scores.groupby(keys, dropna=False, sort=False):
        base = group[group["intermediate"] == baseline]
        for inter, rows in group[group["intermediate"] != baseline].groupby("intermediate"):
            if base.empty:
                continue
            head = {**dict(zip(keys, key, strict=True)), "intermediate": inter,
                    "seeds": rows["seed"].nunique(), "baseline_seeds": base["seed"].nunique()}
            out += _intervals(head, base, rows, samples, level, seed, languages)
    return pd.DataFrame(out)


def _intervals(head: dict, base: pd.DataFrame, inter: pd.DataFrame, samples: int, level: float,
               seed: int, languages: bool) -> list[dict]:
    shared = sorted(set(base["language"]) & set(inter["language"]))
    counts: dict[str, tuple[list, list]] = {}
    stat, note = None, ""
    try:
        for lang in shared:
            b, order, stat = _aligned(base[base["language"] == lang], None)
            i, _, _ = _aligned(inter[inter["language"] == lang], order)
            counts[lang] = (b, i)
    except DataError as err:
        note = str(err)
    if note or stat is None:
        return [{**head, "language": "all", "gain": np.nan, "low": np.nan, "high": np.nan,
                 "note": note or "no shared languages"}]
    parts = [("all", shared)] + ([(lang, [lang]) for lang in shared] if languages else [])
    rows = []
    for label, langs in parts:
        result = paired_bootstrap({lang: counts[lang][0] for lang in langs},
                                  {lang: counts[lang][1] for lang in langs}, stat, samples,
                                  level, seed)
        rows.append({**head, "language": label, "gain": result.gain, "low": result.low,
                     "high": result.high, "level": level, "samples": samples,
                     "examples": result.examples, "note": ""})
    return rows
