"""README's demo tables, from a finished run of parameters/demo.yaml.

    python bench/demo_table.py runs/demo

Prints (markdown): per target and intermediate task, the score per language (PAN-X and
synth-qa F1, Tatoeba top-1 accuracy) with each shortcut baseline's score on the same rows
(xtl.evaluation.shortcuts, read from the cells' metrics.json), the stages' English dev scores beside
theirs, and every gain over no intermediate task with its 95% paired-bootstrap interval
(xtl.analysis.uncertainty, as the analysis report computes it).
"""

from __future__ import annotations

import argparse

import pandas as pd

from xtl.analysis import reports, sections
from xtl.evaluation import shortcuts

METRIC = {"panx-sample": "f1", "synth-qa": "f1", "tatoeba-sample": "accuracy"}


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def scores(analysis: reports.Analysis) -> list[str]:
    targets, _ = shortcuts.summary(analysis.baselines)
    lines = []
    for task, part in targets.groupby("task", sort=False):
        languages = list(part["language"])
        lines += ["", f"**{task}** ({METRIC.get(task, part['metric'].iloc[0])}, per language)",
                  "", _row(["", *languages]), _row(["---"] * (len(languages) + 1))]
        inters = [c for c in ("none", "synth-nli", "synth-qa") if c in part]
        names = [n for n in shortcuts.DESCRIPTIONS if n in part and part[n].notna().any()]
        for name in inters:
            lines.append(_row([f"after {name}", *(f"{v:.1f}" for v in part[name])]))
        for name in names:
            lines.append(_row([f"shortcut: {name}", *(f"{v:.1f}" for v in part[name])]))
        lines.append(_row(["beats every shortcut", *part["beats"].str.replace("all", "yes")]))
    return lines


def stages(analysis: reports.Analysis) -> list[str]:
    _, own = shortcuts.summary(analysis.baselines)
    names = [n for n in shortcuts.DESCRIPTIONS if n in own]
    lines = ["", _row(["stage (English dev)", "metric", "model", *names, "beats"]),
             _row(["---"] * (4 + len(names)))]
    for _, r in own.iterrows():
        lines.append(_row([r["task"], r["metric"], f"{r[shortcuts.SCORE]:.1f}",
                           *("–" if pd.isna(r[n]) else f"{r[n]:.1f}" for n in names),
                           "yes" if r["beats"] == "all" else r["beats"]]))
    return lines


def gains(analysis: reports.Analysis) -> list[str]:
    ci = analysis.intervals
    wide = sections.interval_table(ci)
    languages = [c for c in wide.columns if c not in ("model", "intermediate", "target",
                                                      "train_size")]
    lines = ["", _row(["target", "intermediate", *languages]),
             _row(["---"] * (2 + len(languages)))]
    for _, r in wide.iterrows():
        lines.append(_row([r["target"], r["intermediate"],
                           *("" if pd.isna(r[c]) else str(r[c]).replace("\u00a0", " ")
                             for c in languages)]))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    analysis = reports.Analysis.load(parser.parse_args().run_dir)
    print("\n".join(scores(analysis) + stages(analysis) + gains(analysis)))


if __name__ == "__main__":
    main()
