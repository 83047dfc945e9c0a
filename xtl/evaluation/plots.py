"""Static figures for the reports (widgets only in the interactive explorer): matplotlib for the
two the phase notebooks draw, seaborn (imported where it draws) for the analysis.

Every function takes tidy frames from `xtl.analysis.results` / `xtl.analysis.uncertainty` and
returns a matplotlib Figure; `save` writes it as PNG beside the report (analysis/figures/).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from xtl.core import chance as chance_levels


def save(fig: plt.Figure, directory: str | Path, name: str) -> Path:
    """`<directory>/<name>.png` at 120 dpi (the README and docs copy these files)."""
    path = Path(directory) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def training_curve(history: list[dict]) -> plt.Figure:
    """Training loss per step and the dev score at each evaluation. Plain matplotlib, like
    `language_scores`: the phase notebooks draw only these two, and their kernels then never
    import seaborn (about 0.8 s of every cell's start; BENCHMARKS.md, runner overhead)."""
    frame = pd.DataFrame(history)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if "loss" in frame:
        steps = frame.dropna(subset=["loss"])
        ax.plot(steps["step"], steps["loss"], color="C0", label="train loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend(loc="upper left")
    if "dev_score" in frame:
        dev = frame.dropna(subset=["dev_score"])
        twin = ax.twinx()
        twin.plot(dev["step"], dev["dev_score"], color="C1", marker="o", label="dev score")
        twin.set_ylabel("dev score (0-100)")
        twin.legend(loc="upper right")
    ax.set_title("Training curve")
    fig.tight_layout()
    return fig


def score_ceiling(*groups: Any) -> float:
    """Top of a 0-100 score axis: 100, unless every value (scores and chance levels, given as
    numbers or lists) is below 40; then the next step of 1, 2, 5, 10, 20, 40 above the
    largest, so that scores near 1 % stay readable."""
    values = [v for g in groups if g is not None
              for v in (g if isinstance(g, (list, tuple, np.ndarray, pd.Series)) else [g])]
    finite = [float(v) for v in values if v is not None and pd.notna(v)]
    top = max(finite, default=100.0)
    if top >= 40:
        return 100.0
    for step in (1, 2, 5, 10, 20, 40):
        if top < step * 0.95:
            return float(step)
    return 100.0


def language_scores(table: pd.DataFrame, metric: str, chance: float | None = None,
                    kind: str = "chance") -> plt.Figure:
    """Zero-shot score per language, English highlighted, the chance level (`xtl.core.chance.level`:
    value and kind; kind "bar" is the F1 bar, dotted) as a line."""
    frame = table[metric].reset_index()
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(frame)), 3.2))
    colors = ["C3" if lang == "en" else "C0" for lang in frame["language"]]
    ax.bar(frame["language"], frame[metric], color=colors)
    ax.set_xlabel("language")
    ax.set_ylabel(metric)
    if chance is not None and pd.notna(chance):
        bar = kind == "bar"
        ax.axhline(chance, ls=":" if bar else "--", color="grey",
                   label=f"{'F1 bar' if bar else 'chance'} ({chance:.1f})")
        ax.legend(loc="lower right")
    for bars in ax.containers:  # the value on each bar: near 1 % (or 0) the axis alone is vague
        ax.bar_label(bars, fmt="%.1f", fontsize="x-small", padding=1)
    ax.set_ylim(0, score_ceiling(frame[metric].tolist(), chance) * 1.08)
    ax.set_title(f"{metric} per language (English in red: the training language)")
    fig.tight_layout()
    return fig


def wrap_label(label: str, width: int = 24) -> str:
    """A long label on several lines: multi-task names break after each `+`, chains after
    each `>`, anything else at spaces and hyphens."""
    label = str(label)
    if len(label) <= width:
        return label
    for sep in ("+", ">"):
        if sep in label:
            parts = label.split(sep)
            return f"{sep}\n".join(parts)
    return "\n".join(textwrap.wrap(label, width)) or label


