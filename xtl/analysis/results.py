"""Every cell's metrics of one or several run directories as one tidy table, and what the
analysis derives from it: per-language headline scores, task scores, XTREME / XTREME-R
scores, gains over the no-intermediate baseline, and statistics over seeds.

The table (`load`) has one row per (cell, task, language, split, metric); its columns are
listed in `COLUMNS` and documented in docs/contracts.md ("The results table"). It never reads
a model: everything comes from plan.json, metrics.json and the predictions' file names.

A cell's headline per language: (exact_match + f1) / 2 where both are recorded (QA, as
XTREME's avg_metric), else the first of accuracy, f1, map@20, token_accuracy that is recorded
(the same choice `xtl.evaluation.metrics.headline` makes for every registered metric).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xtl.analysis.parameter_counts import parameter_count
from xtl.core.errors import DataError
from xtl.data import mlm as _mlm  # noqa: F401  (registers the `mlm` format and task)
from xtl.data.languages import LANGUAGES
from xtl.data.tasks import resolve as resolve_task
from xtl.evaluation import aggregate

COLUMNS = ("run", "cell", "kind", "model", "parameters", "intermediate", "intermediate_data",
           "chain", "target", "task", "language", "tier", "tier_group", "script", "seed",
           "train_size", "hparams", "split", "metric", "value", "n", "collapsed", "flags",
           "predictions")
# What identifies one experimental condition (everything but the seed); grid.* columns join.
CONDITION = ("model", "intermediate", "target", "train_size", "hparams", "split")
BASELINE = "none"
HEADLINE_ORDER = ("accuracy", "f1", "map@20", "token_accuracy")
QA_HEADLINE = "(EM+F1)/2"
# Kit task -> the benchmark's task name where they differ (XTREME-R's WikiANN and UD v2.7);
# None: not the benchmark's task. XTREME-R's Tatoeba is retrieval after SQuAD fine-tuning
# (`tatoeba_r`), XTREME's the encoder as it is (`tatoeba`; docs/protocol.md).
BENCHMARK_TASKS = {aggregate.XTREME: {"tatoeba_r": None},
                   aggregate.XTREME_R: {"panx_r": "panx", "udpos_r": "udpos",
                                        "tatoeba_r": "tatoeba", "tatoeba": None}}


# --------------------------------------------------------------------------- loading


def load(run_dirs: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """The tidy table of every cell with a metrics.json in `run_dirs` (one or several).

    A cell present in several directories (same id) is kept once, from the first. An empty
    table still has every column of `COLUMNS`.
    """
    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    rows: list[dict] = []
    seen: set[str] = set()
    for root in dirs:
        if not (root / "plan.json").is_file():
            raise DataError(f"{root} has no plan.json: not a run directory (expected the "
                            "directory `xtl run` wrote, e.g. runs/<experiment>)")
        rows += _rows(root, seen)
    table = pd.DataFrame(rows)
    grid = sorted(c for c in table.columns if c.startswith("grid."))
    table = table.reindex(columns=[*COLUMNS[:17], *grid, *COLUMNS[17:]])
    table = _typed(table)
    table["value"] = table["value"].astype(float)
    table["collapsed"] = table["collapsed"].astype(bool)
    return table


INTEGERS = ("seed", "train_size", "n", "tier", "parameters")


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable integers for the integer columns (a missing train size = the full data)."""
    for col in INTEGERS:
        if col in frame:
            frame[col] = pd.array([None if pd.isna(v) else int(v) for v in frame[col]],
                                  dtype="Int64")
    return frame


