"""Sentence retrieval with an encoder as it is: the retrieval cell.

`xtl.data.embeddings` (layer, pooling), `xtl.data.search` (exact inner-product top-k) and
`xtl.evaluation.bitext` (Tatoeba's pair search, BUCC's margin mining) pin the protocol; this module
runs a cell.

`RetrievalCell` is what `xtl.cells.phases.start("retrieval", ...)` opens for
notebooks/retrieval.ipynb: it loads the encoder (the base model or an intermediate checkpoint's
`encoder/`), evaluates each language and writes metrics.json and predictions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from xtl.cells.base import FrozenCell
from xtl.core.errors import ConfigError
from xtl.data.embeddings import embed, encoder_depth, layer_index
from xtl.data.search import search_backend
from xtl.evaluation import metrics, retrieval_metrics, shortcuts
from xtl.evaluation.bitext import Mined, Side, bitext, mine, pair_search
from xtl.model import zoo

DIRECTIONS = {"en_xx": "English query, foreign index (XTREME's number)",
              "xx_en": "foreign query, English index"}
# Why a preset's own layer is the one to retrieve with (Wang et al. 2024 for e5).
MODEL_LAYERS = {"multilingual-e5-small": "e5 is trained as a sentence embedder on the mean of "
                "its LAST layer (with a 'query: ' prefix), which is how its users retrieve"}


# --------------------------------------------------------------------------- the cell

def _record(task: str, language: str, split: str, metric: str, value: float, n: int) -> dict:
    return {"task": task, "language": language, "split": split, "metric": metric,
            "value": float(value), "n": int(n), "flags": []}


@dataclass
class LanguageResult:
    """One language's metric records, prediction lines and figures for the notebook."""

    language: str
    records: list[dict]
    examples: list[dict]
    info: dict[str, Any] = field(default_factory=dict)
    baselines: list[dict] = field(default_factory=list)  # xtl.evaluation.shortcuts: random ranking


