"""Transferability predictions against measured gains, for the analysis report.

Per (model, target): each checkpoint's estimates (xtl.cells.transferability_cell, English training
sample) give a predicted ranking of the intermediate tasks (the base model, `none`, among
them); where the grid has measured the target after each intermediate task, the measured gain
over `none` (mean over seeds, train sizes and grid values) stands beside it, with:
- Spearman's rho and Kendall's tau between estimate and gain, each with a paired-bootstrap
  interval: (estimate, gain) pairs of the intermediate tasks resampled together (with few
  tasks the interval is wide or undefined, and the report says how many resamples were
  usable: a resample whose estimates or gains are all equal has no correlation);
- regret@k: the best measured gain minus the best gain among the k tasks ranked highest by
  the estimate (0 = trusting the top k loses nothing).
Retrieval targets have no estimate cell: the untrained checkpoint's retrieval score is the
measured score itself. With no measured gains the tables show predictions alone and say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from xtl.analysis import results
from xtl.analysis.sections import Section

BOOTSTRAP = 2000
LEVEL = 0.95
HEADLINE = "logme"
NAMES = {"logme": "LogME", "hscore": "H-score", "hscore_shrunk": "H-score (shrunk)",
         "knn": "kNN accuracy"}


def load_estimates(run_dir: str | Path) -> pd.DataFrame:
    """One row per (transferability cell, sample, estimator) with the cell's axes."""
    root = Path(run_dir)
    plan = json.loads((root / "plan.json").read_text(encoding="utf-8"))
    rows = []
    for cell in plan["cells"]:
        path = root / "cells" / cell["id"] / "metrics.json"
        if cell["kind"] != "transferability" or not path.is_file():
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        axes = cell["axes"]
        for est in doc.get("estimates", []):
            rows.append({"cell": cell["id"], "model": axes["model"],
                         "intermediate": axes["intermediate"], "target": axes["target"],
                         "seed": axes.get("seed"), **est})
    return pd.DataFrame(rows)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their average rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    _, inverse = np.unique(x, return_inverse=True)
    return (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's r of the average ranks; NaN when either side is constant."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (ties corrected, as scipy.stats.kendalltau); NaN when either side is
    constant."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    upper = np.triu_indices(len(x), 1)
    dx = np.sign(np.subtract.outer(x, x))[upper]
    dy = np.sign(np.subtract.outer(y, y))[upper]
    pairs = len(dx)
    return float(np.sum(dx * dy) / np.sqrt((pairs - np.sum(dx == 0)) * (pairs - np.sum(dy == 0))))


def bootstrap(x: np.ndarray, y: np.ndarray, statistic, samples: int = BOOTSTRAP,
              level: float = LEVEL, seed: int = 0) -> tuple[float, float, int]:
    """Percentile interval of `statistic` over resamples of the (x, y) pairs, and how many
    resamples had a defined value (NaN bounds when none had)."""
    rng = np.random.default_rng(seed)
    n = len(x)
    values = []
    for _ in range(samples):
        pick = rng.integers(0, n, n)
        value = statistic(x[pick], y[pick])
        if not np.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan"), 0
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high), len(values)


def regret_at(estimate: np.ndarray, gain: np.ndarray, k: int) -> float:
    """Best gain minus the best gain among the k highest estimates (ties: first listed)."""
    top = np.argsort(-estimate, kind="stable")[:k]
    return float(gain.max() - gain[top].max())


def measured_gains(run_dir: str | Path) -> pd.DataFrame:
    """Mean gain over seeds (and sizes, grid) per (model, target, intermediate), `none` = 0;
    retrieval targets too (their `score` is also their estimate)."""
    table = results.load(run_dir)
    tasks = results.task_scores(table)
    if tasks.empty:
        return pd.DataFrame(columns=["model", "target", "intermediate", "kind", "gain",
                                     "score"])
    scores = tasks.groupby(["model", "target", "intermediate", "kind"], as_index=False
                           )["score"].mean()
    gains = results.gains(tasks)
    if gains.empty:
        return scores.assign(gain=np.nan)
    mean = gains.groupby(["model", "target", "intermediate"], as_index=False)["gain"].mean()
    out = scores.merge(mean, on=["model", "target", "intermediate"], how="left")
    out.loc[out["intermediate"] == results.BASELINE, "gain"] = 0.0
    return out


def language_gains(run_dir: str | Path) -> pd.DataFrame:
    table = results.load(run_dir)
    scores = results.language_scores(table)
    gains = results.gains(scores, by=["language"]) if not scores.empty else pd.DataFrame()
    if gains.empty:
        return pd.DataFrame(columns=["model", "target", "intermediate", "language", "gain"])
    return gains.groupby(["model", "target", "intermediate", "language"], as_index=False
                         )["gain"].mean()


def english(estimates: pd.DataFrame) -> pd.DataFrame:
    """The English training sample's estimates: (model, target, intermediate) x estimator."""
    train = estimates[estimates["split"] == "train"]
    return train.pivot_table(index=["model", "target", "intermediate"], columns="estimator",
                             values="value", aggfunc="mean").reset_index()


