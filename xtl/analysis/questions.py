"""The research questions an analysis answers (or says why it cannot): their table and each
one's section, mixed into `xtl.analysis.reports.Analysis`.

A question whose data this run lacks (one model, no low-resource language, one seed) gets a
sentence saying so, and the numbers the run does have, instead of a figure.
"""

from __future__ import annotations

import pandas as pd

from xtl.analysis import results
from xtl.analysis.sections import Section, caption, caution, shown
from xtl.evaluation import plots

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


class Questions:
    """The question sections of an `xtl.analysis.reports.Analysis`, read from its frames."""

    name: str
    stages: dict[str, list[str]]
    scores: pd.DataFrame
    tasks: pd.DataFrame
    task_gains: pd.DataFrame
    language_gains: pd.DataFrame
    intervals: pd.DataFrame

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
            names = shown(gains["model"])
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
        return Section(head, caution(gains, self.stages).strip(), [], fig, caption(
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
        text = (f"**Not shown: the tier contrast ({missing}).** The figure gives the gain "
                "against target training size for the tier band(s) present only; "
                "`parameters/rq_lowresource.yaml` adds low-resource languages."
                if missing else "")
        return Section(head, (text + caution(self.language_gains, self.stages)).strip(), [],
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
        return Section(head, "", [("gap per seed", gaps.round(2))],
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