def _text_width(labels: list[str], inches_per_char: float = 0.075) -> float:
    """Inches the longest line of `labels` takes at the default font size."""
    return inches_per_char * max((len(line) for label in labels
                                  for line in str(label).split("\n")), default=0)


def gain_heatmap(gains: pd.DataFrame, title: str, average: str | None = None) -> plt.Figure:
    """Intermediate (rows) x target (columns) gain over the no-intermediate baseline; the
    `average` column (e.g. the XTREME average), if given, is set off by a vertical line.

    Row labels are horizontal (long multi-task names wrapped), column labels wrapped, and the
    figure sized to them, so the title never meets a tick label."""
    import seaborn as sns  # the analysis' figures only: phase kernels skip it
    rows = [wrap_label(i) for i in gains.index]
    cols = [wrap_label(c, 14) for c in gains.columns]
    lines = max((r.count("\n") + 1 for r in rows), default=1)
    width = _text_width(rows) + 1.25 * gains.shape[1] + 2.2
    height = (1.4 + (0.25 + 0.2 * lines) * gains.shape[0]
              + 0.18 * max((c.count("\n") for c in cols), default=0))
    fig, ax = plt.subplots(figsize=(max(5.0, width), max(2.6, height)), layout="constrained")
    values = gains.to_numpy(dtype=float)
    bound = max(1.0, float(np.nanmax(np.abs(values)))) if np.isfinite(values).any() else 1.0
    sns.heatmap(gains.astype(float), annot=True, fmt="+.1f", cmap="RdBu", vmin=-bound,
                vmax=bound, center=0, cbar_kws={"label": "gain (points)"}, ax=ax,
                xticklabels=cols, yticklabels=rows)
    ax.tick_params(axis="y", labelrotation=0)
    ax.tick_params(axis="x", labelrotation=0)
    if average is not None and average in gains.columns:
        ax.axvline(list(gains.columns).index(average), color="black", lw=2)
    ax.set_title("\n".join(textwrap.wrap(title, int(12 * width))), loc="left")
    ax.set_xlabel("target task")
    ax.set_ylabel("intermediate task")
    return fig


PANEL_KEYS = ("model", "target", "train_size")
LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": "small"}


def _describe(key: str, value: Any, rows: pd.DataFrame) -> str:
    if key == "train_size":
        if "kind" in rows and rows["kind"].eq("retrieval").all():
            return "no fine-tuning (retrieval)"
        return "full training data" if pd.isna(value) else f"{int(value)} training examples"
    return str(value)


def same(column: pd.Series, value: Any) -> pd.Series:
    """column == value, where a missing value (a full-data train size) equals a missing one."""
    if pd.isna(value):
        return column.isna()
    return column.eq(value).fillna(False).astype(bool)


def panels(frame: pd.DataFrame, keys: Sequence[str] = PANEL_KEYS
           ) -> list[tuple[dict, str, pd.DataFrame]]:
    """(key values, title, rows) per combination of `keys` present, so that no figure averages
    over models or training sizes silently; the title names the target and any key that
    varies."""
    keys = [k for k in keys if k in frame]
    shown = [k for k in keys if k == "target" or frame[k].nunique(dropna=False) > 1]
    out = []
    for key, part in frame.groupby(keys, dropna=False, sort=False):
        values = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        out.append((values, ", ".join(_describe(k, values[k], part) for k in shown), part))
    return out


def matching(frame: pd.DataFrame | None, values: dict) -> pd.DataFrame:
    """The rows of `frame` (e.g. bootstrap intervals) that belong to one panel."""
    if frame is None or frame.empty:
        return pd.DataFrame()
    keep = pd.Series(True, index=frame.index)
    for key, value in values.items():
        if key in frame:
            keep &= same(frame[key], value)
    return frame[keep]