@dataclass
class RetrievalCell(FrozenCell):
    """A retrieval evaluation: the encoder as it is, every language, no training."""

    split: str = ""
    backend: str = "torch"
    thresholds: dict[str, float] = field(default_factory=dict)

    def open(self) -> None:
        task = self.params["task"]
        self.target = self.task(task)
        if self.target.format != "retrieval":
            raise ConfigError(f"task {task!r} has format {self.target.format!r}; the retrieval "
                              "notebook evaluates retrieval tasks (tatoeba, bucc2018)")
        self.split = self.params["eval_split"]
        self.languages = list(self.params.get("eval_languages") or self.target.languages)
        self.target.source_split(self.split)

    def intro(self) -> str:
        what = ("top-1 accuracy in both directions" if self.target.metric == "accuracy"
                else "F1 of margin-mined pairs")
        return (f"{self.target.name}: {what} on {self.split} in {len(self.languages)} languages "
                f"({', '.join(self.languages)}), embedding with {self.checkpoint_text()}; no "
                "training")

    def load_encoder(self) -> tuple[Any, Any]:
        super().load_encoder()
        self.backend = search_backend("auto", self.device)
        return self.encoder, self.tokenizer

    def settings(self) -> dict[str, Any]:
        """The representation and search actually used (also written to metrics.json)."""
        n = encoder_depth(self.encoder)
        return {"layer": self.hparams.layer, "layer_index": layer_index(self.hparams.layer, n),
                "num_layers": n, "layer_reason": self.layer_reason(),
                "pooling": self.hparams.pooling,
                "input_prefix": self.hparams.input_prefix, "max_length": self.hparams.max_length,
                "precision": self.precision, "device": str(self.device),
                "search": self.backend}

    def layer_reason(self) -> str:
        """Why this layer: the model's own layer, the task's recipe, or the experiment file."""
        layer = self.hparams.layer
        preset = zoo.PRESETS.get(self.params["model"])
        if preset is not None and preset.hparams.get("layer") == layer:
            return f"the layer {self.params['model']} is made to embed with: " + MODEL_LAYERS.get(
                self.params["model"], "its preset's setting")
        if self.target.hparams.get("layer") == layer:
            return ("the task's recipe: X-STILTs' retrieval layer (Phang et al. 2020: layer 14 "
                    "of XLM-R Large's 24, as a fraction of depth)")
        return "set in the experiment file (hparams or tasks.<name>.layer)"

    def describe(self) -> str:
        s = self.settings()
        which = "the last" if s["layer_index"] == s["num_layers"] else (
            "the embedding layer" if s["layer_index"] == 0 else f"block {s['layer_index']}")
        return (f"encoder: {self.model_source}\n"
                f"representation: hidden_states[{s['layer_index']}] ({which} of {s['num_layers']}"
                f" layers; layer = {s['layer']!r}), {s['pooling']} pooling, prefix "
                f"{s['input_prefix']!r}, max {s['max_length']} tokens, L2-normalised\n"
                f"why this layer: {s['layer_reason']}\n"
                f"running on {s['device']} in {s['precision']}; cosine search with "
                f"{s['search']}")

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        if self.encoder is None:
            raise ConfigError("load_encoder() first")
        return embed(self.encoder, self.tokenizer, texts, self.hparams.input_prefix,
                     self.hparams.pooling, self.hparams.layer, 2 * self.hparams.batch_size,
                     max_length=self.hparams.max_length, precision=self.precision)

    def evaluate(self, language: str, log: Callable[[str], None] = print) -> LanguageResult:
        """Load, embed, search or mine, and score one language."""
        if self.target.metric == "accuracy":
            result = self._tatoeba(language)
        elif self.target.metric == "bucc_f1":
            result = self._bucc(language)
        else:
            raise ConfigError(f"task {self.target.name!r}: retrieval scores 'accuracy' (top-1) "
                              f"or 'bucc_f1' (mining), not {self.target.metric!r}")
        log(f"{language}: " + ", ".join(f"{k} {v}" for k, v in result.info.items()))
        return result

    def _timed_embed(self, *sides: Sequence[str]) -> tuple[list[torch.Tensor], dict]:
        started = time.perf_counter()
        vectors = [self.embed(texts) for texts in sides]
        seconds = time.perf_counter() - started
        n = sum(len(t) for t in sides)
        return vectors, {"sentences": n, "embed_s": round(seconds, 2),
                         "sentences_per_s": round(n / max(seconds, 1e-9), 1)}

    def _tatoeba(self, language: str) -> LanguageResult:
        split = self.load(self.target, self.split, language)
        pairs = bitext(split.rows)
        (src, tgt), info = self._timed_embed(pairs.source, pairs.target)
        found = pair_search(pairs, src, tgt, backend=self.backend, device=self.device)
        scores = {d: found.accuracy(d) for d in DIRECTIONS}
        n, name = len(pairs.source), self.target.name
        records = [_record(name, language, self.split, "accuracy", scores["en_xx"], n),
                   _record(name, language, self.split, "accuracy_en_xx", scores["en_xx"], n),
                   _record(name, language, self.split, "accuracy_xx_en", scores["xx_en"], n),
                   _record(name, language, self.split, "accuracy_mean",
                           (scores["en_xx"] + scores["xx_en"]) / 2, n)]
        examples = [{"id": rid, "task": name, "language": language, "split": self.split,
                     "prediction": {d: found.hits[d][i] for d in DIRECTIONS}, "reference": rid,
                     "logits": {d: round(found.cosines[d][i], 6) for d in DIRECTIONS}}
                    for i, rid in enumerate(found.ids)]
        info = {"pairs": n, **info, "en->xx": round(scores["en_xx"], 2),
                "xx->en": round(scores["xx_en"], 2)}
        return LanguageResult(language, records, examples, info,
                              shortcuts.for_cell(self.target, None, [split]))

    def _mine_split(self, language: str, split: str) -> tuple[Mined, list, dict]:
        pairs = bitext(self.load(self.target, split, language).rows)
        source, target = Side.of(pairs.source_ids, pairs.source), Side.of(pairs.target_ids,
                                                                           pairs.target)
        (x, y), info = self._timed_embed(source.texts, target.texts)
        mined = mine(source, target, x, y, backend=self.backend, device=self.device)
        return mined, pairs.gold, info

    def _bucc(self, language: str) -> LanguageResult:
        splits = ["validation"] if self.split == "validation" else ["validation", self.split]
        done = {s: self._mine_split(language, s) for s in splits}
        (dev, dev_gold, _), (evaluated, gold, info) = done["validation"], done[self.split]
        if self.split == "validation":  # the official dev protocol: tuned on its own gold
            scores = metrics.score(self.target, dev.candidates, dev_gold, language)
        else:
            scores = retrieval_metrics.bucc_dev_test(dev.candidates, dev_gold,
                                                     evaluated.candidates, gold)
        self.thresholds[language] = scores["threshold"]
        records = [_record(self.target.name, language, self.split, m, scores[m], len(gold))
                   for m in ("f1", "precision", "recall")]
        examples = [line for s in splits
                    for line in _mined_lines(self.target.name, language, s, *done[s][:2])]
        info = {"gold": len(gold), "candidates": len(evaluated.candidates), **info,
                "threshold": round(scores["threshold"], 4), "f1": round(scores["f1"], 2)}
        if evaluated.dropped:
            info["dropped (repeated sentence)"] = evaluated.dropped
        return LanguageResult(language, records, examples, info)

    def finish(self, results: Sequence[LanguageResult]) -> dict:
        """metrics.json (one record per language and metric) and the predictions files."""
        extra = {"retrieval": {**self.settings(), "split": self.split,
                               "headline": _headline(self.target.metric)}}
        if self.thresholds:
            extra["retrieval"]["bucc_thresholds"] = dict(self.thresholds)
        return super().finish([r for res in results for r in res.records],
                               [e for res in results for e in res.examples], extra,
                               [b for res in results for b in res.baselines])


