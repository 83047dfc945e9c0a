"""The analysis report's sections, chance levels, captions, the index page and the explorer.

`Analysis.load(run_dir)` computes every frame once (xtl.results, xtl.uncertainty); each
section method returns a `Section` (markdown, tables, at most one figure with its caption)
that notebooks/analysis.ipynb displays. A research question whose data this run lacks (one
model, no low-resource language, one seed) gets a sentence saying so instead of a figure.
"""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import xtl
from xtl import aggregate, plots, results, shortcuts, synth, uncertainty
from xtl import chance as chance_math
from xtl.offline import samples as real_samples
from xtl.store import atomic_write_text, read_json
from xtl.tasks import REGISTRY

XTREME_TASKS = tuple(aggregate.LANGUAGES[aggregate.XTREME])


# --------------------------------------------------------------------------- chance levels


def chance_levels(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (target, language): the chance level of the score shown, its kind and a note.

    Classification and multiple choice: 100 / number of labels or choices; retrieval top-1
    accuracy: 100 / pool size (the number of candidate sentences, the record's n); F1 has no
    chance level: the bar F1 30 (the demo's 0.3) is marked instead (kind "bar"); anything else
    (mAP@20, token accuracy): unknown (NaN). The levels are `xtl.chance.level`'s.
    """
    rows = []
    for (target, language), group in scores.groupby(["target", "language"], sort=False):
        first = group.iloc[0]
        n = first["n"] if pd.notna(first["n"]) else 0
        chance, kind, note = chance_math.level(results.task_for(first), first["metric"], n)
        rows.append({"target": target, "language": language, "metric": first["metric"],
                     "chance": chance, "kind": kind, "note": note})
    return pd.DataFrame(rows, columns=["target", "language", "metric", "chance", "kind", "note"])


# --------------------------------------------------------------------------- sections


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


# question key -> (letter, title, what it needs)
QUESTIONS = {
    "scale": ("a", "Does the gain shrink with model size?", "two or more models"),
    "translated": ("b", "English vs translated / multilingual intermediate data",
                   "English and non-English intermediate data"),
    "lowresource": ("c", "Gain vs target training size per language tier",
                    "two or more train sizes and two or more tier bands"),
    "scale_lowresource": ("d", "Does a larger model shrink the low-resource gap?",
                          "two or more models and high- and low-tier languages"),
    "robustness": ("e", "Seed variance and collapsed runs vs model size",
                   "two or more seeds (two or more models for the figure)"),
}


def asked_question(name: str) -> str | None:
    """The question an experiment named rq_<key>[...] is for (longest key that matches)."""
    keys = sorted((k for k in QUESTIONS if name.startswith(f"rq_{k}")), key=len, reverse=True)
    return keys[0] if keys else None


class Analysis:
    """Every frame of one analysis, computed once."""

    def __init__(self, table: pd.DataFrame, root: Path | None = None,
                 samples: int = uncertainty.SAMPLES,
                 stages: dict[str, list[str]] | None = None,
                 baselines: pd.DataFrame | None = None) -> None:
        self.root = root
        self.table = table
        # every cell's scores beside its shortcut baselines (xtl.shortcuts.load)
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

    def _collapsed_stage_labels(self, frame: pd.DataFrame) -> list[str]:
        """The collapsed intermediate stages that the cells of `frame` started from."""
        return list(dict.fromkeys(label for cell in frame["cell"].unique()
                                  for label in self.stages.get(cell, [])))

    def _caution(self, gains: pd.DataFrame) -> str:
        """Warnings for gains whose baseline or intermediate stage collapsed ('' if none)."""
        note = collapse_note(gains)
        stages = self._collapsed_stage_labels(gains) if len(gains) else []
        if stages:
            note += (f" **Caution: intermediate stage training collapsed** ({'; '.join(stages)}"
                     "): its targets were fine-tuned from a checkpoint that predicts one "
                     "class, so their gains say little about that intermediate task.")
        return note

    def overview(self) -> Section:
        t = self.table
        if t.empty:
            return Section("Overview", "**No finished target cell yet**: nothing to analyse.")
        cells = t.drop_duplicates("cell")
        text = (f"{len(cells)} finished evaluation cells, {len(t)} metric records. "
                f"Models: {', '.join(_shown(cells['model']))}; intermediate: "
                f"{', '.join(_shown(cells['intermediate']))}; targets: "
                f"{', '.join(_shown(cells['target']))}; seeds: "
                f"{', '.join(_shown(cells['seed']))}; split: {', '.join(_shown(t['split']))}. "
                f"Training collapsed in {int(cells['collapsed'].sum())} of {len(cells)} "
                "evaluation cells"
                + (f" and in the intermediate stage(s) "
                   f"{'; '.join(self._collapsed_stage_labels(cells))}"
                   if self._collapsed_stage_labels(cells) else "") + "."
                + (f" Run directory: `{self.root}`." if self.root is not None else ""))
        return Section("Overview", text)

    def questions(self) -> Section:
        rows = []
        for key, (letter, title, needs) in QUESTIONS.items():
            reason = self._missing(key)
            if reason and key == "lowresource" and self._sizes() > 1:
                reason = f"partly (gain vs size, no tier contrast): {reason}"
            rows.append({"question": f"({letter}) {title}", "needs": needs,
                         "this run": "answerable" if not reason else reason})
        asked = asked_question(self.name)
        text = (f"This experiment is for question ({QUESTIONS[asked][0]})." if asked else "")
        return Section("Research questions this run can answer", text,
                       [("", pd.DataFrame(rows))])

    def _missing(self, key: str) -> str:
        """Why question `key` cannot be answered from this run ('' when it can); every
        missing ingredient, joined by '; '."""
        gains = self.task_gains
        if gains.empty:
            return "no baseline (`none`) and intermediate cell of the same target"
        reasons = []
        if key in ("scale", "scale_lowresource", "robustness_size"):
            names = _shown(gains["model"])
            if len(names) < 2:
                reasons.append(f"{len(names)} model ({', '.join(names)}): a trend over size "
                               "needs two or more")
            elif gains.dropna(subset=["parameters"])["model"].nunique() < 2:
                reasons.append("the parameter count of the models is not known (no local "
                               "weights)")
        data = set(gains["intermediate_data"])
        if key == "translated" and not ("english" in data and data - {"english"}):
            reasons.append(f"intermediate data is only {', '.join(sorted(data))}")
        if key == "lowresource" and gains["train_size"].nunique(dropna=False) < 2:
            reasons.append("one target training size")
        tiers = set(self.language_gains.get("tier_group", pd.Series(dtype=str)).dropna()
                    .unique())
        if key in ("lowresource", "scale_lowresource") and not {"high", "low"} <= tiers:
            synthetic = all(str(t).startswith("synth") for t in gains["target"].unique())
            reasons.append(f"evaluated languages fall in tier band(s) "
                           f"{', '.join(sorted(tiers))} only: no high/low contrast"
                           + (" (the synthetic languages are all high-resource)"
                              if synthetic else ""))
        if key == "robustness" and gains["seed"].nunique() < 2:
            reasons.append("one seed")
        return "; ".join(reasons)

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
                "Each target's number is the mean over its languages (official XTREME lists "
                "for XTREME tasks; every evaluated language otherwise) of the headline metric "
                "(QA: (EM+F1)/2); the gain is the intermediate cell's number minus the "
                "baseline's, per seed, then averaged over seeds."
                + (" The last column averages the targets (the XTREME column when all nine "
                   "XTREME tasks were run)." if average else "")
                + ("" if fig else " One intermediate task and one target: the table's gain "
                   "is the whole matrix, so no heatmap is drawn.")
                + self._caution(part),
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
            parts.append((f"{bench.upper()} score over seeds (overall = mean over the tasks "
                          "present; `missing` lists the others)", stats.round(2)))
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
        return Section("XTREME and XTREME-R scores", "Task numbers are averaged over each "
                       "task's official languages (xtl.aggregate); a task missing some of them "
                       "is `partial`.", parts)

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
            "Zero-shot scores per language, against chance",
            "English is the training language; every other language is zero-shot. Chance: "
            "1/labels (classification), 1/choices (multiple choice), 1/pool size (retrieval "
            "top-1); F1 (NER, POS, QA) has no chance level, so the bar F1 30 is marked.",
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
        text = ("Each cell also scored cheap shortcuts on its own evaluation rows, fit on its "
                "own English training rows (`xtl.shortcuts`): "
                + "; ".join(f"**{n}**: {shortcuts.DESCRIPTIONS[n]}" for n in names)
                + ". A zero-shot score shows transfer only where it beats them: `beats` is "
                "`all`, or names the shortcuts that the lowest of the intermediate tasks' "
                "scores does not beat.")
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
        return Section("Gain per language, per target", self._caution(gains).strip(), [], fig,
                       caption(
            "Gain over no intermediate task per language (mean over seeds); error bars: 95% "
            "paired-bootstrap interval over examples.", gains), "language_gains")

    def uncertainty(self) -> Section:
        if self.tasks.empty:
            return Section("Uncertainty", "No target cell finished.")
        stats = results.seed_stats(self.tasks)
        stats = stats.drop(columns=["hparams"])
        tables = [("task score over seeds: mean, std, min, max; `collapsed` counts seeds whose "
                   "training collapsed, `mean_ok` is the mean without them", stats.round(2))]
        if len(self.intervals):
            tables.append((f"paired bootstrap ({uncertainty.SAMPLES} resamples, 95%) of each "
                           "gain: `gain [low, high]` in points; `all` = the task (languages "
                           "resampled independently, their gains averaged)",
                           interval_table(self.intervals)))
        return Section("Uncertainty: seeds, collapsed runs and bootstrap intervals",
                       "Intervals resample the evaluation examples (baseline and intermediate "
                       "on the same resample); seed variation is the std column. Corpus-level "
                       "metrics (seqeval F1, QA) are recomputed on every resample.", tables)

    # ---- research questions

    def question(self, key: str) -> Section | None:
        """The section of question `key`; None when neither asked nor answerable."""
        letter, title, _ = QUESTIONS[key]
        reason = self._missing(key)
        asked = asked_question(self.name) == key
        if reason and not asked:
            return None
        head = f"({letter}) {title}"
        if reason and key == "lowresource" and self._sizes() > 1:
            return self._q_lowresource(head, missing=reason)  # sizes without tier contrast
        if reason:
            return Section(head, f"**Not shown: {reason}.** This run cannot show the effect; "
                           f"`parameters/rq_{key}.yaml` on a GPU machine can.",
                           self._fallback_tables(key))
        return getattr(self, f"_q_{key}")(head)

    def _fallback_tables(self, key: str) -> list[tuple[str, pd.DataFrame]]:
        """What this run does have for question `key`, as numbers rather than a figure."""
        if key == "robustness" and len(self.tasks):
            return [("task score over seeds", results.seed_stats(self.tasks)
                     .drop(columns=["hparams"]).round(2))]
        if key in ("lowresource", "scale_lowresource") and len(self.scores):
            tiers = (self.scores.groupby(["model", "intermediate", "target", "train_size",
                                          "tier_group"], dropna=False)["score"].mean()
                     .unstack("tier_group"))
            return [("mean score per tier band", tiers.round(2))]
        if len(self.task_gains):
            return [("task-level gain per seed", self.task_gains[
                ["model", "parameters", "intermediate", "intermediate_data", "target", "seed",
                 "train_size", "score", "baseline", "gain"]].round(2))]
        return []

    def _q_scale(self, head: str) -> Section:
        gains = self.task_gains.dropna(subset=["parameters"])
        return Section(head, "", [], plots.gain_vs_parameters(gains), caption(
            "Task-level gain over no intermediate task against encoder parameters (log scale); "
            "error bars: std over seeds.", gains), "q_scale")

    def _q_translated(self, head: str) -> Section:
        gains = self.task_gains
        fig = plots.data_comparison(gains, self.language_gains, self.intervals)
        return Section(head, self._caution(gains).strip(), [], fig, caption(
            "Gain over no intermediate task of each intermediate task, labelled by the "
            "language of its data (english / translated / multilingual / mixed): left the "
            "task (mean over languages), right per language; bars = mean over seeds, error "
            "bars: 95% paired-bootstrap interval over examples.", self.language_gains),
            "q_translated")

    def _tier_gains(self) -> pd.DataFrame:
        gains = self.language_gains
        gains = gains[gains["language"] != "en"]
        keys = ["model", "parameters", "intermediate", "target", "train_size", "seed",
                "tier_group", "split", "run"]
        return (gains.groupby(keys, dropna=False)
                .agg(gain=("gain", "mean"), cell=("cell", "first")).reset_index())

    def _sizes(self) -> int:
        gains = self.task_gains
        return gains["train_size"].nunique(dropna=False) if len(gains) else 0

    def _q_lowresource(self, head: str, missing: str = "") -> Section:
        gains = self._tier_gains()
        text = "English is left out (the training language)."
        if missing:
            text = (f"**Not shown: the tier contrast ({missing}).** The figure gives the gain "
                    "against target training size for the tier band(s) present only; "
                    f"`parameters/rq_lowresource.yaml` adds low-resource languages. {text}")
        return Section(head, text + self._caution(self.language_gains), [],
                       plots.gain_vs_train_size(gains), caption(
                           "Gain over no intermediate task against target training size, mean "
                           "over the zero-shot languages of each tier band (high: Joshi "
                           "classes 4-5, mid: 3, low: 0-2).", self.language_gains),
                       "q_lowresource")

    def _q_scale_lowresource(self, head: str) -> Section:
        scores = self.scores[self.scores["language"] != "en"]
        keys = ["model", "parameters", "intermediate", "target", "train_size", "seed"]
        tiers = (scores.groupby([*keys, "tier_group"], dropna=False)["score"].mean()
                 .unstack("tier_group"))
        gaps = (tiers["high"] - tiers["low"]).rename("gap").reset_index().dropna(
            subset=["gap"])
        return Section(head, "Gap = mean zero-shot score of high-tier languages minus that of "
                       "low-tier languages (English left out).", [("gap per seed",
                                                                  gaps.round(2))],
                       plots.tier_gap_vs_size(gaps), caption(
                           "High-minus-low tier gap against encoder parameters, per target and "
                           "intermediate task; error bars: std over seeds.", scores),
                       "q_scale_lowresource")

    def _q_robustness(self, head: str) -> Section:
        stats = results.seed_stats(self.tasks, by=["model", "parameters", "intermediate",
                                                   "target", "train_size"])
        tables = [("task score over seeds", stats.round(2))]
        reason = self._missing("robustness_size")
        if reason:
            return Section(head, f"**Not shown: {reason}.** The figure (std over seeds and "
                           "collapse rate against model size) needs two or more models; the "
                           "table gives this run's spread over seeds and its collapsed runs.",
                           tables)
        return Section(head, "", tables, plots.robustness(stats.dropna(subset=["parameters"])),
                       caption("Std over seeds and share of collapsed training runs against "
                               "encoder parameters.", self.tasks), "q_robustness")

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


def _shown(values: pd.Series) -> list[str]:
    return [str(v) for v in dict.fromkeys(values.dropna())]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


REPORT_STYLE = """<style>
/* papermill's injected parameters cell: the run directory is in the overview instead */
.celltag_injected-parameters { display: none; }
</style>"""


def report_style() -> Any:
    """The analysis report's style (shown by the notebook's first cell): hides the injected
    parameters cell, the one input cell nbconvert would still show."""
    from IPython.display import HTML

    return HTML(REPORT_STYLE)


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
    """Show a section in a notebook: heading, text, tables, then the figure and its caption
    (the figure is also saved as <figures>/<name>.png)."""
    from IPython.display import HTML, Markdown
    from IPython.display import display as show

    show(Markdown(f"### {section.title}\n\n{section.text}"))
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


# --------------------------------------------------------------------------- the index page


def cell_headline(metrics_path: Path) -> str:
    """'<metric> <mean over languages> (n languages; en X)' of a cell's metrics.json."""
    by_language: dict[str, dict[str, float]] = {}
    try:
        records = read_json(metrics_path)["records"] if metrics_path.is_file() else []
        for r in records:
            by_language.setdefault(r["language"], {})[r["metric"]] = float(r["value"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # damaged or foreign
        return "unreadable metrics.json"
    values = {lang: results._headline_value(m) for lang, m in by_language.items()}
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return ""
    name = results.headline_name(next(iter(by_language.values())))
    mean = sum(values.values()) / len(values)
    if len(values) == 1:
        return f"{name} {mean:.1f} ({next(iter(values))})"
    en = f"; en {values['en']:.1f}" if "en" in values else ""
    return f"{name} {mean:.1f} (mean of {len(values)} languages{en})"


def write_index(root: Path, plan: Any, states: dict[str, tuple[str, str]]) -> None:
    """index.html: the analysis on top, then every cell of `plan` (an `xtl.plan.Plan`) with
    its (state, note) from `states`, headline score and link (`xtl.run.write_index`)."""
    rows = []
    for cell in plan.cells:
        state, note = states[cell.id]
        metrics = root / "cells" / cell.id / "metrics.json"
        if metrics.is_file() and _collapsed(metrics):
            note = ("training collapsed; " + note).strip("; ")
        link = (f'<a href="cells/{cell.id}/report.html">report</a>'
                if (root / "cells" / cell.id / "report.html").is_file() else "")
        rows.append(f"<tr><td><code>{cell.id}</code></td><td>{html.escape(cell.label)}</td>"
                    f"<td class='{state}'>{state}</td>"
                    f"<td>{html.escape(cell_headline(metrics))}</td><td>{link}</td>"
                    f"<td>{html.escape(note)}</td></tr>")
    analysis = ('<p><a href="analysis/report.html"><b>Analysis report</b></a> (tables, figures, '
                'uncertainty); the results table: <code>analysis/results.parquet</code></p>'
                if (root / "analysis" / "report.html").is_file() else
                "<p>No analysis report yet.</p>")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    banner = _smoke_banner(root)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>{'SMOKE RUN ' if banner else ''}xtl: {html.escape(plan.experiment)}</title><style>
body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}} .done{{color:green}} .failed{{color:red}}
.skipped{{color:#a60}}</style></head><body>
{banner}<h1>xtl experiment {html.escape(plan.experiment)}</h1>{analysis}
<table><tr><th>cell</th><th>what</th><th>status</th><th>headline</th><th>report</th>
<th>note</th></tr>{''.join(rows)}</table>
<p>Generated {now} by xtl {xtl.__version__}.</p></body></html>"""
    atomic_write_text(root / "index.html", page)


def _smoke_banner(root: Path) -> str:
    """A smoke run's index says so before anything else (its numbers mean nothing)."""
    from xtl.smokecaps import is_smoke

    marker = is_smoke(root)
    if marker is None:
        return ""
    subs = "; ".join(f"{k}: {v['from']} -> {v['to']}"
                     for k, v in marker.get("substitutions", {}).items())
    subs = f"; {html.escape(subs)}" if subs else ""
    return ("<div style='background:#c00;color:#fff;padding:1em;font-size:1.4em'><b>SMOKE RUN"
            f"</b>: every split capped at {marker.get('rows')} rows, at most "
            f"{marker.get('steps')} optimizer steps per cell{subs}"
            ". These scores are NOT results; this directory only shows that every cell runs."
            "</div>\n")


def _collapsed(metrics: Path) -> bool:
    try:
        return results.run_collapsed(json.loads(metrics.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # damaged: no flag
        return False


# --------------------------------------------------------------------------- the explorer


def filter_table(frame: pd.DataFrame, **chosen: Any) -> pd.DataFrame:
    """Rows whose column values are among the chosen ones (an empty choice keeps all)."""
    keep = pd.Series(True, index=frame.index)
    for column, values in chosen.items():
        if values:
            keep &= frame[column].isin(list(values))
    return frame[keep]


def cell_links(frame: pd.DataFrame) -> str:
    """HTML list of links to the reports of the cells in `frame` (absolute file paths)."""
    items = []
    for _, row in frame.drop_duplicates("cell").iterrows():
        path = row.get("predictions")
        report = Path(path).parents[1] / "report.html" if isinstance(path, str) else None
        label = html.escape(f"{row['model']} | {row['intermediate']} -> {row['target']} | "
                            f"seed {row['seed']}")
        items.append(f'<li><a href="{report.as_uri()}" target="_blank">{label}</a></li>'
                     if report is not None and report.is_file() else f"<li>{label}</li>")
    return "<ul>" + "".join(items) + "</ul>"


EXPLORER_AXES = ("model", "intermediate", "target", "language", "seed")


def explorer(scores: pd.DataFrame) -> Any:
    """ipywidgets: a multi-select per axis, then the filtered scores, the per-language figure
    with chance levels, and links to each selected cell's report; returns the pickers' box
    (already displayed).

    The views are plain outputs, updated in place through display ids, not captured by an
    Output widget: a headless run (papermill) has no frontend for widgets, and output capture
    into one there is where executions were seen to hang. Headless, the pickers are inert and
    the views show every cell."""
    import ipywidgets as w
    from IPython.display import display as show

    pickers = {axis: w.SelectMultiple(options=_shown(scores[axis]), description=axis,
                                      rows=min(6, max(2, scores[axis].nunique())))
               for axis in EXPLORER_AXES}
    box = w.VBox([w.HBox(list(pickers.values()))])
    show(box)
    handles = [show(view, display_id=True) for view in _explore_views(scores)]

    def redraw(*_: Any) -> None:
        chosen = {axis: [o for o in p.value] for axis, p in pickers.items()}
        chosen["seed"] = [int(s) for s in chosen["seed"]]
        for handle, view in zip(handles, _explore_views(filter_table(scores, **chosen)),
                                strict=True):
            handle.update(view)

    for picker in pickers.values():
        picker.observe(redraw, names="value")
    return box


def _explore_views(part: pd.DataFrame) -> list[Any]:
    """The explorer's three views of some scores: table, per-language figure, report links."""
    from IPython.display import HTML

    if part.empty:
        return [HTML("<p>no cell matches</p>"), HTML(""), HTML("")]
    fig = plots.zero_shot_scores(part, chance_levels(part))
    plt.close(fig)  # shown by the display call, not again by the inline backend
    return [part.pivot_table(index=["model", "intermediate", "target", "seed"],
                             columns="language", values="score").round(1),
            fig, HTML(cell_links(part))]