def zero_shot_scores(scores: pd.DataFrame, chance: pd.DataFrame) -> plt.Figure:
    """One panel per (model, target, train size): the headline score per language and
    intermediate task (mean over seeds; error bar: std where several seeds), with each
    language's chance level (or the F1 bar) marked.

    `chance`: rows of (target, language, chance, kind) from `xtl.analysis.sections.chance_levels`;
    kind "bar" draws the F1 bar, a missing chance draws nothing.
    """
    import seaborn as sns
    found = panels(scores)
    legend = _text_width([wrap_label(i) for i in scores["intermediate"].unique()]) + 1.0
    fig, axes = plt.subplots(len(found), 1, squeeze=False, layout="constrained",
                             figsize=(max(6, 0.7 * scores["language"].nunique() + 2) + legend,
                                      2.9 * len(found)))
    for ax, (_, title, frame) in zip(axes[:, 0], found, strict=True):
        order = list(dict.fromkeys(frame["language"]))
        sns.barplot(data=frame.assign(intermediate=frame["intermediate"].map(wrap_label)),
                    x="language", y="score", hue="intermediate", order=order,
                    errorbar=("sd" if frame["seed"].nunique() > 1 else None), ax=ax)
        target = frame["target"].iloc[0]
        marks = chance[chance["target"] == target].set_index("language")
        for x, lang in enumerate(order):
            if lang in marks.index and pd.notna(marks.loc[lang, "chance"]):
                kind = marks.loc[lang, "kind"]
                ax.hlines(marks.loc[lang, "chance"], x - 0.45, x + 0.45, colors="black",
                          linestyles=":" if kind == "bar" else "--", lw=1.5)
        kinds = set(marks["kind"]) - {""} if len(marks) else set()
        note = (f"dotted: the F1 bar {chance_levels.F1_BAR:g}; F1 has no chance level"
                if kinds == {"bar"}
                else "dashed: chance" if kinds else "no chance level known")
        ax.set_title(f"{title}: {frame['metric'].iloc[0]} per language ({note})",
                     fontsize="medium", loc="left")
        ax.set_ylim(0, score_ceiling(frame["score"].tolist(), marks["chance"].tolist()
                                     if len(marks) else None))
        ax.set_xlabel("")
        ax.legend(title="intermediate", **LEGEND_OUTSIDE)
    return fig


def _grouped_bars(ax: plt.Axes, frame: pd.DataFrame, intervals: pd.DataFrame,
                  colors: dict[str, str]) -> None:
    """Bars of `frame` (x labels as index, one column per intermediate task), each with its
    paired-bootstrap interval (`intervals` indexed like `frame`'s rows, per intermediate)."""
    x = np.arange(len(frame))
    width = 0.8 / max(1, frame.shape[1])
    for k, inter in enumerate(frame.columns):
        where = x + k * width - 0.4 + width / 2
        ax.bar(where, frame[inter], width, label=wrap_label(inter), color=colors[inter])
        ci = intervals[intervals["intermediate"] == inter] if len(intervals) else intervals
        if len(ci):
            ci = ci.groupby(frame.index.name)[["low", "high"]].mean().reindex(frame.index)
            err = np.vstack([frame[inter] - ci["low"], ci["high"] - frame[inter]])
            ax.errorbar(where, frame[inter], yerr=np.nan_to_num(err.astype(float)), fmt="none",
                        ecolor="black", capsize=2, lw=1)
    ax.axhline(0, color="grey", lw=1)
    ax.set_xticks(x, frame.index)


def _colors(names: Sequence[str]) -> dict[str, str]:
    return {name: f"C{k % 10}" for k, name in enumerate(dict.fromkeys(names))}


def language_gains(gains: pd.DataFrame, intervals: pd.DataFrame | None = None) -> plt.Figure:
    """One panel per (model, target, train size): the gain per language and intermediate
    task (mean over seeds), with the paired-bootstrap interval as an error bar where
    `intervals` has one."""
    found = panels(gains)
    colors = _colors(gains["intermediate"])
    legend = _text_width([wrap_label(i) for i in colors]) + 1.0
    fig, axes = plt.subplots(len(found), 1, squeeze=False, layout="constrained",
                             figsize=(max(6, 0.7 * gains["language"].nunique() + 2) + legend,
                                      2.9 * len(found)))
    for ax, (values, title, part) in zip(axes[:, 0], found, strict=True):
        frame = (part.groupby(["language", "intermediate"], sort=False)["gain"].mean()
                 .unstack("intermediate"))
        _grouped_bars(ax, frame, matching(intervals, values), colors)
        ax.set_ylabel("gain (points)")
        ax.set_title(f"{title}: gain over no intermediate task, per language",
                     fontsize="medium", loc="left")
        ax.legend(title="intermediate", **LEGEND_OUTSIDE)
    return fig