def _rows(root: Path, seen: set[str]) -> list[dict]:
    plan = json.loads((root / "plan.json").read_text(encoding="utf-8"))
    cells = {c["id"]: c for c in plan["cells"]}
    counts: dict[str, int | None] = {}
    rows = []
    for cell in plan["cells"]:
        path = root / "cells" / cell["id"] / "metrics.json"
        if cell["kind"] == "stage" or cell["id"] in seen or not path.is_file():
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            records = doc["records"]
            if not all(isinstance(r, dict) and {"task", "language", "split", "metric", "value"}
                       <= set(r) for r in records):
                raise ValueError("records of another shape")
        except (ValueError, KeyError, TypeError) as err:  # the cell reads as not done
            warnings.warn(f"{path}: unreadable metrics.json ({err}); that cell is left out",
                          stacklevel=2)
            continue
        seen.add(cell["id"])
        axes = cell["axes"]
        model = axes["model"]
        if model not in counts:
            counts[model] = parameter_count(model, [root])
        parent = cells.get(cell.get("parent") or "")
        base = {
            "run": plan.get("experiment", root.name), "cell": cell["id"], "kind": cell["kind"],
            "model": model, "parameters": counts[model], "intermediate": axes["intermediate"],
            "intermediate_data": intermediate_data(axes["intermediate"], cells, cell),
            "chain": parent["axes"]["intermediate"] if parent else BASELINE,
            "target": axes["target"], "seed": axes.get("seed"),
            "train_size": axes.get("train_size"),
            "hparams": json.dumps(cell["identity"].get("hparams", {}), sort_keys=True),
            **{k: v for k, v in axes.items() if k.startswith("grid.")},
            "collapsed": run_collapsed(doc),
        }
        for rec in records:
            lang = LANGUAGES.get(rec["language"])
            preds = (root / "cells" / cell["id"] / "predictions" /
                     f"{rec['task']}.{rec['language']}.{rec['split']}.jsonl")
            rows.append({**base, "task": rec["task"], "language": rec["language"],
                         "tier": lang.tier if lang else None,
                         "tier_group": lang.group if lang else None,
                         "script": lang.script if lang else None,
                         "split": rec["split"], "metric": rec["metric"],
                         "value": float(rec["value"]), "n": rec.get("n"),
                         "flags": ",".join(rec.get("flags", [])),
                         "predictions": str(preds) if preds.is_file() else None})
    return rows


def run_collapsed(doc: dict) -> bool:
    """Whether TRAINING collapsed (dev score never above the majority class; xtl.training.train).

    metrics.json's top-level flags are the training's flags plus every record's; a record flag
    alone (one language predicted as one class) does not make the run collapsed.
    """
    training = (doc.get("provenance") or {}).get("training")
    if training:
        return bool(training.get("collapsed"))
    per_record = {f for r in doc.get("records", []) for f in r.get("flags", [])}
    return "collapsed" in set(doc.get("flags", [])) - per_record


def collapsed_stages(run_dirs: str | Path | Iterable[str | Path]) -> dict[str, list[str]]:
    """Evaluation cell id -> labels of the intermediate stages in its chain whose TRAINING
    collapsed (the target then started from a checkpoint that predicts one class); cells with
    no collapsed stage are left out."""
    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    found: dict[str, list[str]] = {}
    for root in dirs:
        cells = {c["id"]: c for c in
                 json.loads((root / "plan.json").read_text(encoding="utf-8"))["cells"]}
        collapsed = {cid for cid, c in cells.items()
                     if c["kind"] == "stage" and _stage_collapsed(root / "cells" / cid)}
        for cid, cell in cells.items():
            chain, parent = [], cell.get("parent")
            while parent in cells:
                if parent in collapsed:
                    chain.insert(0, cells[parent]["label"])
                parent = cells[parent].get("parent")
            if cell["kind"] != "stage" and chain and cid not in found:
                found[cid] = chain
    return found