def _headline(metric: str) -> str:
    if metric == "accuracy":
        return ("accuracy = accuracy_en_xx: English queries against the foreign sentences, "
                "XTREME's direction; accuracy_xx_en is the reverse, accuracy_mean their mean")
    return ("f1 at the threshold tuned on validation (BUCC sample); on validation itself that "
            "is the official oracle dev number")


def _mined_lines(task: str, language: str, split: str, mined: Mined, gold: list
                 ) -> list[dict]:
    """One line per source sentence that was mined or has a gold pair: its candidate (or
    None) with the margin score, and its gold targets -- enough to re-score with
    xtl.evaluation.retrieval_metrics.bucc_f1 (candidates {(id, prediction): logits}, gold (id, each
    reference))."""
    refs: dict[str, list[str]] = {}
    for sid, tid in gold:
        refs.setdefault(sid, []).append(tid)
    picked = {sid: (tid, score) for (sid, tid), score in mined.candidates.items()}
    lines = []
    for sid in list(picked) + [s for s in refs if s not in picked]:
        tid, score = picked.get(sid, (None, None))
        lines.append({"id": sid, "task": task, "language": language, "split": split,
                      "prediction": tid, "reference": refs.get(sid, []),
                      "logits": None if score is None else round(score, 6)})
    return lines


# --------------------------------------------------------------------------- display

def table(results: Sequence[LanguageResult]):
    """Language x metric (pandas), the mean over languages as the last row."""
    import pandas as pd

    records = [r for res in results for r in res.records]
    frame = (pd.DataFrame(records).pivot_table(index="language", columns="metric", values="value")
             .round(2)[list(dict.fromkeys(r["metric"] for r in records))])
    frame.loc["mean"] = frame.mean().round(2)
    return frame


def plot(frame: Any, metric: str):
    """Bars per language: the two directions (Tatoeba) or F1/precision/recall (BUCC)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from xtl.evaluation import plots

    shown = (["accuracy_en_xx", "accuracy_xx_en"] if metric == "accuracy"
             else ["f1", "precision", "recall"])
    long = (frame.drop(index="mean", errors="ignore")[shown].reset_index()
            .melt(id_vars="language", var_name="metric", value_name="score"))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * long["language"].nunique() + 2), 3.2))
    sns.barplot(data=long, x="language", y="score", hue="metric", ax=ax)
    for bars in ax.containers:  # the value on each bar: near 1 % the axis alone is vague
        ax.bar_label(bars, fmt="%.1f", fontsize="x-small", padding=1)
    ax.set_ylim(0, plots.score_ceiling(long["score"].tolist()) * 1.08)
    ax.set_title("top-1 accuracy per language and direction" if metric == "accuracy"
                 else "mined-pair scores per language")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig
