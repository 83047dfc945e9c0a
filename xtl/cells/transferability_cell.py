"""A transferability cell (notebooks/transferability.ipynb): the frozen encoder of one
checkpoint (the base model or an intermediate stage's `encoder/`) embeds a target's labelled
rows, and `xtl.evaluation.transferability` scores how well those features fit the target's labels.
No training, no head.

What one labelled unit is, per target format (the features the target's head reads, from the
last layer; docs/protocol.md "Transferability estimates"):
- pair_classification (sentence / pair classification): the first token of each row (what
  `ClassificationHead` reads), labelled with the row's class.
- multiple_choice: the first token of each (context, choice) pair, labelled 1 for the correct
  choice and 0 otherwise.
- tagging: each labelled sub-token (`tag_subtoken`), labelled with its word's tag.
- span_qa: every token of each training window that holds the answer, labelled 1 at the
  answer's start, 2 at its end (a one-token answer: 1), 0 elsewhere -- the two positions the
  span head classifies; windows without the answer are left out.
Retrieval targets get no cell: their estimate is the retrieval cell's own score (the
untrained checkpoint IS what they evaluate). Dual-encoder targets get none either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from xtl.cells.base import FrozenCell, check_compatible
from xtl.core.errors import ConfigError
from xtl.core.precision import autocast
from xtl.evaluation import transferability
from xtl.evaluation.transferability import FORMATS, REVISION, transferability_settings

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def supports(fmt: str) -> bool:
    return fmt in FORMATS


@dataclass
class Units:
    """Features [N, D] and labels [N] of one sample, and what they are."""

    features: np.ndarray
    labels: np.ndarray
    rows: int
    unit: str


def _forward(encoder: Any, tokenizer: Any, inputs: list[dict], device: Any, precision: str
             ) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer.pad(inputs, return_tensors="pt")
    batch = {k: v.to(device) for k, v in batch.items() if k in MODEL_INPUTS}
    with autocast(precision, device):
        hidden = encoder(**batch).last_hidden_state
    return hidden.float().cpu(), batch["attention_mask"].cpu()


@torch.inference_mode()
def embed_units(encoder: Any, tokenizer: Any, fmt: str, feats: Any, *, batch_size: int = 32,
                device: Any = "cpu", precision: str = "fp32", max_units: int = 20000,
                seed: int = 0) -> Units:
    """Each labelled unit's last-layer vector and label (see the module docstring) from
    training features (`xtl.data.features.features(..., train=True)`); at most `max_units` of
    them (a seeded subset)."""
    if not supports(fmt):
        raise ConfigError(f"no transferability estimate for format {fmt!r}; formats with one: "
                          f"{', '.join(FORMATS)}")
    was_training = encoder.training
    encoder.eval()
    vectors, labels = [], []
    try:
        # longest first, similar lengths together: little compute goes to padding
        order = sorted(range(len(feats)), key=lambda i: -_length(feats[i]["input_ids"]))
        for start in range(0, len(order), batch_size):
            rows = [feats[i] for i in order[start:start + batch_size]]
            vectors_b, labels_b = _units(encoder, tokenizer, fmt, rows, device, precision)
            vectors.append(vectors_b)
            labels += labels_b
    finally:
        encoder.train(was_training)
    f = torch.cat(vectors).numpy() if vectors else np.zeros((0, encoder.config.hidden_size))
    y = np.asarray(labels, dtype=np.int64)
    if len(y) > max_units:
        pick = np.sort(np.random.default_rng(seed).choice(len(y), max_units, replace=False))
        f, y = f[pick], y[pick]
    return Units(f.astype(np.float64), y, len(feats), FORMATS[fmt])


def _length(ids: list) -> int:
    """Tokens of a row (a multiple-choice row: of its longest pair)."""
    return max(len(x) for x in ids) if ids and isinstance(ids[0], list) else len(ids)


def _units(encoder: Any, tokenizer: Any, fmt: str, rows: list[dict], device: Any,
           precision: str) -> tuple[torch.Tensor, list[int]]:
    if fmt == "multiple_choice":
        pairs = [{k: r[k][c] for k in MODEL_INPUTS if k in r}
                 for r in rows for c in range(len(r["input_ids"]))]
        hidden, _ = _forward(encoder, tokenizer, pairs, device, precision)
        labels = [int(c == r["labels"]) for r in rows for c in range(len(r["input_ids"]))]
        return hidden[:, 0], labels
    if fmt == "span_qa":
        rows = [r for r in rows if r["start_positions"] > 0]  # 0 (CLS): no answer here
        if not rows:
            return torch.zeros(0, encoder.config.hidden_size), []
    inputs = [{k: r[k] for k in MODEL_INPUTS if k in r} for r in rows]
    hidden, mask = _forward(encoder, tokenizer, inputs, device, precision)
    if fmt == "pair_classification":
        return hidden[:, 0], [int(r["labels"]) for r in rows]
    width = hidden.shape[1]
    if fmt == "tagging":
        tags = torch.tensor([list(r["labels"]) + [-100] * (width - len(r["labels"]))
                             for r in rows])
    else:  # span_qa: start 1, end 2 (a one-token answer: 1), every other real token 0
        at = torch.arange(width).unsqueeze(0)
        start = torch.tensor([int(r["start_positions"]) for r in rows]).unsqueeze(1)
        end = torch.tensor([int(r["end_positions"]) for r in rows]).unsqueeze(1)
        tags = torch.where(at == start, 1, torch.where(at == end, 2, 0))
        tags = tags.masked_fill(mask == 0, -100)
    keep = tags >= 0
    return hidden[keep], tags[keep].tolist()


def estimate(units: Units, seed: int = 0) -> dict[str, float]:
    """Every estimator on one sample (`xtl.evaluation.transferability.score_all`)."""
    return transferability.score_all(units.features, units.labels, seed=seed)


@dataclass
class TransferabilityCell(FrozenCell):
    """One (model, checkpoint, target) estimate: English training rows of `source` (whose rows
    the target trains on; XNLI: MNLI), then per language a sample of the target's validation
    rows."""

    source: Any = None
    settings: dict[str, int] = field(default_factory=dict)
    estimates: list[dict] = field(default_factory=list)

    def open(self) -> None:
        task = self.params["task"]
        self.target, self.source = self.task(task), self.task(self.params["train_task"])
        if not supports(self.target.format):
            raise ConfigError(f"task {task!r} has format {self.target.format!r}: no "
                              f"transferability estimate (formats with one: {', '.join(FORMATS)})")
        check_compatible(self.target, self.source)
        self.languages = list(self.params.get("eval_languages") or self.target.languages)
        self.settings = transferability_settings(self.params.get("transferability") or True,
                                                 "notebook parameter") or {}

    def intro(self) -> str:
        return (f"{self.target.name}: how well the frozen features of {self.checkpoint_text()} "
                f"fit its labels ({FORMATS[self.target.format]} units): up to "
                f"{self.settings['rows']} English training rows of {self.source.name}, and up "
                f"to {self.settings['language_rows']} validation rows in each of "
                f"{len(self.languages)} languages; no training")

    def _sample(self, task: Any, split: str, language: str, rows: int) -> Any:
        from xtl.data import features

        seed = int(self.params.get("subsample_seed") or 0)
        loaded = self.load(task, split, language)
        n = min(rows, len(loaded.rows))
        # the first n of the subsample seed's shuffle: the rows a target of train size n uses
        loaded.rows = loaded.rows.shuffle(seed=seed).select(range(n))
        loaded.fingerprint = f"{loaded.fingerprint}|n={n}|seed={seed}"
        self.data[f"{task.name}/{language}/{split}"] = loaded.provenance()
        return features.features(task, loaded, self.tokenizer, self.hparams_for(task),
                                 train=True, cache=False)

    def score(self, task: Any, split: str, language: str, rows: int) -> dict[str, Any]:
        """Embed a sample, run every estimator, keep one record per estimator."""
        feats = self._sample(task, split, language, rows)
        units = embed_units(self.encoder, self.tokenizer, task.format, feats,
                            batch_size=self.hparams.batch_size, device=self.device,
                            precision=self.precision,
                            max_units=self.settings["max_units"])
        values = estimate(units) if len(units.labels) >= 2 and len(set(units.labels)) >= 2 \
            else {}
        for name, value in values.items():
            self.estimates.append({"task": self.target.name, "data": task.name,
                                   "language": language, "split": split, "estimator": name,
                                   "value": float(value), "n": int(len(units.labels)),
                                   "rows": int(units.rows), "unit": units.unit,
                                   "classes": int(len(set(units.labels.tolist()))),
                                   # N <= D: LogME fits the labels exactly (its caveat)
                                   "flags": ["exact_fit"] if len(units.labels)
                                   <= units.features.shape[1] else []})
        return {"language": language, "split": split, "rows": units.rows,
                "units": len(units.labels), **values}

    def run_all(self) -> list[dict[str, Any]]:
        out = [self.score(self.source, "train", self.source.train_language,
                          self.settings["rows"])]
        if self.settings["language_rows"]:
            for lang in self.languages:
                out.append(self.score(self.target, "validation", lang,
                                      self.settings["language_rows"]))
        return out

    def finish(self) -> dict:
        extra = {"transferability": {**self.settings, "revision": REVISION,
                                     "unit": FORMATS[self.target.format], "layer": "last",
                                     "estimators": list(transferability.ESTIMATORS)}}
        return super().finish([], extra=extra, estimates=self.estimates)


def table(results: list[dict[str, Any]]):
    """One row per sample (language), one column per estimator (pandas), for display."""
    import pandas as pd

    return pd.DataFrame(results).set_index("language").round(4)
