"""Static seaborn figures for the reports (widgets only in the interactive explorer).

Every function takes tidy frames from `xtl.results` / `xtl.uncertainty` and returns a
matplotlib Figure; `save` writes it as PNG beside the report (analysis/figures/).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

F1_BAR = 30.0  # F1 has no chance level; the demo's bar (0.3) on the 0-100 scale


def save(fig: plt.Figure, directory: str | Path, name: str) -> Path:
    """`<directory>/<name>.png` at 120 dpi (the README and docs copy these files)."""
    path = Path(directory) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def training_curve(history: list[dict]) -> plt.Figure:
    """Training loss per step and the dev score at each evaluation."""
    frame = pd.DataFrame(history)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if "loss" in frame:
        steps = frame.dropna(subset=["loss"])
        sns.lineplot(data=steps, x="step", y="loss", ax=ax, label="train loss")
    if "dev_score" in frame:
        dev = frame.dropna(subset=["dev_score"])
        twin = ax.twinx()
        sns.lineplot(data=dev, x="step", y="dev_score", ax=twin, color="C1", marker="o",
                     label="dev score")
        twin.set_ylabel("dev score (0-100)")
    ax.set_title("Training curve")
    fig.tight_layout()
    return fig


def language_scores(table: pd.DataFrame, metric: str, chance: float | None = None) -> plt.Figure:
    """Zero-shot score per language, English highlighted, chance level as a line."""
    frame = table[metric].reset_index()
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(frame)), 3.2))
    colors = ["C3" if lang == "en" else "C0" for lang in frame["language"]]
    sns.barplot(data=frame, x="language", y=metric, hue="language", palette=colors,
                legend=False, ax=ax)
    if chance is not None:
        ax.axhline(chance, ls="--", color="grey", label=f"chance ({chance:.1f})")
        ax.legend(loc="lower right")
    ax.set_ylim(0, 100)
    ax.set_title(f"{metric} per language (English in red: the training language)")
    fig.tight_layout()
    return fig


def gain_heatmap(gains: pd.DataFrame, title: str, average: str | None = None) -> plt.Figure:
    """Intermediate (rows) x target (columns) gain over the no-intermediate baseline; the
    `average` column (e.g. the XTREME average), if given, is set off by a vertical line."""
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 + 1.2 * gains.shape[1]),
                                    max(2.8, 1.2 + 0.6 * gains.shape[0])))
    bound = max(1.0, float(np.nanmax(np.abs(gains.to_numpy(dtype=float)))))
    sns.heatmap(gains.astype(float), annot=True, fmt="+.1f", cmap="RdBu", vmin=-bound,
                vmax=bound, center=0, cbar_kws={"label": "gain (points)"}, ax=ax)
    if average is not None and average in gains.columns:
        ax.axvline(list(gains.columns).index(average), color="black", lw=2)
    ax.set_title(title)
    ax.set_xlabel("target task")
    ax.set_ylabel("intermediate task")
    fig.tight_layout()
    return fig


def zero_shot_scores(scores: pd.DataFrame, chance: pd.DataFrame) -> plt.Figure:
    """One panel per target: the headline score per language and intermediate task (mean over
    seeds), with each language's chance level (or the F1 bar) marked.

    `chance`: rows of (target, language, chance, kind) from `xtl.reports.chance_levels`;
    kind "bar" draws the F1 bar, a missing chance draws nothing.
    """
    targets = list(dict.fromkeys(scores["target"]))
    fig, axes = plt.subplots(len(targets), 1, squeeze=False,
                             figsize=(max(6, 0.7 * scores["language"].nunique() + 3),
                                      2.9 * len(targets)))
    for ax, target in zip(axes[:, 0], targets, strict=True):
        frame = scores[scores["target"] == target]
        order = list(dict.fromkeys(frame["language"]))
        sns.barplot(data=frame, x="language", y="score", hue="intermediate", order=order,
                    errorbar=("sd" if frame["seed"].nunique() > 1 else None), ax=ax)
        marks = chance[chance["target"] == target].set_index("language")
        for x, lang in enumerate(order):
            if lang in marks.index and pd.notna(marks.loc[lang, "chance"]):
                kind = marks.loc[lang, "kind"]
                ax.hlines(marks.loc[lang, "chance"], x - 0.45, x + 0.45, colors="black",
                          linestyles=":" if kind == "bar" else "--", lw=1.5)
        kinds = set(marks["kind"]) if len(marks) else set()
        note = ("dotted: F1 bar 30 (F1 has no chance level)" if kinds == {"bar"}
                else "dashed: chance" if kinds else "no chance level known")
        ax.set_title(f"{target}: {frame['metric'].iloc[0]} per language ({note})",
                     fontsize="medium")
        ax.set_ylim(0, 100)
        ax.set_xlabel("")
        ax.legend(title="intermediate", fontsize="small", loc="upper right")
    fig.tight_layout()
    return fig


def language_gains(gains: pd.DataFrame, intervals: pd.DataFrame | None = None) -> plt.Figure:
    """One panel per target: the gain per language and intermediate task (mean over seeds),
    with the paired-bootstrap interval as an error bar where `intervals` has one."""
    targets = list(dict.fromkeys(gains["target"]))
    fig, axes = plt.subplots(len(targets), 1, squeeze=False,
                             figsize=(max(6, 0.7 * gains["language"].nunique() + 3),
                                      2.9 * len(targets)))
    for ax, target in zip(axes[:, 0], targets, strict=True):
        frame = (gains[gains["target"] == target]
                 .groupby(["language", "intermediate"], sort=False)["gain"].mean()
                 .unstack("intermediate"))
        x = np.arange(len(frame))
        width = 0.8 / max(1, frame.shape[1])
        for k, inter in enumerate(frame.columns):
            ax.bar(x + k * width - 0.4 + width / 2, frame[inter], width, label=inter,
                   color=f"C{k}")
            if intervals is not None and len(intervals):
                ci = intervals[(intervals["target"] == target)
                               & (intervals["intermediate"] == inter)].set_index("language")
                ci = ci.reindex(frame.index)
                err = np.vstack([frame[inter] - ci["low"], ci["high"] - frame[inter]])
                ax.errorbar(x + k * width - 0.4 + width / 2, frame[inter],
                            yerr=np.nan_to_num(err.astype(float)), fmt="none", ecolor="black",
                            capsize=2, lw=1)
        ax.axhline(0, color="grey", lw=1)
        ax.set_xticks(x, frame.index)
        ax.set_ylabel("gain (points)")
        ax.set_title(f"{target}: gain over no intermediate task, per language",
                     fontsize="medium")
        ax.legend(title="intermediate", fontsize="small")
    fig.tight_layout()
    return fig


def _series(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(series=frame["target"] + " | " + frame["intermediate"])


def _against_size(ax: plt.Axes, frame: pd.DataFrame, y: str, label: str) -> None:
    """`y` against parameter count (log), a line per (target, intermediate); error bars: std
    over the rows of a point (seeds)."""
    sns.lineplot(data=frame, x="parameters", y=y, hue="series", marker="o", errorbar="sd",
                 err_style="bars", ax=ax)
    ax.set_xscale("log")
    ax.set_xlabel("encoder parameters (log scale)")
    ax.set_ylabel(label)
    ax.legend(fontsize="small", title="target | intermediate")


def gain_vs_parameters(gains: pd.DataFrame) -> plt.Figure:
    """Question (a): task-level gain against the model's parameter count (log scale), one
    line per (target, intermediate); error bars: std over seeds."""
    fig, ax = plt.subplots(figsize=(7, 4))
    _against_size(ax, _series(gains), "gain", "gain over no intermediate (points)")
    ax.axhline(0, color="grey", lw=1)
    ax.set_title("Gain from intermediate training vs model size")
    fig.tight_layout()
    return fig


def data_comparison(gains: pd.DataFrame) -> plt.Figure:
    """Question (b): gain per target for each intermediate task, coloured by the language of
    its data (English / translated / multilingual / mixed); error bars: std over seeds."""
    frame = gains.assign(label=gains["intermediate"] + " (" + gains["intermediate_data"] + ")")
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * frame["target"].nunique() + 3), 3.8))
    sns.barplot(data=frame, x="target", y="gain", hue="label", errorbar="sd", ax=ax)
    ax.axhline(0, color="grey", lw=1)
    ax.set_ylabel("gain over no intermediate (points)")
    ax.set_title("English vs translated / multilingual intermediate data")
    ax.legend(fontsize="small", title="intermediate (its data)")
    fig.tight_layout()
    return fig


def _size_axis(frame: pd.DataFrame) -> pd.DataFrame:
    """Full data (train_size missing) plotted at twice the largest subset, labelled 'full'."""
    sizes = frame["train_size"].astype("Float64")
    full = float(sizes.max()) * 2 if sizes.notna().any() else 1.0
    return frame.assign(size=sizes.fillna(full).astype(float))


def gain_vs_train_size(gains: pd.DataFrame) -> plt.Figure:
    """Question (c): gain against the target training-set size, one line per language tier
    band and intermediate task, one panel per target (mean over the band's languages)."""
    frame = _size_axis(gains)
    targets = list(dict.fromkeys(frame["target"]))
    fig, axes = plt.subplots(1, len(targets), squeeze=False, figsize=(5 * len(targets), 3.8))
    for ax, target in zip(axes[0], targets, strict=True):
        part = frame[frame["target"] == target]
        sns.lineplot(data=part, x="size", y="gain", hue="tier_group", style="intermediate",
                     marker="o", errorbar=None, ax=ax,
                     hue_order=[g for g in ("high", "mid", "low") if g in set(part["tier_group"])])
        ax.set_xscale("log")
        ax.axhline(0, color="grey", lw=1)
        ax.set_title(target, fontsize="medium")
        ax.set_xlabel("target training examples (log; rightmost = full)")
        ax.set_ylabel("gain (points)")
    fig.suptitle("Gain vs target training size, per language tier (Joshi et al. 2020 bands)")
    fig.tight_layout()
    return fig


def tier_gap_vs_size(gaps: pd.DataFrame) -> plt.Figure:
    """Question (d): high-resource minus low-resource mean score against parameter count,
    one line per (target, intermediate); lower = a smaller low-resource drop."""
    fig, ax = plt.subplots(figsize=(7, 4))
    _against_size(ax, _series(gaps), "gap", "high minus low tier (points)")
    ax.set_title("Low-resource gap vs model size")
    fig.tight_layout()
    return fig


def robustness(stats: pd.DataFrame) -> plt.Figure:
    """Question (e): std over seeds (left) and share of collapsed runs (right) against
    parameter count, one line per (target, intermediate)."""
    frame = _series(stats).assign(collapse_rate=100 * stats["collapsed"] / stats["seeds"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    _against_size(axes[0], frame, "std", "std over seeds (points)")
    _against_size(axes[1], frame, "collapse_rate", "collapsed runs (%)")
    axes[1].set_ylim(-5, 105)
    fig.suptitle("Robustness across seeds vs model size")
    fig.tight_layout()
    return fig
