"""Every cell's metrics of a run directory as one tidy table, and gains over the baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

AXES = ("model", "intermediate", "target", "seed", "train_size")


def load(run_dir: Path) -> pd.DataFrame:
    """One row per (cell, task, language, split, metric) with the cell's grid axes."""
    run_dir = Path(run_dir)
    plan = json.loads((run_dir / "plan.json").read_text())
    rows = []
    for cell in plan["cells"]:
        path = run_dir / "cells" / cell["id"] / "metrics.json"
        if not path.is_file():
            continue
        doc = json.loads(path.read_text())
        for record in doc["records"]:
            rows.append({"cell": cell["id"], "kind": cell["kind"], **cell["axes"],
                         **{k: v for k, v in record.items() if k != "flags"},
                         "flags": ",".join(record.get("flags", []))})
    return pd.DataFrame(rows)


def target_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over languages of each target cell's headline metric, then mean over seeds."""
    targets = table[table["kind"].isin(["target", "retrieval"])].copy()
    if targets.empty:
        return targets
    targets["train_size"] = targets["train_size"].fillna("full")
    grid_cols = [c for c in targets.columns if c.startswith("grid.")]
    keys = ["model", "intermediate", "target", "train_size", *grid_cols]
    per_cell = targets.groupby([*keys, "seed", "metric"], dropna=False)["value"].mean()
    return per_cell.groupby([*keys, "metric"], dropna=False).mean().reset_index()


def gains(table: pd.DataFrame, baseline: str = "none") -> pd.DataFrame:
    """Intermediate x target gain over `baseline` (averaged over models, sizes and grid)."""
    scores = target_scores(table)
    if scores.empty or baseline not in set(scores["intermediate"]):
        return pd.DataFrame()
    keys = [c for c in scores.columns if c not in ("intermediate", "value")]
    base = scores[scores["intermediate"] == baseline].set_index(keys)["value"]
    others = scores[scores["intermediate"] != baseline].set_index(keys)
    others = others.assign(gain=others["value"] - base.reindex(others.index).values)
    others = others.reset_index().dropna(subset=["gain"])
    return others.pivot_table(index="intermediate", columns="target", values="gain",
                              aggfunc="mean")