def comparison(estimates: pd.DataFrame, gains: pd.DataFrame) -> pd.DataFrame:
    """Per (model, target, intermediate): each estimator's value, the predicted rank by
    LogME, and the measured gain and its rank where measured."""
    pred = english(estimates)
    pred["predicted rank"] = (pred.groupby(["model", "target"])[HEADLINE]
                              .rank(ascending=False, method="min").astype(int))
    merged = pred.merge(gains[["model", "target", "intermediate", "gain"]],
                        on=["model", "target", "intermediate"], how="left")
    merged["measured rank"] = (merged.groupby(["model", "target"])["gain"]
                               .rank(ascending=False, method="min"))
    merged = merged.rename(columns={"gain": "measured gain"})
    order = ["model", "target", "intermediate", *[e for e in NAMES if e in merged],
             "predicted rank", "measured gain", "measured rank"]
    return merged[order].sort_values(["model", "target", "predicted rank"]).reset_index(
        drop=True)


def agreement(compared: pd.DataFrame, samples: int = BOOTSTRAP) -> pd.DataFrame:
    """Per (model, target, estimator) with measured gains: Spearman, Kendall (with paired-
    bootstrap intervals), regret@1 and regret@2."""
    rows = []
    estimators = [e for e in NAMES if e in compared]
    for (model, target), group in compared.groupby(["model", "target"], sort=False):
        group = group.dropna(subset=["measured gain"])
        if len(group) < 2:
            continue
        gain = group["measured gain"].to_numpy(float)
        for name in estimators:
            est = group[name].to_numpy(float)
            rho_lo, rho_hi, rho_n = bootstrap(est, gain, spearman, samples)
            tau_lo, tau_hi, _ = bootstrap(est, gain, kendall, samples)
            rows.append({"model": model, "target": target, "estimator": NAMES[name],
                         "tasks": len(group), "spearman": spearman(est, gain),
                         "spearman 95% CI": _interval(rho_lo, rho_hi),
                         "kendall": kendall(est, gain),
                         "kendall 95% CI": _interval(tau_lo, tau_hi),
                         "usable resamples": f"{rho_n}/{samples}",
                         "regret@1": regret_at(est, gain, 1),
                         "regret@2": regret_at(est, gain, min(2, len(group)))})
    return pd.DataFrame(rows)


def _shown(frame: pd.DataFrame, columns: tuple[str, ...] = tuple(NAMES)) -> pd.DataFrame:
    """Estimates as text with 4 decimals (checkpoints often differ in the third); the report's
    tables round floats to 1-2."""
    out = frame.copy()
    for column in columns:
        if column in out:
            out[column] = [f"{v:.4f}" if pd.notna(v) else "-" for v in out[column]]
    return out


def _interval(low: float, high: float) -> str:
    return "undefined" if np.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def per_language(estimates: pd.DataFrame, gains: pd.DataFrame) -> pd.DataFrame:
    """Per (model, target, language, intermediate): LogME on the language's validation
    sample minus the base model's, beside the measured gain in that language."""
    sample = estimates[(estimates["split"] == "validation")
                       & (estimates["estimator"] == HEADLINE)]
    if sample.empty:
        return pd.DataFrame()
    keys = ["model", "target", "language"]
    table = sample.groupby([*keys, "intermediate"], as_index=False)["value"].mean()
    base = table[table["intermediate"] == results.BASELINE][[*keys, "value"]]
    table = table.merge(base.rename(columns={"value": "base"}), on=keys, how="left")
    table["predicted (LogME - none)"] = table["value"] - table["base"]
    table = table[table["intermediate"] != results.BASELINE]
    out = table.merge(gains, on=[*keys, "intermediate"], how="left")
    return (out.rename(columns={"value": "LogME", "gain": "measured gain"})
            .drop(columns="base").sort_values([*keys, "intermediate"]).reset_index(drop=True))


def section(run_dir: str | Path) -> Section | None:
    """The report's section (sections.Section), or None when the run has no estimates."""
    estimates = load_estimates(run_dir)
    if estimates.empty:
        return None
    gains = measured_gains(run_dir)
    compared = comparison(estimates, gains[gains["kind"] != "retrieval"]
                          if "kind" in gains else gains)
    agree = agreement(compared)
    measured = compared["measured gain"].notna().any()
    # the method's prose is the analysis notebook's markdown; this says only what the run lacks
    text = "" if measured else (
        "**No measured gains yet**: these are predictions alone; the grid's target cells "
        "(after `xtl run`) add the measured gains beside them.")
    tables = [("Predicted vs measured (English training sample)", _shown(compared))]
    if not agree.empty:
        tables.append(("Agreement between estimate and measured gain", agree))
    retrieval = gains[gains["kind"] == "retrieval"] if "kind" in gains else pd.DataFrame()
    if not retrieval.empty:
        tables.append(("Retrieval targets: the untrained checkpoint's retrieval score is "
                       "the measured score itself (no estimate needed)",
                       retrieval[["model", "target", "intermediate", "score", "gain"]]))
    languages = per_language(estimates, language_gains(run_dir))
    if not languages.empty:
        languages = _shown(languages, ("LogME", "predicted (LogME - none)"))
        tables.append(("Per language: LogME on a sample of the target's validation rows, "
                       "minus the base model's, beside the measured gain in that language",
                       languages))
    return Section("Transferability: predicted before training, measured after", text, tables)
