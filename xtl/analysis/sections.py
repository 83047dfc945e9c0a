"""The pieces every analysis section is made of: `Section`, its figure caption, the caution
notes about collapsed training, the interval table and the chance levels of the scores shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from xtl.analysis import results
from xtl.core import chance as chance_math


def chance_levels(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (target, language): the chance level of the score shown, its kind and a note.

    Classification and multiple choice: 100 / number of labels or choices; retrieval top-1
    accuracy: 100 / pool size (the number of candidate sentences, the record's n); F1 has no
    chance level: the bar F1 30 (the demo's 0.3) is marked instead (kind "bar"); anything else
    (mAP@20, token accuracy): unknown (NaN). The levels are `xtl.core.chance.level`'s.
    """
    rows = []
    for (target, language), group in scores.groupby(["target", "language"], sort=False):
        first = group.iloc[0]
        n = first["n"] if pd.notna(first["n"]) else 0
        chance, kind, note = chance_math.level(results.task_for(first), first["metric"], n)
        rows.append({"target": target, "language": language, "metric": first["metric"],
                     "chance": chance, "kind": kind, "note": note})
    return pd.DataFrame(rows, columns=["target", "language", "metric", "chance", "kind", "note"])


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figure: plt.Figure | None = None
    caption: str = ""
    name: str = ""  # file name of the saved figure


def caption(what: str, frame: pd.DataFrame) -> str:
    """'what. From N cells (runs R; seeds S); split X.' for a figure built from `frame`."""
    cells = frame["cell"].nunique() if "cell" in frame else len(frame)
    seeds = sorted(int(s) for s in frame["seed"].dropna().unique()) if "seed" in frame else []
    splits = ", ".join(sorted(frame["split"].dropna().unique())) if "split" in frame else "?"
    runs = ", ".join(sorted(frame["run"].dropna().unique())) if "run" in frame else "?"
    against = " (each against its no-intermediate baseline)" if "baseline" in frame else ""
    return (f"{what} From {cells} cell{'s' if cells != 1 else ''}{against} of run {runs} "
            f"(seeds {seeds or 'n/a'}); split: {splits}.")


def collapse_note(gains: pd.DataFrame) -> str:
    """' **Caution: ...**' when the baseline's training collapsed in some seeds of `gains`
    (then it sits at chance, and a gain over it measures escaping the collapse, not
    transfer); '' otherwise."""
    if gains.empty or "baseline_collapsed" not in gains:
        return ""
    keys = [k for k in results.condition_keys(gains) if k != "intermediate" and k in gains]
    seeds = gains.drop_duplicates([*keys, "seed"])  # one row per baseline run
    bad = seeds[seeds["baseline_collapsed"]]
    if bad.empty:
        return ""
    where = ", ".join(sorted({f"{r.model} -> {r.target}" + (
        "" if pd.isna(r.train_size) else f" (n={int(r.train_size)})")
        for r in bad.itertuples()}))
    return (f" **Caution: the no-intermediate baseline's training collapsed** (one class for "
            f"every example) in {len(bad)} of {len(seeds)} baseline runs ({where}): those "
            "gains are over a chance-level score and measure escaping the collapse, not "
            "better transfer.")


def collapsed_stages(stages: dict[str, list[str]], frame: pd.DataFrame) -> list[str]:
    """The collapsed intermediate stages that the cells of `frame` started from (`stages`:
    evaluation cell -> its collapsed stages, `results.collapsed_stages`)."""
    return list(dict.fromkeys(label for cell in frame["cell"].unique()
                              for label in stages.get(cell, [])))


def caution(gains: pd.DataFrame, stages: dict[str, list[str]]) -> str:
    """Warnings for gains whose baseline or intermediate stage collapsed ('' if none)."""
    note = collapse_note(gains)
    collapsed = collapsed_stages(stages, gains) if len(gains) else []
    if collapsed:
        note += (f" **Caution: intermediate stage training collapsed** ({'; '.join(collapsed)}"
                 "): its targets were fine-tuned from a checkpoint that predicts one "
                 "class, so their gains say little about that intermediate task.")
    return note


def interval_table(intervals: pd.DataFrame) -> pd.DataFrame:
    """Bootstrap intervals as one row per condition and a column per language ('all' first):
    'gain [low, high]', or the reason there is none."""
    keys = [k for k in ("model", "intermediate", "target", "train_size") if k in intervals]
    keys += sorted(k for k in intervals.columns if k.startswith("grid."))

    def cell(row: Any) -> str:
        if pd.isna(row["low"]):
            return f"no interval: {row['note']}" if row.get("note") else "-"
        low, high, gain = (_signed(row[k]) for k in ("low", "high", "gain"))
        return f"{gain} [{low},\u00a0{high}]"  # a narrow column breaks before the "[" only

    frame = intervals.assign(shown=intervals.apply(cell, axis=1))
    frame["train_size"] = frame["train_size"].astype(object)  # keep the NA group (full data)
    wide = frame.pivot_table(index=keys, columns="language", values="shown", aggfunc="first",
                             dropna=False, observed=True)
    languages = list(dict.fromkeys(frame["language"]))
    wide = wide.dropna(how="all")[["all", *[c for c in languages if c != "all"]]
                                  if "all" in languages else languages]
    wide.columns.name = None
    return wide.reset_index()


def _signed(value: float) -> str:
    return f"{round(float(value), 1) + 0.0:+.1f}"  # + 0.0: no "-0.0"


def shown(values: pd.Series) -> list[str]:
    """The distinct values present, as text, in order of first appearance."""
    return [str(v) for v in dict.fromkeys(values.dropna())]
