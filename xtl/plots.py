"""Static seaborn figures for the reports (widgets only in the interactive explorer)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


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


def gain_heatmap(gains: pd.DataFrame, title: str) -> plt.Figure:
    """Intermediate (rows) x target (columns) gain over the no-intermediate baseline."""
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 + 1.2 * gains.shape[1]),
                                    max(2.8, 1.2 + 0.6 * gains.shape[0])))
    bound = max(1.0, float(gains.abs().max().max()))
    sns.heatmap(gains, annot=True, fmt="+.1f", cmap="RdBu", vmin=-bound, vmax=bound,
                center=0, cbar_kws={"label": "gain (points)"}, ax=ax)
    ax.set_title(title)
    ax.set_xlabel("target task")
    ax.set_ylabel("intermediate task")
    fig.tight_layout()
    return fig
