"""The analysis report's sections, chance levels, captions, the index page and the explorer.

`Analysis.load(run_dir)` computes every frame once (xtl.results, xtl.uncertainty); each
section method returns a `Section` (markdown, tables, at most one figure with its caption)
that notebooks/analysis.ipynb displays. A research question whose data this run lacks (one
model, no low-resource language, one seed) gets a sentence saying so instead of a figure.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

import xtl
from xtl import aggregate, plots, results, uncertainty
from xtl.store import atomic_write_text, read_json

XTREME_TASKS = tuple(aggregate.LANGUAGES[aggregate.XTREME])


# --------------------------------------------------------------------------- chance levels


def chance_levels(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (target, language): the chance level of the score shown, its kind and a note.

    Classification and multiple choice: 100 / number of labels or choices; retrieval top-1
    accuracy: 100 / pool size (the number of candidate sentences, the record's n); F1 has no
    chance level: the bar F1 30 (the demo's 0.3) is marked instead (kind "bar"); anything else
    (mAP@20, token accuracy): unknown (NaN).
    """
    rows = []
    for (target, language), group in scores.groupby(["target", "language"], sort=False):
        first = group.iloc[0]
        task = results.task_for(first)
        metric = first["metric"]
        chance, kind, note = float("nan"), "", "no chance level known"
        if task is not None and metric == "accuracy" and task.format == "retrieval":
            pool = int(first["n"]) if pd.notna(first["n"]) else 0
            if pool:
                chance, kind, note = 100 / pool, "pool", f"1/{pool} (pool of {pool} sentences)"
        elif task is not None and metric == "accuracy" and task.label_names:
            k = len(task.label_names)
            what = "choices" if task.format == "multiple_choice" else "labels"
            chance, kind, note = 100 / k, "chance", f"1/{k} ({k} {what})"
        elif metric == "f1":
            chance, kind, note = plots.F1_BAR, "bar", "F1 has no chance level; bar 30 (0.3)"
        rows.append({"target": target, "language": language, "metric": metric,
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
    return (f"{what} From {cells} cells of run {runs} (seeds {seeds or 'n/a'}); "
            f"split: {splits}.")


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
                 samples: int = uncertainty.SAMPLES) -> None:
        self.root = root
        self.table = table
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
        return cls(table, root, samples)

    # ---- what the run holds

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
                f"Collapsed training runs: {int(cells['collapsed'].sum())}.")
        return Section("Overview", text)

    def questions(self) -> Section:
        rows = []
        for key, (letter, title, needs) in QUESTIONS.items():
            reason = self._missing(key)
            rows.append({"question": f"({letter}) {title}", "needs": needs,
                         "this run": "answerable" if not reason else reason})
        asked = asked_question(self.name)
        text = (f"This experiment is for question ({QUESTIONS[asked][0]})." if asked else "")
        return Section("Research questions this run can answer", text,
                       [("", pd.DataFrame(rows).set_index("question"))])

    def _missing(self, key: str) -> str:
        """Why question `key` cannot be answered from this run ('' when it can)."""
        gains = self.task_gains
        if gains.empty:
            return "no baseline (`none`) and intermediate cell of the same target"
        models = gains.dropna(subset=["parameters"])["model"].nunique()
        tiers = set(self.language_gains.get("tier_group", pd.Series(dtype=str)).dropna()
                    .unique())
        data = set(gains["intermediate_data"])
        if key in ("scale", "scale_lowresource", "robustness_size"):
            names = _shown(gains["model"])
            if len(names) < 2:
                return (f"{len(names)} model ({', '.join(names)}): a trend over size needs two "
                        "or more")
            if models < 2:
                return "the parameter count of the models is not known (no local weights)"
            if key == "robustness_size":
                return ""
        if key == "translated" and not ("english" in data and data - {"english"}):
            return f"intermediate data is only {', '.join(sorted(data))}"
        if key == "lowresource" and gains["train_size"].nunique(dropna=False) < 2:
            return "one target training size"
        if key in ("lowresource", "scale_lowresource") and not {"high", "low"} <= tiers:
            return (f"evaluated languages fall in tier band(s) {', '.join(sorted(tiers))} only: "
                    "no high/low contrast (the synthetic languages are all high-resource)")
        if key == "robustness" and gains["seed"].nunique() < 2:
            return "one seed"
        return ""

    # ---- the paper's table

    def main_table(self) -> list[Section]:
        gains = self.task_gains
        if gains.empty:
            return [Section("Gain over no intermediate task", "**No gain to show**: the "
                            "experiment has no finished `none` baseline and intermediate cell "
                            "for the same target.")]
        sections = []
        for model, size, part in _size_groups(gains):
            label = f"{model}" + (f", {int(size)} target training examples"
                                  if pd.notna(size) else "")
            average = ("XTREME" if set(part["target"]) >= set(XTREME_TASKS)
                       else f"avg ({part['target'].nunique()} targets)")
            matrix = results.gain_matrix(part, average)
            fig = plots.gain_heatmap(matrix, f"Gain over no intermediate task: {label}", average)
            stats = results.seed_stats(part, "gain", ["intermediate", "target"])
            ci = self._task_intervals(model, size)
            table = stats.merge(ci, on=["intermediate", "target"], how="left")
            sections.append(Section(
                f"Gain over no intermediate task ({label})",
                "Each target's number is the mean over its languages (official XTREME lists "
                "for XTREME tasks; every evaluated language otherwise) of the headline metric "
                "(QA: (EM+F1)/2); the gain is the intermediate cell's number minus the "
                "baseline's, per seed, then averaged over seeds. The last column averages the "
                "targets (the XTREME column when all nine XTREME tasks were run).",
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
                                  "overall", "tasks", "missing", "partial"]].round(2)))
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
        levels = chance.set_index(["target", "language"])["chance"].unstack("language")
        return Section(
            "Zero-shot scores per language, against chance",
            "English is the training language; every other language is zero-shot. Chance: "
            "1/labels (classification), 1/choices (multiple choice), 1/pool size (retrieval "
            "top-1); F1 (NER, POS, QA) has no chance level, so the bar F1 30 is marked.",
            [("mean score over seeds", mean.round(1)),
             ("chance level (or F1 bar) per language", levels.round(1)),
             ("how each level is set", chance.drop_duplicates(["target", "note"])[
                 ["target", "metric", "note"]])],
            fig, caption("Headline score per language and intermediate task (QA: F1), bars = "
                         "mean over seeds (error bar: std over seeds where several); dashed "
                         "marks: chance, dotted: the F1 bar.", shown), "zero_shot_scores")

    def per_language_gains(self) -> Section:
        gains = self.language_gains
        if gains.empty:
            return Section("Gain per language", "No gain to show.")
        ci = self.intervals
        ci = ci[ci["language"] != "all"] if len(ci) else ci
        fig = plots.language_gains(gains, ci)
        return Section("Gain per language, per target", "", [], fig, caption(
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
            cols = [c for c in ("model", "intermediate", "target", "train_size", "language",
                                "gain", "low", "high", "examples", "seeds", "baseline_seeds",
                                "note") if c in self.intervals]
            tables.append((f"paired bootstrap ({uncertainty.SAMPLES} resamples, 95%) of each "
                           "gain; language 'all' = the task (languages resampled independently)",
                           self.intervals[cols].round(2)))
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
        return Section(head, "", [], plots.data_comparison(gains), caption(
            "Task-level gain per target for each intermediate task, by the language of its "
            "data; error bars: std over seeds.", gains), "q_translated")

    def _tier_gains(self) -> pd.DataFrame:
        gains = self.language_gains
        gains = gains[gains["language"] != "en"]
        keys = ["model", "parameters", "intermediate", "target", "train_size", "seed",
                "tier_group", "split", "run"]
        return (gains.groupby(keys, dropna=False)
                .agg(gain=("gain", "mean"), cell=("cell", "first")).reset_index())

    def _q_lowresource(self, head: str) -> Section:
        gains = self._tier_gains()
        return Section(head, "English is left out (the training language).", [],
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
            return Section(head, f"**Figure not shown: {reason}**; std and collapse rate "
                           "against size need two or more models.", tables)
        return Section(head, "", tables, plots.robustness(stats.dropna(subset=["parameters"])),
                       caption("Std over seeds and share of collapsed training runs against "
                               "encoder parameters.", self.tasks), "q_robustness")

    def sections(self) -> list[Section]:
        found = [self.overview(), self.questions(), *self.main_table(), self.benchmark(),
                 self.zero_shot(), self.per_language_gains(), self.uncertainty()]
        found += [s for s in (self.question(k) for k in QUESTIONS) if s is not None]
        return found


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


def display(section: Section, figures: Path | None = None) -> None:
    """Show a section in a notebook: heading, text, tables, then the figure and its caption
    (the figure is also saved as <figures>/<name>.png)."""
    from IPython.display import Markdown
    from IPython.display import display as show

    show(Markdown(f"## {section.title}\n\n{section.text}"))
    for label, table in section.tables:
        if label:
            show(Markdown(f"*{label}*"))
        show(table)
    if section.figure is not None:
        if figures is not None and section.name:
            plots.save(section.figure, figures, section.name)
        show(section.figure)
        plt.close(section.figure)
        show(Markdown(f"**Figure.** {section.caption}"))


# --------------------------------------------------------------------------- the index page


def cell_headline(metrics_path: Path) -> str:
    """'<metric> <mean over languages> (n languages; en X)' of a cell's metrics.json."""
    try:
        records = read_json(metrics_path)["records"] if metrics_path.is_file() else []
    except (ValueError, KeyError):
        return "unreadable metrics.json"
    by_language: dict[str, dict[str, float]] = {}
    for r in records:
        by_language.setdefault(r["language"], {})[r["metric"]] = float(r["value"])
    values = {lang: results._headline_value(m) for lang, m in by_language.items()}
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return ""
    name = results.headline_name(next(iter(by_language.values())))
    mean = sum(values.values()) / len(values)
    en = f"; en {values['en']:.1f}" if "en" in values and len(values) > 1 else ""
    return f"{name} {mean:.1f} (mean of {len(values)} languages{en})"


def write_index(root: Path) -> None:
    """index.html: the analysis on top, then every cell with status, headline score and link."""
    from xtl import plan as planning
    from xtl.run import RunDir, state_of

    plan = planning.Plan.from_json(read_json(root / "plan.json"))
    run_dir = RunDir(root)
    rows = []
    for cell in plan.cells:
        state, note = state_of(run_dir, plan, cell)
        metrics = run_dir.cell(cell.id) / "metrics.json"
        if metrics.is_file() and _collapsed(metrics):
            note = ("training collapsed; " + note).strip("; ")
        link = (f'<a href="cells/{cell.id}/report.html">report</a>'
                if (run_dir.cell(cell.id) / "report.html").is_file() else "")
        rows.append(f"<tr><td><code>{cell.id}</code></td><td>{html.escape(cell.label)}</td>"
                    f"<td class='{state}'>{state}</td>"
                    f"<td>{html.escape(cell_headline(metrics))}</td><td>{link}</td>"
                    f"<td>{html.escape(note)}</td></tr>")
    analysis = ('<p><a href="analysis/report.html"><b>Analysis report</b></a> (tables, figures, '
                'uncertainty); the results table: <code>analysis/results.parquet</code></p>'
                if (root / "analysis" / "report.html").is_file() else
                "<p>No analysis report yet.</p>")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>xtl: {html.escape(plan.experiment)}</title><style>
body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}} .done{{color:green}} .failed{{color:red}}
.skipped{{color:#a60}}</style></head><body>
<h1>xtl experiment {html.escape(plan.experiment)}</h1>{analysis}
<table><tr><th>cell</th><th>what</th><th>status</th><th>headline</th><th>report</th>
<th>note</th></tr>{''.join(rows)}</table>
<p>Generated {now} by xtl {xtl.__version__}.</p></body></html>"""
    atomic_write_text(root / "index.html", page)


def _collapsed(metrics: Path) -> bool:
    try:
        return results.run_collapsed(json.loads(metrics.read_text(encoding="utf-8")))
    except (ValueError, KeyError):
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
    """ipywidgets: a multi-select per axis; shows the filtered scores, the per-language figure
    with chance levels, and links to each selected cell's report."""
    import ipywidgets as w
    from IPython.display import HTML
    from IPython.display import display as show

    pickers = {axis: w.SelectMultiple(options=_shown(scores[axis]), description=axis,
                                      rows=min(6, max(2, scores[axis].nunique())))
               for axis in EXPLORER_AXES}
    out = w.Output()

    def redraw(*_: Any) -> None:
        chosen = {axis: [o for o in p.value] for axis, p in pickers.items()}
        chosen["seed"] = [int(s) for s in chosen["seed"]]
        part = filter_table(scores, **chosen)
        with out:
            out.clear_output(wait=True)
            if part.empty:
                print("no cell matches")
                return
            show(part.pivot_table(index=["model", "intermediate", "target", "seed"],
                                  columns="language", values="score").round(1))
            fig = plots.zero_shot_scores(part, chance_levels(part))
            show(fig)
            plt.close(fig)
            show(HTML(cell_links(part)))

    for picker in pickers.values():
        picker.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox(list(pickers.values())), out])