def _stage_collapsed(folder: Path) -> bool:
    try:
        return run_collapsed(json.loads((folder / "metrics.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # unfinished or damaged
        return False


def intermediate_data(label: str, cells: dict[str, dict] | None = None,
                      cell: dict | None = None) -> str:
    """'none', 'english', 'translated' (every stage task in one non-English language each),
    'multilingual' (an MLM corpus, or tasks in several non-English languages) or 'mixed'
    (English and other languages) for an intermediate label like 'mnli>squad' or 'a+b'."""
    if label == BASELINE:
        return BASELINE
    declared = _declared_stage_tasks(cells or {}, cell)
    languages = []
    for name in label.replace(">", "+").split("+"):
        languages.append(_train_language(name, declared))
    english = [lang == "en" for lang in languages]
    if all(english):
        return "english"
    if any(english):
        return "mixed"
    others = set(languages)
    return "multilingual" if "mul" in others or len(others) > 1 else "translated"


def _declared_stage_tasks(cells: dict[str, dict], cell: dict | None) -> dict[str, dict]:
    """Task declarations held in the identities of `cell`'s stage chain."""
    found: dict[str, dict] = {}
    parent = cells.get((cell or {}).get("parent") or "")
    while parent is not None:
        for task in parent["identity"].get("tasks", []):
            if isinstance(task, dict) and "format" in task:  # declared (not a generator revision)
                found[task["name"]] = {k: v for k, v in task.items() if k != "name"}
        parent = cells.get(parent.get("parent") or "")
    return found


def _train_language(name: str, declared: dict[str, dict]) -> str:
    try:
        return resolve_task(name, declared).train_language
    except Exception:  # a task this kit no longer knows: guess from the naming convention
        return name.rsplit("_mt_", 1)[1] if "_mt_" in name else "en"


def save(table: pd.DataFrame, path: str | Path) -> Path:
    """The table as Parquet (pyarrow); grid columns of mixed types are stored as text."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = table.copy()
    for col in out.columns:
        if col.startswith("grid.") and out[col].dtype == object:
            out[col] = out[col].map(lambda v: None if v is None else str(v))
    out.to_parquet(path, index=False)
    return path


# --------------------------------------------------------------------------- scores


def condition_keys(frame: pd.DataFrame) -> list[str]:
    """The columns that identify an experimental condition (no seed): CONDITION + grid.*."""
    return [*CONDITION, *sorted(c for c in frame.columns if c.startswith("grid."))]


def headline_name(metrics: Iterable[str]) -> str | None:
    """Which recorded metric is the headline ("(EM+F1)/2" for QA); None if none fits."""
    present = set(metrics)
    if {"exact_match", "f1"} <= present:
        return QA_HEADLINE
    return next((m for m in HEADLINE_ORDER if m in present), None)


def language_scores(table: pd.DataFrame, qa: str = QA_HEADLINE) -> pd.DataFrame:
    """One row per (target or retrieval cell, language, split): its headline `score` (0-100),
    the headline's `metric` name, `n` and the cell's columns. `qa="f1"` shows QA tasks by F1
    instead of (EM+F1)/2 (figures that mark the F1 bar)."""
    frame = table[table["kind"].isin(["target", "retrieval"])]
    if frame.empty:
        return pd.DataFrame(columns=[*table.columns.drop(["metric", "value", "flags"]),
                                     "score"])
    meta = [c for c in table.columns if c not in ("metric", "value", "n", "flags",
                                                  "predictions")]
    out = []
    for _, group in frame.groupby(["cell", "task", "language", "split"], sort=False):
        values = dict(zip(group["metric"], group["value"], strict=True))
        name = headline_name(values)
        if name is None:
            continue
        if name == QA_HEADLINE and qa == "f1":
            name = "f1"
        score = ((values["exact_match"] + values["f1"]) / 2 if name == QA_HEADLINE
                 else values[name])
        first = group.iloc[0]
        out.append({**{c: first[c] for c in meta}, "metric": name, "score": float(score),
                    "n": first["n"], "flags": ",".join(sorted(set(",".join(group["flags"])
                                                                   .split(",")) - {""})),
                    "predictions": first["predictions"]})
    return _typed(pd.DataFrame(out))


def task_scores(table: pd.DataFrame, benchmark: str = aggregate.XTREME) -> pd.DataFrame:
    """One row per (target or retrieval cell, split): the task's number `score`.

    A task of `benchmark` is averaged over its OFFICIAL languages present (xtl.evaluation.aggregate;
    `partial` True when some are missing); any other task (synthetic, declared) over every
    language evaluated. `benchmark_task` names the benchmark's task or is None.
    """
    frame = table[table["kind"].isin(["target", "retrieval"])]
    rename = BENCHMARK_TASKS[benchmark]
    keep = [c for c in table.columns if c not in ("task", "language", "tier", "tier_group",
                                                  "script", "metric", "value", "n", "flags",
                                                  "predictions")]
    out = []
    for (_, task, _), group in frame.groupby(["cell", "task", "split"], sort=False):
        name = rename.get(task, task)
        per_language = {lang: dict(zip(g["metric"], g["value"], strict=True))
                        for lang, g in group.groupby("language")}
        first = group.iloc[0]
        row = {**{c: first[c] for c in keep}, "task": task, "benchmark_task": None,
               "languages": len(per_language), "partial": False}
        if name in aggregate.LANGUAGES[benchmark]:
            try:
                result = aggregate.task_score(name, per_language, benchmark, allow_missing=True)
            except DataError:  # none of the official languages evaluated
                result = None
            if result is not None:
                out.append({**row, "benchmark_task": name, "score": result.score,
                            "languages": len(result.languages), "partial": result.partial})
                continue
        scores = [_headline_value(m) for m in per_language.values()]
        scores = [s for s in scores if s is not None]
        if scores:
            out.append({**row, "score": float(np.mean(scores))})
    return _typed(pd.DataFrame(out))


def _headline_value(metrics: dict[str, float]) -> float | None:
    name = headline_name(metrics)
    if name is None:
        return None
    return (metrics["exact_match"] + metrics["f1"]) / 2 if name == QA_HEADLINE else metrics[name]


def benchmark_scores(tasks: pd.DataFrame, benchmark: str = aggregate.XTREME) -> pd.DataFrame:
    """XTREME or XTREME-R per (model, intermediate, seed, train size, hparams, grid, split):
    `overall` (mean over the benchmark's tasks present), one column per category, `tasks`
    (how many), `included` (their names), `missing` (the benchmark's tasks not run) and
    `partial` (a task averaged over fewer than its official languages). Empty when no task of
    the benchmark was run."""
    frame = tasks[tasks["benchmark_task"].notna()] if len(tasks) else tasks
    if frame.empty:
        return pd.DataFrame()
    keys = [k for k in condition_keys(frame) if k not in ("target", "hparams")] + ["seed"]
    out = []
    for key, group in frame.groupby(keys, dropna=False, sort=False):
        numbers = dict(zip(group["benchmark_task"], group["score"], strict=True))
        result = aggregate.benchmark_score(numbers, benchmark, allow_missing=True)
        out.append({**dict(zip(keys, key, strict=True)), "benchmark": benchmark,
                    "overall": result.overall, **result.categories,
                    "tasks": len(result.tasks), "included": ",".join(result.tasks),
                    "missing": ",".join(result.missing),
                    "partial": bool(group["partial"].any()),
                    "collapsed": bool(group["collapsed"].any())})
    return _typed(pd.DataFrame(out))


# --------------------------------------------------------------------------- gains


def gains(scores: pd.DataFrame, value: str = "score", baseline: str = BASELINE,
          by: Sequence[str] = ()) -> pd.DataFrame:
    """Each non-baseline row's `value` minus the baseline's in the same condition and seed.

    `scores`: language_scores, task_scores or benchmark_scores rows; `by` adds key columns
    (e.g. "language"). A retrieval baseline has no seed of its own (one cell evaluates the base
    model for every seed): it is matched on the condition alone. Rows without a baseline are
    dropped. Adds `baseline` (the baseline's value), `baseline_collapsed` (the baseline's
    training collapsed in that seed) and `gain`.
    """
    if scores.empty or baseline not in set(scores["intermediate"]):
        return pd.DataFrame()
    keys = [k for k in condition_keys(scores) if k != "intermediate" and k in scores] + list(by)
    base = scores[scores["intermediate"] == baseline]
    others = scores[scores["intermediate"] != baseline]
    # merge (not join): pandas matches missing keys (train_size NA = full data) to each other
    flagged = base.assign(collapsed=base["collapsed"] if "collapsed" in base else False)
    seeded = (flagged.groupby([*keys, "seed"], dropna=False)
              .agg(baseline=(value, "mean"), baseline_collapsed=("collapsed", "any"))
              .reset_index())
    merged = others.merge(seeded, on=[*keys, "seed"], how="left")
    unseeded = base.groupby(keys, dropna=False)[value].mean().rename("baseline_any").reset_index()
    merged = merged.merge(unseeded, on=keys, how="left")
    if "kind" in merged:  # retrieval: the base model's one cell serves every seed
        retrieval = merged["kind"].eq("retrieval") & merged["baseline"].isna()
        merged.loc[retrieval, "baseline"] = merged.loc[retrieval, "baseline_any"]
    merged = merged.drop(columns="baseline_any").dropna(subset=["baseline"])
    # a baseline that collapsed scores at chance: its gains measure escaping the collapse
    merged["baseline_collapsed"] = merged["baseline_collapsed"].fillna(False).astype(bool)
    return merged.assign(gain=merged[value] - merged["baseline"]).reset_index(drop=True)


def seed_stats(frame: pd.DataFrame, value: str = "score", by: Sequence[str] | None = None
               ) -> pd.DataFrame:
    """Mean, std (ddof 1; NaN for one seed), min and max of `value` over seeds per group,
    with `seeds`, `collapsed` (how many seeds' training collapsed) and `mean_ok` (the mean
    without them; NaN when every seed collapsed)."""
    if frame.empty:
        return pd.DataFrame()
    by = list(by) if by is not None else [c for c in condition_keys(frame) if c in frame]
    grouped = frame.groupby(by, dropna=False, sort=False)
    stats = grouped[value].agg(mean="mean", std="std", min="min", max="max", seeds="count")
    stats["collapsed"] = grouped["collapsed"].sum().astype(int)
    stats["mean_ok"] = frame[~frame["collapsed"]].groupby(by, dropna=False)[value].mean()
    return stats.reset_index()


def gain_matrix(gains_frame: pd.DataFrame, average: str | None = "avg") -> pd.DataFrame:
    """Intermediate (rows) x target (columns) mean gain over seeds (and models, sizes, grid:
    filter first to show one), with the mean over targets as the last column `average`."""
    if gains_frame.empty:
        return pd.DataFrame()
    matrix = gains_frame.pivot_table(index="intermediate", columns="target", values="gain",
                                     aggfunc="mean")
    if average:
        matrix[average] = matrix.mean(axis=1)
    return matrix


def task_for(row: Any) -> Any:
    """The Task a results row's cell evaluated: declared in its plan's identity (read next to
    the predictions file) or registered by name; None when neither is known."""
    declared: dict[str, dict] = {}
    path = row.get("predictions") if hasattr(row, "get") else None
    if isinstance(path, str) and Path(path).is_file():
        plan = json.loads((Path(path).parents[3] / "plan.json").read_text(encoding="utf-8"))
        identity = next((c["identity"] for c in plan["cells"] if c["id"] == row["cell"]), {})
        task = identity.get("task")
        if isinstance(task, dict) and "format" in task:  # declared, not a generator revision
            declared = {row["task"]: {k: v for k, v in task.items() if k != "name"}}
    try:
        return resolve_task(row["task"], declared)
    except Exception:  # a declared task whose plan is not at hand
        return None
