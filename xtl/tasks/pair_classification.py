"""Sentence-pair classification (NLI, paraphrase): rows, features, head, predictions."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import DataCollatorWithPadding

from xtl.tasks import Task, register

FORMAT = "pair_classification"
# Canonical row: {"id": str, "text_a": str, "text_b": str, "label": int}
CANONICAL_FIELDS = ("text_a", "text_b", "label")
NLI_LABELS = ("entailment", "neutral", "contradiction")


def featurize(batch: dict[str, list], tokenizer: Any, hp: dict, train: bool = False) -> dict:
    """Tokenise a batch of canonical rows; padding is left to the collator (dynamic)."""
    prefix = hp["input_prefix"]
    a = [prefix + t for t in batch["text_a"]]
    b = [prefix + t for t in batch["text_b"]]
    enc = tokenizer(a, b, truncation=True, max_length=hp["max_length"])
    enc["labels"] = list(batch["label"])
    return dict(enc)


def collator(tokenizer: Any) -> Any:
    """Pads each batch to its longest row (dynamic padding)."""
    return DataCollatorWithPadding(tokenizer)


class ClassificationHead(nn.Module):
    """Dense-tanh-dropout-linear over the first token, as RoBERTa's classification head."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        x = self.dropout(hidden[:, 0])
        return self.out(self.dropout(torch.tanh(self.dense(x))))


def make_head(task: Task, hidden_size: int) -> nn.Module:
    return ClassificationHead(hidden_size, len(task.label_names))


def loss(logits: torch.Tensor, batch: dict) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.float(), batch["labels"])


def decode(logits: torch.Tensor) -> list[int]:
    return logits.argmax(-1).tolist()


register(Task(
    name="mnli",
    format=FORMAT,
    languages=("en",),
    label_names=NLI_LABELS,
    hub_id="nyu-mll/glue",
    config="mnli",
    splits={"train": "train", "validation": "validation_matched", "test": "test_matched"},
    fields={"text_a": "premise", "text_b": "hypothesis", "label": "label", "id": "idx"},
    hparams={"epochs": 3, "max_length": 256},
    description="MultiNLI (GLUE), English intermediate task",
))

register(Task(
    name="xnli",
    format=FORMAT,
    languages=("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur",
               "vi", "zh"),
    label_names=NLI_LABELS,
    hub_id="facebook/xnli",
    config="{language}",
    fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"},
    label_aliases={"contradictory": "contradiction"},
    train_task="mnli",
    hparams={"epochs": 2, "max_length": 256},
    description="XNLI target; English training data is MNLI",
))


def _synth_nli(language: str, split: str, n: int, seed: int) -> list[dict]:
    from xtl.synth import nli

    return nli.generate(language, split, n, seed)


register(Task(
    name="synth-nli",
    format=FORMAT,
    languages=("en", "de", "es", "fr", "ru", "zh", "ar", "hi"),
    label_names=NLI_LABELS,
    fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"},
    generator=_synth_nli,
    sizes={"train": 1200, "validation": 300, "test": 300},
    hparams={"epochs": 3, "max_length": 128},
    description="Synthetic multilingual NLI (xtl.synth), in the MNLI/XNLI Hub schema",
))