def _series(frame: pd.DataFrame) -> pd.DataFrame:
    """A line label per (target, intermediate[, train size when several])."""
    series = frame["target"] + " | " + frame["intermediate"]
    if "train_size" in frame and frame["train_size"].nunique(dropna=False) > 1:
        series += " | " + frame["train_size"].map(lambda v: "full" if pd.isna(v) else f"n={v}")
    return frame.assign(series=series)


def _against_size(ax: plt.Axes, frame: pd.DataFrame, y: str, label: str) -> None:
    """`y` against parameter count (log), a line per (target, intermediate); error bars: std
    over the rows of a point (seeds)."""
    import seaborn as sns
    sns.lineplot(data=frame, x="parameters", y=y, hue="series", marker="o", errorbar="sd",
                 err_style="bars", ax=ax)
    ax.set_xscale("log")
    ax.set_xlabel("encoder parameters (log scale)")
    ax.set_ylabel(label)
    ax.legend(title="target | intermediate", **LEGEND_OUTSIDE)


def gain_vs_parameters(gains: pd.DataFrame) -> plt.Figure:
    """Question (a): task-level gain against the model's parameter count (log scale), one
    line per (target, intermediate); error bars: std over seeds."""
    fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
    _against_size(ax, _series(gains), "gain", "gain over no intermediate (points)")
    ax.axhline(0, color="grey", lw=1)
    ax.set_title("Gain from intermediate training vs model size", loc="left")
    return fig


DATA_ORDER = ("english", "translated", "multilingual", "mixed")


def data_comparison(gains: pd.DataFrame, language_gains: pd.DataFrame,
                    intervals: pd.DataFrame | None = None) -> plt.Figure:
    """Question (b), one row of panels per (model, target, train size): left, the task-level
    gain of each intermediate task, ordered and labelled by the language of its data (English
    / translated / multilingual / mixed); right, the same per language. Error bars: the 95%
    paired-bootstrap interval (`intervals`, language "all" on the left)."""
    order = {kind: k for k, kind in enumerate(DATA_ORDER)}
    names = (gains.drop_duplicates("intermediate")
             .sort_values("intermediate_data", key=lambda c: c.map(order).fillna(len(order))))
    labels = {r.intermediate: f"{r.intermediate} ({r.intermediate_data})"
              for r in names.itertuples()}
    colors = _colors([labels[i] for i in names["intermediate"]])
    ci = intervals if intervals is not None else pd.DataFrame()
    if len(ci):
        ci = ci.assign(intermediate=ci["intermediate"].map(labels))
    found = panels(gains)
    legend = _text_width([wrap_label(v) for v in labels.values()]) + 1.0
    languages = language_gains["language"].nunique()
    fig, axes = plt.subplots(len(found), 2, squeeze=False, layout="constrained",
                             width_ratios=[1 + 0.3 * len(labels), max(3, 0.6 * languages)],
                             figsize=(4 + 0.7 * languages + legend, 3.4 * len(found)))
    for (left, right), (values, title, part) in zip(axes, found, strict=True):
        task = (part.assign(label=part["intermediate"].map(labels), where="task mean")
                .groupby(["where", "label"], sort=False)["gain"].mean().unstack("label"))
        task = task[[c for c in colors if c in task.columns]]
        _grouped_bars(left, task, _task_rows(matching(ci, values)), colors)
        left.set_ylabel("gain over no intermediate (points)")
        left.set_title(f"{title}: task", fontsize="medium", loc="left")
        per_language = matching(language_gains, values)
        frame = (per_language.assign(label=per_language["intermediate"].map(labels))
                 .groupby(["language", "label"], sort=False)["gain"].mean().unstack("label"))
        frame = frame[[c for c in colors if c in frame.columns]]
        lang_ci = matching(ci, values)
        _grouped_bars(right, frame, lang_ci[lang_ci["language"] != "all"] if len(lang_ci)
                      else lang_ci, colors)
        right.set_title("per language", fontsize="medium", loc="left")
        right.legend(title="intermediate (its data)", **LEGEND_OUTSIDE)
    fig.suptitle("English vs translated / multilingual intermediate data", x=0.01,
                 ha="left")
    return fig


