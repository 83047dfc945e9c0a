"""The analysis report's numbers: `Analysis`, its sections, and how a notebook shows them.

`Analysis.load(run_dir)` computes every frame once (xtl.analysis.results,
xtl.analysis.uncertainty); each
section method returns a `Section` (xtl.analysis.sections: tables, at most one figure with its
caption, and only the sentences that depend on the run). What each section measures and how to read
it is the markdown of notebooks/analysis.ipynb, which shows a section with `display_body`
under its own heading, or with `display` (heading included) where the run decides how many
there are. The research-question sections come from xtl.analysis.questions.
"""

from __future__ import annotations

import hashlib
import html
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from xtl.analysis import results, uncertainty
from xtl.analysis.questions import QUESTIONS, Questions
from xtl.analysis.sections import (
    Section,
    caption,
    caution,
    chance_levels,
    collapsed_stages,
    interval_table,
    shown,
)
from xtl.data.tasks import REGISTRY
from xtl.evaluation import aggregate, plots, shortcuts
from xtl.offline import samples as real_samples
from xtl.offline import synth

XTREME_TASKS = tuple(aggregate.LANGUAGES[aggregate.XTREME])


class Analysis(Questions):
    """Every frame of one analysis, computed once."""

    def __init__(self, table: pd.DataFrame, root: Path | None = None,
                 samples: int = uncertainty.SAMPLES,
                 stages: dict[str, list[str]] | None = None,
                 baselines: pd.DataFrame | None = None) -> None:
        self.root = root
        self.table = table
        # every cell's scores beside its shortcut baselines (xtl.evaluation.shortcuts.load)
        self.baselines = baselines if baselines is not None else pd.DataFrame()
        # evaluation cell -> its collapsed intermediate stages (results.collapsed_stages)
        self.stages = stages or {}
        self.scores = results.language_scores(table)
        self.tasks = results.task_scores(table)
        self.task_gains = results.gains(self.tasks)
        self.language_gains = results.gains(self.scores, by=["language"])
        self.intervals = (uncertainty.gain_intervals(self.scores, samples=samples)
                          if len(self.scores) else pd.DataFrame())
        names = sorted(table["run"].dropna().unique()) if len(table) else []
        self.name = names[0] if len(names) == 1 else ""

    @classmethod
    def load(cls, run_dirs: Any, samples: int = uncertainty.SAMPLES) -> Analysis:
        table = results.load(run_dirs)
        root = Path(run_dirs) if isinstance(run_dirs, (str, Path)) else None
        return cls(table, root, samples, results.collapsed_stages(run_dirs),
                   shortcuts.load(run_dirs))

    # ---- what the run holds

    def overview(self) -> Section:
        t = self.table
        if t.empty:
            return Section("Overview", "**No finished target cell yet**: nothing to analyse.")
        cells = t.drop_duplicates("cell")
        text = (f"{len(cells)} finished evaluation cells, {len(t)} metric records. "
                f"Models: {', '.join(shown(cells['model']))}; intermediate: "
                f"{', '.join(shown(cells['intermediate']))}; targets: "
                f"{', '.join(shown(cells['target']))}; seeds: "
                f"{', '.join(shown(cells['seed']))}; split: {', '.join(shown(t['split']))}. "
                f"Training collapsed in {int(cells['collapsed'].sum())} of {len(cells)} "
                "evaluation cells"
                + (f" and in the intermediate stage(s) "
                   f"{'; '.join(collapsed_stages(self.stages, cells))}"
                   if collapsed_stages(self.stages, cells) else "") + "."
                + (f" Run directory: `{self.root}`." if self.root is not None else ""))
        return Section("Overview", text)

    # ---- the paper's table

    def main_table(self) -> list[Section]:
        gains = self.task_gains
        if gains.empty:
            return [Section("Gain over no intermediate task", "**No gain to show**: the "
                            "experiment has no finished `none` baseline and intermediate cell "
                            "for the same target.")]
        sections = []
        groups = _size_groups(gains)
        sizes = len({None if pd.isna(size) else size for _, size, _ in groups})
        for model, size, part in groups:
            label = f"{model}" + (f", {int(size)} target training examples" if pd.notna(size)
                                  else ", full target training data" if sizes > 1 else "")
            average = ("XTREME" if set(part["target"]) >= set(XTREME_TASKS)
                       else f"avg ({part['target'].nunique()} targets)"
                       if part["target"].nunique() > 1 else None)
            matrix = results.gain_matrix(part, average)
            # a 1 x 1 matrix is the table's one number: no figure for it
            fig = (plots.gain_heatmap(matrix, f"Gain over no intermediate task: {label}", average)
                   if matrix.size > 1 else None)
            stats = results.seed_stats(part, "gain", ["intermediate", "target"])
            ci = self._task_intervals(model, size)
            table = stats.merge(ci, on=["intermediate", "target"], how="left")
            if not table["note"].fillna("").astype(bool).any():
                table = table.drop(columns="note")
            sections.append(Section(
                f"Gain over no intermediate task ({label})",
                (("" if fig else "One intermediate task and one target: the table's gain is "
                  "the whole matrix, so no heatmap is drawn.")
                 + caution(part, self.stages)).strip(),
                [("gain over seeds, and the paired-bootstrap interval of the seed-mean gain",
                  table.round(2))],
                fig, caption(f"Intermediate x target gain (points) for {label}, mean over "
                             "seeds; blue = better than no intermediate task.", part),
                _slug(f"gain_heatmap_{label}")))
        return sections

    def _task_intervals(self, model: str, size: Any) -> pd.DataFrame:
        ci = self.intervals
        cols = ["intermediate", "target", "low", "high", "note"]
        if ci.empty:
            return pd.DataFrame(columns=cols)
        keep = (ci["language"] == "all") & (ci["model"] == model)
        # rows without a train size (retrieval) belong to every size group
        keep &= ci["train_size"].isna() | (ci["train_size"] == size if pd.notna(size) else False)
        part = ci[keep].groupby(["intermediate", "target"], as_index=False).agg(
            low=("low", "mean"), high=("high", "mean"), note=("note", "first"))
        return part[cols].rename(columns={"low": "ci_low", "high": "ci_high"})

    def benchmark(self) -> Section:
        parts = []
        for bench in (aggregate.XTREME, aggregate.XTREME_R):
            scores = results.benchmark_scores(results.task_scores(self.table, bench), bench)
            if scores.empty:
                continue
            scores = scores.drop(columns=["hparams"], errors="ignore")
            stats = results.seed_stats(scores.assign(collapsed=scores["collapsed"]), "overall",
                                       ["model", "intermediate", "train_size"])
            parts.append((f"{bench.upper()} score over seeds", stats.round(2)))
            categories = [c for c in aggregate.GROUPS[bench] if c in scores]
            parts.append((f"{bench.upper()} per category and overall, per seed",
                          scores[["model", "intermediate", "seed", "train_size", *categories,
                                  "overall", "included", "missing", "partial"]].round(2)))
            gains = results.gains(scores, "overall")
            if len(gains):
                parts.append((f"{bench.upper()} gain over no intermediate task, per seed",
                              gains[["model", "intermediate", "seed", "overall", "baseline",
                                     "gain"]].round(2)))
        if not parts:
            return Section("XTREME and XTREME-R scores", "No XTREME or XTREME-R task in this "
                           "run (synthetic or declared targets only): the targets' own means "
                           "are in the table above.")
        return Section("XTREME and XTREME-R scores", "", parts)

    # ---- per language

    def zero_shot(self) -> Section:
        if self.scores.empty:
            return Section("Zero-shot scores per language", "No target cell finished.")
        shown = results.language_scores(self.table, qa="f1")
        chance = chance_levels(shown)
        fig = plots.zero_shot_scores(shown, chance)
        mean = (shown.groupby(["target", "intermediate", "language"], sort=False)["score"]
                .mean().unstack("language"))
        levels = (chance.set_index(["target", "language"])["chance"].unstack("language")
                  .reindex(index=list(dict.fromkeys(shown["target"])), columns=mean.columns))
        return Section(
            "Zero-shot scores per language, against chance", "",
            [("mean score over seeds", mean.round(1)),
             ("chance level (or F1 bar) per language", levels.round(1)),
             ("how each level is set", chance.drop_duplicates(["target", "note"])[
                 ["target", "metric", "note"]].reset_index(drop=True))],
            fig, caption("Headline score per language and intermediate task (QA: F1), bars = "
                         "mean over seeds (error bar: std over seeds where several); dashed "
                         "marks: chance, dotted: the F1 bar.", shown), "zero_shot_scores")

    def data_notes(self) -> Section | None:
        """What the run's synthetic tasks and real samples can and cannot show (None when it
        has neither)."""
        t = self.table
        names = set(t["target"].dropna()) | set(t["task"].dropna()) if len(t) else set()
        for label in (t["intermediate"].dropna() if len(t) else []):
            names |= {n for chain in str(label).split(">") for n in chain.split("+")}
        kinds = []
        if any(n.startswith("synth-") for n in names):
            kinds.append(("The synthetic tasks", synth))
        if any(_bundled(n) for n in names):
            kinds.append(("The real samples", real_samples))
        if not kinds:
            return None
        text = "\n\n".join(f"**{what} can show:** {module.CAN_SHOW}\n\n**{what} cannot "
                             f"show:** {module.CANNOT_SHOW}" for what, module in kinds)
        return Section("What these tasks can and cannot show", text)

    def shortcut_baselines(self) -> Section:
        targets, stages = shortcuts.summary(self.baselines)
        if targets.empty and stages.empty:
            return Section("Against shortcuts that need no model", "No cell recorded shortcut "
                           "baselines (they exist for tagging, NLI-style pairs, extractive QA "
                           "and Tatoeba-style retrieval).")
        names = [n for n in shortcuts.DESCRIPTIONS if n in targets or n in stages]
        text = ("Shortcuts in this run: "
                + "; ".join(f"**{n}**: {shortcuts.DESCRIPTIONS[n]}" for n in names) + ".")
        if self.baselines["model"].nunique() == 1:  # one model: its name says nothing
            targets, stages = (f.drop(columns="model", errors="ignore") for f in (targets, stages))
        tables = []
        if len(targets):
            tables.append(("model score per intermediate task (mean over seeds) and each "
                           "shortcut, per target and language", targets.round(1)))
        if len(stages):
            tables.append(("intermediate stages: English dev score and each shortcut",
                           stages.round(1)))
        return Section("Against shortcuts that need no model", text, tables)

    def per_language_gains(self) -> Section:
        gains = self.language_gains
        if gains.empty:
            return Section("Gain per language", "No gain to show.")
        ci = self.intervals
        ci = ci[ci["language"] != "all"] if len(ci) else ci
        fig = plots.language_gains(gains, ci)
        return Section("Gain per language, per target", caution(gains, self.stages).strip(),
                       [], fig, caption(
            "Gain over no intermediate task per language (mean over seeds); error bars: 95% "
            "paired-bootstrap interval over examples.", gains), "language_gains")

    def uncertainty(self) -> Section:
        if self.tasks.empty:
            return Section("Uncertainty", "No target cell finished.")
        stats = results.seed_stats(self.tasks)
        stats = stats.drop(columns=["hparams"])
        tables = [("task score over seeds", stats.round(2))]
        if len(self.intervals):
            tables.append((f"paired bootstrap of each gain ({uncertainty.SAMPLES} resamples, "
                           "95%), in points", interval_table(self.intervals)))
        return Section("Uncertainty: seeds, collapsed runs and bootstrap intervals", "", tables)

    # ---- research questions

    def sections(self) -> list[Section]:
        notes = self.data_notes()
        found = [self.overview(), *([notes] if notes else []), self.questions(),
                 *self.main_table(), self.benchmark(), self.zero_shot(),
                 self.shortcut_baselines(), self.per_language_gains(), self.uncertainty()]
        found += [s for s in (self.question(k) for k in QUESTIONS) if s is not None]
        return found


