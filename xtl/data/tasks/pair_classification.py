"""Sentence-pair classification (NLI, paraphrase) and single-sentence classification (SST-2).

A task without a "text_b" field is classified from "text_a" alone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xtl.core.hparams import Hparams
from xtl.data.tasks import Format, Task, register, register_format
from xtl.offline.synth import nli, target_train

FORMAT = "pair_classification"
# Canonical row: {"id": str, "text_a": str, "text_b": str, "label": int} ("text_b" optional)
CANONICAL_FIELDS = ("text_a", "text_b", "label")
NLI_LABELS = ("entailment", "neutral", "contradiction")


def featurize(batch: dict[str, list], tokenizer: Any, hp: Hparams, train: bool = False) -> dict:
    """Tokenise a batch of canonical rows; padding is left to the collator (dynamic)."""
    prefix = hp.input_prefix
    a = [prefix + t for t in batch["text_a"]]
    if "text_b" in batch:
        b = [prefix + t for t in batch["text_b"]]
        enc = tokenizer(a, b, truncation=True, max_length=hp.max_length)
    else:  # single-sentence task (SST-2)
        enc = tokenizer(a, truncation=True, max_length=hp.max_length)
    enc["labels"] = list(batch["label"])
    return dict(enc)


def collator(tokenizer: Any) -> Any:
    """Pads each batch to its longest row (dynamic padding)."""
    from transformers import DataCollatorWithPadding  # lazy: registry imports stay light

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


@register_format
class PairClassification(Format):
    """One label per sentence pair (or single sentence) from the first token."""

    name, canonical_fields = FORMAT, CANONICAL_FIELDS
    featurize = staticmethod(featurize)
    collator = staticmethod(collator)
    make_head = staticmethod(make_head)
    loss = staticmethod(loss)
    decode = staticmethod(decode)


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


def _synth_nli(train_part: str):
    def generate(language: str, split: str, n: int, seed: int) -> list[dict]:
        return nli.generate(language, split, n, seed, train_part=train_part)

    return generate


synth_nli = register(Task(
    name="synth-nli",
    format=FORMAT,
    languages=("en", "de", "es", "fr", "ru", "zh", "ar", "hi"),
    label_names=NLI_LABELS,
    fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"},
    generator=_synth_nli("stage"),
    sizes={"train": 1200, "validation": 300, "test": 300},
    hparams={"epochs": 3, "max_length": 128},
    # a target fine-tunes on rows no intermediate stage trains on (xtl.offline.synth.common)
    train_task="synth-nli_target-train",
    description="Synthetic multilingual NLI (xtl.offline.synth), in the MNLI/XNLI Hub schema; "
                "labels balanced against length/overlap cues",
))
register(target_train(synth_nli, _synth_nli("target")))


# --- English intermediate tasks (Phang et al. 2020, section 1; schemas: docs/data.md) --------

register(Task(
    name="qqp",
    format=FORMAT,
    languages=("en",),
    label_names=("not_duplicate", "duplicate"),
    hub_id="nyu-mll/glue",
    config="qqp",
    # train 363,846 / validation 40,430 / test 390,965 (test labels are all -1)
    fields={"text_a": "question1", "text_b": "question2", "label": "label", "id": "idx"},
    description="Quora Question Pairs (GLUE), English intermediate task",
))

# The schema of the GLUE loader (sentence, label ClassLabel[negative,
# positive], idx); splits train 67,349 / validation 872 / test 1,821 (test labels -1), seen on
# the Hub viewer of nyu-mll/glue sst2. No real sample in the test mirror.
register(Task(
    name="sst2",
    format=FORMAT,
    languages=("en",),
    label_names=("negative", "positive"),
    hub_id="nyu-mll/glue",
    config="sst2",
    fields={"text_a": "sentence", "label": "label", "id": "idx"},
    description="SST-2 sentiment (GLUE), single sentence, English intermediate task",
))


def _anli_round(k: int) -> Task:
    # facebook/anli has ONE config; rounds are split names (train_r1, dev_r1, test_r1, ...).
    return Task(
        name=f"anli_r{k}",
        format=FORMAT,
        languages=("en",),
        label_names=NLI_LABELS,
        hub_id="facebook/anli",
        config="plain_text",
        splits={"train": f"train_r{k}", "validation": f"dev_r{k}", "test": f"test_r{k}"},
        fields={"text_a": "premise", "text_b": "hypothesis", "label": "label", "id": "uid"},
        description=f"Adversarial NLI, round {k} only",
    )


for _k in (1, 2, 3):
    register(_anli_round(_k))

register(Task(
    name="anli",
    format=FORMAT,
    languages=("en",),
    label_names=NLI_LABELS,
    combine=("anli_r1", "anli_r2", "anli_r3"),
    description="Adversarial NLI, rounds 1-3 concatenated per split (train 162,865)",
))

# stanfordnlp/snli, config
# "plain_text" (Hub parquet plain_text/{train,validation,test}-00000-of-00001.parquet);
# premise, hypothesis, label ClassLabel[entailment, neutral, contradiction], -1 where the
# annotators reached no gold label (in every split: counted as unusable, never trained on).
register(Task(
    name="snli",
    format=FORMAT,
    languages=("en",),
    label_names=NLI_LABELS,
    hub_id="stanfordnlp/snli",
    config="plain_text",
    fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"},
    description="Stanford NLI (550K train), part of ANLI+",
))

# jiant's "full ANLI": SNLI + MNLI + A1-A3 (Phang et al. 2020). Concatenated here; jiant sampled the
# subtasks proportionally to their size, which on one shared head is the same mixture. No test
# split: MNLI's test labels are hidden, and ANLI+ is only ever an intermediate task.
register(Task(
    name="anli_plus",
    format=FORMAT,
    languages=("en",),
    label_names=NLI_LABELS,
    splits={"train": "train", "validation": "validation"},
    combine=("anli", "snli", "mnli"),
    description="ANLI+ = ANLI R1-R3 + SNLI + MNLI, concatenated (~1.1M train)",
))

# --- XTREME target ------------------------------------------------------------------------

register(Task(
    name="pawsx",
    format=FORMAT,
    languages=("de", "en", "es", "fr", "ja", "ko", "zh"),
    # the Hub's ClassLabel names are the strings "0" (not a paraphrase) and "1" (paraphrase)
    label_names=("0", "1"),
    hub_id="google-research-datasets/paws-x",
    config="{language}",
    # `id` repeats across languages (the sets are parallel); -1 labels (card note) are counted
    fields={"text_a": "sentence1", "text_b": "sentence2", "label": "label", "id": "id"},
    # English training = PAWS-X en train (the original PAWS); jiant recipe: 5 epochs, len 256
    hparams={"epochs": 5, "max_length": 256},
    description="PAWS-X target (XTREME); English training data is PAWS-X en",
))

# --- Translated intermediate data (research question b) ------------------------------------
# One task per training language: `<English task>_mt_<lang>` trains a stage on that language
# (`train_language`). A stage on English uses the English task itself (`mnli`, `pawsx`). A mix
# of languages is a multi-task stage over these tasks, or one concatenated task once `combine`
# can take a member in another language (see the MLQA translate-train note in span_qa.py).
# Checkpoint selection uses the task's own dev split: the XNLI / PAWS-X dev set of the
# TRAINING language (the Hub has no translated MNLI dev; PAWS-X's non-English dev sets are
# human translations). Those are the XNLI / PAWS-X targets' dev sets too: report such a
# target on `eval_split: test` when its stage was selected on them.

# XNLI-MT (docs/data.md section 2): facebook/xnli per-language `train` = MNLI train
# machine-translated, 392,702 rows (`en` = the original MNLI); ClassLabel as MNLI's.
XNLI_MT_LANGUAGES = ("ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur",
                     "vi", "zh")

for _language in XNLI_MT_LANGUAGES:
    register(Task(
        name=f"mnli_mt_{_language}",
        format=FORMAT,
        languages=(_language,),
        label_names=NLI_LABELS,
        hub_id="facebook/xnli",
        config="{language}",
        splits={"train": "train", "validation": "validation"},
        fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"},
        train_language=_language,
        hparams={"epochs": 3, "max_length": 256},  # as MNLI
        description=f"MNLI machine-translated to {_language} (XNLI-MT), intermediate task",
    ))

# PAWS-X translated train (docs/data.md section 2): google-research-datasets/paws-x
# `<lang>` train = `translated_train.tsv` (~49,401 rows), machine-translated from English PAWS.
PAWSX_MT_LANGUAGES = ("de", "es", "fr", "ja", "ko", "zh")

for _language in PAWSX_MT_LANGUAGES:
    register(Task(
        name=f"pawsx_mt_{_language}",
        format=FORMAT,
        languages=(_language,),
        label_names=("0", "1"),
        hub_id="google-research-datasets/paws-x",
        config="{language}",
        splits={"train": "train", "validation": "validation"},
        fields={"text_a": "sentence1", "text_b": "sentence2", "label": "label", "id": "id"},
        train_language=_language,
        hparams={"epochs": 5, "max_length": 256},  # as PAWS-X
        description=f"PAWS (English) machine-translated to {_language} (PAWS-X translate-train)",
    ))
