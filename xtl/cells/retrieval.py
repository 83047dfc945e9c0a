"""Sentence retrieval with an encoder as it is: the retrieval cell.

`xtl.data.embeddings` (layer, pooling), `xtl.data.search` (exact inner-product top-k) and
`xtl.evaluation.bitext` (Tatoeba's pair search, BUCC's margin mining) pin the protocol; this module
runs a cell.

`start(...)` opens a retrieval cell for notebooks/retrieval.ipynb: it loads the encoder (the
base model or an intermediate checkpoint's `encoder/`), evaluates each language and writes
metrics.json and predictions through `xtl.cells.phases.CellRun` (kind "target" until the phases
module knows "retrieval").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xtl.core.errors import ConfigError, unknown
from xtl.core.hparams import Hparams
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


def frozen_encoder(run: Any, model: str, init_checkpoint: str | None,
                   hp: Hparams) -> tuple[Any, Any, Any]:
    """(encoder in eval mode on its device, tokenizer, device): the base model's encoder, or the
    `encoder/` of an intermediate checkpoint (checksum verified, architecture checked against
    the base model); `run` (a phases.Run) records where it came from and the precision."""
    from xtl.model.models import build
    from xtl.training import devices  # lazy: accelerate loads only when a cell runs

    location, source = zoo.materialize(model)
    init = Path(init_checkpoint) if init_checkpoint else None
    net, tokenizer, report = build(location, [], init, expect_like=location if init else None)
    run.model_source = source
    if report.parent is not None:
        run.model_source = (f"encoder of checkpoint {init} (cell "
                            f"{report.parent.get('cell')}; base model: {source})")
        run.parent = {"cell": report.parent.get("cell"),
                      "checksum": report.parent.get("checksum"), "path": str(init)}
    device = devices.resolve_device(hp.device)
    run.precision = devices.resolve_precision(hp.precision, device)
    return net.encoder.to(device).eval(), tokenizer, device


@dataclass
class RetrievalCell:
    """A retrieval evaluation: the encoder as it is, every language, no training."""

    run: Any  # xtl.cells.phases.CellRun
    task: Any  # xtl.data.tasks.Task
    model: str
    init_checkpoint: str | None
    split: str
    languages: list[str]
    encoder: Any = None
    tokenizer: Any = None
    device: torch.device = torch.device("cpu")
    backend: str = "torch"
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def hp(self) -> Hparams:
        return self.run.hparams

    def intro(self) -> str:
        what = ("top-1 accuracy in both directions" if self.task.metric == "accuracy"
                else "F1 of margin-mined pairs")
        start = f"intermediate checkpoint {self.init_checkpoint}" if self.init_checkpoint \
            else f"the base model {self.model}"
        return (f"{self.task.name}: {what} on {self.split} in {len(self.languages)} languages "
                f"({', '.join(self.languages)}), embedding with {start}; no training")

    def load_encoder(self) -> tuple[Any, Any]:
        """The base model's encoder, or the `encoder/` of an intermediate checkpoint (its
        checksum verified and its architecture checked against the base model)."""
        self.encoder, self.tokenizer, self.device = frozen_encoder(
            self.run, self.model, self.init_checkpoint, self.hp)
        self.backend = search_backend("auto", self.device)
        return self.encoder, self.tokenizer

    def settings(self) -> dict[str, Any]:
        """The representation and search actually used (also written to metrics.json)."""
        n = encoder_depth(self.encoder)
        return {"layer": self.hp.layer, "layer_index": layer_index(self.hp.layer, n),
                "num_layers": n, "layer_reason": self.layer_reason(),
                "pooling": self.hp.pooling,
                "input_prefix": self.hp.input_prefix, "max_length": self.hp.max_length,
                "precision": self.run.precision, "device": str(self.device),
                "search": self.backend}

    def layer_reason(self) -> str:
        """Why this layer: the model's own layer, the task's recipe, or the experiment file."""
        layer = self.hp.layer
        preset = zoo.PRESETS.get(self.model)
        if preset is not None and preset.hparams.get("layer") == layer:
            return f"the layer {self.model} is made to embed with: " + MODEL_LAYERS.get(
                self.model, "its preset's setting")
        if self.task.hparams.get("layer") == layer:
            return ("the task's recipe: X-STILTs' retrieval layer (Phang et al. 2020: layer 14 "
                    "of XLM-R Large's 24, as a fraction of depth)")
        return "set in the experiment file (hparams or tasks.<name>.layer)"

    def describe(self) -> str:
        s = self.settings()
        which = "the last" if s["layer_index"] == s["num_layers"] else (
            "the embedding layer" if s["layer_index"] == 0 else f"block {s['layer_index']}")
        return (f"encoder: {self.run.model_source}\n"
                f"representation: hidden_states[{s['layer_index']}] ({which} of {s['num_layers']}"
                f" layers; layer = {s['layer']!r}), {s['pooling']} pooling, prefix "
                f"{s['input_prefix']!r}, max {s['max_length']} tokens, L2-normalised\n"
                f"why this layer: {s['layer_reason']}\n"
                f"running on {s['device']} in {s['precision']}; cosine search with "
                f"{s['search']}")

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        if self.encoder is None:
            raise ConfigError("load_encoder() first")
        return embed(self.encoder, self.tokenizer, texts, self.hp.input_prefix,
                     self.hp.pooling, self.hp.layer, 2 * self.hp.batch_size,
                     max_length=self.hp.max_length, precision=self.run.precision)

    def evaluate(self, language: str, log: Callable[[str], None] = print) -> LanguageResult:
        """Load, embed, search or mine, and score one language."""
        if self.task.metric == "accuracy":
            result = self._tatoeba(language)
        elif self.task.metric == "bucc_f1":
            result = self._bucc(language)
        else:
            raise ConfigError(f"task {self.task.name!r}: retrieval scores 'accuracy' (top-1) "
                              f"or 'bucc_f1' (mining), not {self.task.metric!r}")
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
        split = self.run.load(self.task, self.split, language)
        pairs = bitext(split.rows)
        (src, tgt), info = self._timed_embed(pairs.source, pairs.target)
        found = pair_search(pairs, src, tgt, backend=self.backend, device=self.device)
        scores = {d: found.accuracy(d) for d in DIRECTIONS}
        n, name = len(pairs.source), self.task.name
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
                              shortcuts.for_cell(self.task, None, [split]))

    def _mine_split(self, language: str, split: str) -> tuple[Mined, list, dict]:
        pairs = bitext(self.run.load(self.task, split, language).rows)
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
            scores = metrics.score(self.task, dev.candidates, dev_gold, language)
        else:
            scores = retrieval_metrics.bucc_dev_test(dev.candidates, dev_gold,
                                                     evaluated.candidates, gold)
        self.thresholds[language] = scores["threshold"]
        records = [_record(self.task.name, language, self.split, m, scores[m], len(gold))
                   for m in ("f1", "precision", "recall")]
        examples = [line for s in splits
                    for line in _mined_lines(self.task.name, language, s, *done[s][:2])]
        info = {"gold": len(gold), "candidates": len(evaluated.candidates), **info,
                "threshold": round(scores["threshold"], 4), "f1": round(scores["f1"], 2)}
        if evaluated.dropped:
            info["dropped (repeated sentence)"] = evaluated.dropped
        return LanguageResult(language, records, examples, info)

    def finish(self, results: Sequence[LanguageResult]) -> dict:
        """metrics.json (one record per language and metric) and the predictions files."""
        extra = {"retrieval": {**self.settings(), "split": self.split,
                               "headline": _headline(self.task.metric)}}
        if self.thresholds:
            extra["retrieval"]["bucc_thresholds"] = dict(self.thresholds)
        return self.run.finish([r for res in results for r in res.records],
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


def start(cell_id: str, model: str, task: str, hparams: dict, init_checkpoint: str | None,
          eval_split: str, eval_languages: list[str] | None, cell_dir: str,
          mirror: str | None = None, raw_dir: str | None = None,
          declared_tasks: dict | None = None, hparam_sources: dict | None = None
          ) -> RetrievalCell:
    """Validate the notebook's parameters and open the cell (also for ad-hoc runs)."""
    from xtl.cells import phases

    run = phases.start("retrieval", cell_id, cell_dir, cell_dir, hparams, mirror, declared_tasks,
                       raw_dir, hparam_sources=hparam_sources, model=model, task=task,
                       init_checkpoint=init_checkpoint, eval_split=eval_split,
                       eval_languages=eval_languages)
    resolved = run.task(task)
    if resolved.format != "retrieval":
        raise ConfigError(f"task {task!r} has format {resolved.format!r}; the retrieval notebook"
                          " evaluates retrieval tasks (tatoeba, bucc2018)")
    languages = list(eval_languages or resolved.languages)
    for lang in languages:
        if lang not in resolved.languages:
            raise unknown(f"language of task {task!r}", lang, resolved.languages)
    resolved.source_split(eval_split)
    return RetrievalCell(run, resolved, model, init_checkpoint, eval_split, languages)


# --------------------------------------------------------------------------- display

def table(results: Sequence[LanguageResult]):
    """Language x metric (pandas), the mean over languages as the last row."""
    from xtl.cells.phases import records_table

    records = [r for res in results for r in res.records]
    frame = records_table(records)[list(dict.fromkeys(r["metric"] for r in records))]
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