def _bundled(name: str) -> bool:
    task = REGISTRY.get(name)
    return bool(task is not None and task.bundled)


def _size_groups(gains: pd.DataFrame) -> list[tuple[str, Any, pd.DataFrame]]:
    """(model, train size, rows) per heatmap: retrieval targets (no training, so no train
    size) join every train-size group of their model."""
    retrieval = gains["kind"].eq("retrieval")
    groups = []
    for (model, size), part in gains[~retrieval].groupby(["model", "train_size"], dropna=False):
        extra = gains[retrieval & gains["model"].eq(model)]
        groups.append((model, size, pd.concat([part, extra])))
    for model, part in gains[retrieval].groupby("model"):
        if not any(m == model for m, _, _ in groups):
            groups.append((model, pd.NA, part))
    return groups


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def html_table(table: pd.DataFrame) -> str:
    """A table as a reader sees it: no positional index, a full-data train size as 'full',
    missing numbers as '-', one or two decimals, text left-aligned on one line except where
    a long multi-task or chain name breaks after its `+` / `>` (as in the figures) and where
    sentences or intervals wrap. Plain `<td>value</td>` cells (pandas' `to_html`)."""
    named = not isinstance(table.index, pd.RangeIndex)
    frame = table.reset_index() if named else table.copy()
    if "train_size" in frame:
        frame["train_size"] = [("full" if pd.isna(v) else str(int(v)))
                               for v in frame["train_size"]]
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    # short values (names, labels) stay on one line; sentences and intervals may wrap
    wrap = {c for c in text if frame[c].astype(str).str.len().max() > 48
            or frame[c].astype(str).str.contains(" [", regex=False).any()}
    for column in frame.columns:  # written unescaped below: escape here, then add the breaks
        if column in text:
            names = column in ("intermediate", "chain")
            frame[column] = [v if not isinstance(v, str) else html.escape(
                plots.wrap_label(v) if names else v).replace("\n", "<br>")
                for v in frame[column]]
        elif pd.api.types.is_integer_dtype(frame[column]) and frame[column].isna().any():
            frame[column] = ["-" if pd.isna(v) else str(int(v)) for v in frame[column]]
    if named:
        frame = frame.set_index([n or "index" for n in table.index.names])
    decimals = _decimals(frame)
    body = frame.to_html(index=named, na_rep="-", escape=False, border=0,
                         float_format=lambda v: f"{v:.{decimals}f}",
                         classes="xtl-table")
    if named:  # row headers hold the names; rowspans make column positions unreliable
        return body
    # the theme right-aligns every cell: left-align the text columns by position
    table_id = "xtl-" + hashlib.sha1(body.encode()).hexdigest()[:10]
    rules = "".join(
        f"#{table_id} td:nth-child({k + 1}), #{table_id} th:nth-child({k + 1})"
        f" {{text-align: left;{'' if column in wrap else ' white-space: nowrap;'}}}\n"
        for k, column in enumerate(frame.columns) if column in text)
    return (f"<style>\n{rules}</style>\n" if rules else "") + body.replace(
        "<table ", f'<table id="{table_id}" ', 1)