def _task_rows(ci: pd.DataFrame) -> pd.DataFrame:
    """Task-level intervals (language "all"), indexed like the left panel's single bar."""
    if ci.empty:
        return ci
    return ci[ci["language"] == "all"].assign(where="task mean")


def _size_axis(frame: pd.DataFrame) -> pd.DataFrame:
    """Full data (train_size missing) plotted at twice the largest subset, labelled 'full'."""
    sizes = frame["train_size"].astype("Float64")
    full = float(sizes.max()) * 2 if sizes.notna().any() else 1.0
    return frame.assign(size=sizes.fillna(full).astype(float))


def gain_vs_train_size(gains: pd.DataFrame) -> plt.Figure:
    """Question (c): gain against the target training-set size, one line per language tier
    band and intermediate task, one panel per target (mean over the band's languages)."""
    import seaborn as sns
    frame = _size_axis(gains)
    targets = list(dict.fromkeys(frame["target"]))
    fig, axes = plt.subplots(1, len(targets), squeeze=False, layout="constrained",
                             figsize=(5 * len(targets) + 2, 3.8))
    for ax, target in zip(axes[0], targets, strict=True):
        part = frame[frame["target"] == target].rename(columns={"tier_group": "tier band"})
        sns.lineplot(data=part, x="size", y="gain", hue="tier band", style="intermediate",
                     marker="o", errorbar=None, ax=ax,
                     hue_order=[g for g in ("high", "mid", "low") if g in set(part["tier band"])])
        ax.set_xscale("log")
        ticks = sorted(set(part["size"]))
        ax.set_xticks(ticks, [str(int(t)) if t in set(part["train_size"].dropna()) else "full"
                              for t in ticks])
        ax.minorticks_off()
        ax.axhline(0, color="grey", lw=1)
        ax.set_title(target, fontsize="medium", loc="left")
        ax.set_xlabel("target training examples (log; rightmost = full)")
        ax.set_ylabel("gain (points)")
    axes[0, -1].legend(**LEGEND_OUTSIDE)
    for ax in axes[0, :-1]:
        ax.get_legend().remove()
    fig.suptitle("Gain vs target training size, per language tier (Joshi et al. 2020 bands)",
                 x=0.01, ha="left")
    return fig


def tier_gap_vs_size(gaps: pd.DataFrame) -> plt.Figure:
    """Question (d): high-resource minus low-resource mean score against parameter count,
    one line per (target, intermediate); lower = a smaller low-resource drop."""
    fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
    _against_size(ax, _series(gaps), "gap", "high minus low tier (points)")
    ax.set_title("Low-resource gap vs model size", loc="left")
    return fig


def robustness(stats: pd.DataFrame) -> plt.Figure:
    """Question (e): std over seeds (left) and share of collapsed runs (right) against
    parameter count, one line per (target, intermediate)."""
    frame = _series(stats).assign(collapse_rate=100 * stats["collapsed"] / stats["seeds"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), layout="constrained")
    _against_size(axes[0], frame, "std", "std over seeds (points)")
    _against_size(axes[1], frame, "collapse_rate", "collapsed runs (%)")
    axes[0].get_legend().remove()
    axes[1].set_ylim(-5, 105)
    fig.suptitle("Robustness across seeds vs model size", x=0.01, ha="left")
    return fig