def _decimals(frame: pd.DataFrame) -> int:
    """1 when every float is already rounded to one decimal (scores), else 2."""
    floats = frame.select_dtypes("float").to_numpy(dtype=float).ravel()
    floats = floats[np.isfinite(floats)]
    return 1 if np.allclose(floats * 10, np.round(floats * 10), atol=1e-6) else 2


def display(section: Section, figures: Path | None = None) -> None:
    """Show a section under its own heading (sections the run decides the number of)."""
    from IPython.display import Markdown
    from IPython.display import display as show

    show(Markdown(f"### {section.title}"))
    display_body(section, figures)


def display_body(section: Section, figures: Path | None = None) -> None:
    """Show a section whose heading and explanation are the notebook's markdown: its
    run-dependent sentences, tables, then the figure and its caption (the figure is also
    saved as <figures>/<name>.png)."""
    from IPython.display import HTML, Markdown
    from IPython.display import display as show

    if section.text:
        show(Markdown(section.text))
    for label, table in section.tables:
        if label:
            show(Markdown(f"*{label}*"))
        show(HTML(html_table(table)))
    if section.figure is not None:
        if figures is not None and section.name:
            plots.save(section.figure, figures, section.name)
        show(section.figure)
        plt.close(section.figure)
        show(Markdown(f"**Figure.** {section.caption}"))
