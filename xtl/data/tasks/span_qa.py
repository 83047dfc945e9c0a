"""Extractive (span) QA, SQuAD style: the format (start/end head, its loss) and its tasks.

The rows and their checks are xtl.data.tasks.span_qa_rows; the doc-stride windows and the answer
decoding xtl.data.tasks.span_qa_windows.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from xtl.data.readers import squad as squad_json
from xtl.data.tasks import Format, Task, register, register_format
from xtl.data.tasks.span_qa_rows import CANONICAL_FIELDS, canonicalize, check_source, references
from xtl.data.tasks.span_qa_windows import (
    DOC_STRIDE,
    MAX_ANSWER_LENGTH,
    collator,
    featurize,
    predict,
)
from xtl.offline.synth import dataset_generator, target_train

FORMAT = "span_qa"


# --------------------------------------------------------------------------- head and loss

class SpanHead(nn.Module):
    """One linear layer: a start and an end logit per token."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.qa = nn.Linear(hidden_size, 2)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        return self.qa(hidden)  # (batch, tokens, 2)


def make_head(task: Task, hidden_size: int) -> nn.Module:
    return SpanHead(hidden_size)


def loss(logits: torch.Tensor, batch: dict) -> torch.Tensor:
    """Mean of the start and end cross-entropies over the real (unpadded) tokens."""
    logits = logits.float()
    if "attention_mask" in batch:
        pad = batch["attention_mask"].unsqueeze(-1) == 0
        logits = logits.masked_fill(pad, torch.finfo(logits.dtype).min)
    start = nn.functional.cross_entropy(logits[..., 0], batch["start_positions"])
    end = nn.functional.cross_entropy(logits[..., 1], batch["end_positions"])
    return (start + end) / 2


def decode(logits: torch.Tensor) -> list[tuple[int, int]]:
    """Per WINDOW, the argmax (start, end) tokens; answer texts need `postprocess`."""
    return list(zip(logits[..., 0].argmax(-1).tolist(), logits[..., 1].argmax(-1).tolist(),
                    strict=True))


@register_format
class SpanQA(Format):
    """An answer span in the context (or none), decoded over overlapping windows."""

    name, canonical_fields = FORMAT, CANONICAL_FIELDS
    hparams = (DOC_STRIDE, MAX_ANSWER_LENGTH)
    canonicalize = staticmethod(canonicalize)
    check_source = staticmethod(check_source)
    featurize = staticmethod(featurize)
    collator = staticmethod(collator)
    make_head = staticmethod(make_head)
    loss = staticmethod(loss)
    decode = staticmethod(decode)
    predict = staticmethod(predict)
    references = staticmethod(references)


# --------------------------------------------------------------------------- the tasks
# Recipes: jiant's XTREME runs (docs/protocol.md): QA targets 2 epochs, batch 4x4 = 16,
# max_len 384; the SQuAD cache is built at max_len 384; intermediate runs use 3 epochs.
QA_TARGET_RECIPE = {"epochs": 2, "max_length": 384, "batch_size": 16}
QA_STAGE_RECIPE = {"epochs": 3, "max_length": 384}

squad = register(Task(
    name="squad",
    format=FORMAT,
    languages=("en",),
    # rajpurkar/squad: its Hub viewer shows one config `plain_text` with train 87,599 /
    # validation 10,570 (google/xtreme `SQuAD` has the same rows, contexts stripped).
    # No sample of it is in the test mirror.
    hub_id="rajpurkar/squad",
    config="plain_text",
    splits={"train": "train", "validation": "validation"},
    metric="squad",
    hparams=QA_STAGE_RECIPE,
    description="SQuAD v1.1: English intermediate task; English training data of XQuAD/MLQA",
))

# XTREME-R evaluates Tatoeba after fine-tuning on SQuAD v1.1 (`tatoeba_r`'s prelude): its
# scripts/run_tatoeba.sh reads a checkpoint trained at lr 3e-5, 2 epochs, max length 384,
# batch 2 x 16 (docs/protocol.md). Its own task, so the X-STILTs `squad` stage keeps its recipe.
register(replace(
    squad,
    name="squad_xtreme_r",
    hparams={"learning_rate": 3e-5, "epochs": 2, "max_length": 384, "batch_size": 32},
    description="SQuAD v1.1 with XTREME-R's recipe for Tatoeba: tatoeba_r's English training",
))

register(Task(
    name="squad_v2",
    format=FORMAT,
    languages=("en",),
    hub_id="rajpurkar/squad_v2",  # docs/data.md section 1; context not stripped
    config="squad_v2",
    splits={"train": "train", "validation": "validation"},
    metric="squad_v2",
    hparams=QA_STAGE_RECIPE,
    description="SQuAD v2.0 (with unanswerable questions), English intermediate task",
))

register(Task(
    name="xquad",
    format=FORMAT,
    # XTREME's 11 languages + ro (XTREME-R). google/xtreme `XQuAD.<lang>` lacks ro, and a task
    # has one Hub repo, so every language comes from google/xquad (docs/data.md section 2:
    # same raw files, same loader quirk: contexts stripped, starts kept -> re-located here).
    languages=("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh"),
    hub_id="google/xquad",
    config="xquad.{language}",
    splits={"validation": "validation"},  # the only split (1,190 rows per language)
    metric="squad",
    train_task="squad",
    hparams=QA_TARGET_RECIPE,
    # the deepmind/xquad release files, for a user without the Hub copy (hub_languages=())
    raw_reader=squad_json.reader("xquad.{language}.json", strip=True),
    raw_path="xquad",
    description="XQuAD target (evaluation only); English training data is SQuAD v1.1",
))

register(Task(
    name="mlqa",
    format=FORMAT,
    languages=("ar", "de", "en", "es", "hi", "vi", "zh"),
    hub_id="facebook/mlqa",  # docs/data.md section 2; contexts not stripped
    config="mlqa.{language}.{language}",  # XTREME's same-language (context = question) setting
    splits={"validation": "validation", "test": "test"},
    metric="mlqa",
    train_task="squad",
    hparams=QA_TARGET_RECIPE,
    description="MLQA target (context and question in one language); trained on SQuAD v1.1",
))

register(Task(
    name="tydiqa",
    format=FORMAT,
    languages=("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te"),
    # docs/data.md section 2: one config for every language (id prefix = language name);
    # train 49,881 / validation 5,077. The English part of train is the training data
    # (train_language "en"); XTREME's TyDiQA "test" is this validation split.
    hub_id="google-research-datasets/tydiqa",
    config="secondary_task",
    splits={"train": "train", "validation": "validation"},
    metric="squad",
    hparams=QA_TARGET_RECIPE,
    description="TyDiQA-GoldP target; trained on its English GoldP training rows",
))

# --- Translated intermediate data (research question b) ------------------------------------
# MLQA translate-train (docs/data.md section 2): facebook/mlqa `mlqa-translate-train.<l>`
# = SQuAD v1.1 train (and dev) machine-translated to <l>, splits `train` and `validation`, the
# MLQA schema (context, question, answers, id; not stripped). One task per training language
# (`train_language`), selected on the translated SQuAD dev of that language. Mixing languages:
# a multi-task stage over these tasks; a single concatenated task needs `combine` members that
# load in their own language (`xtl.data.sources._load_combined` passes the combined task's language
# to every member today, so members of different languages cannot be concatenated yet).
MLQA_TT_LANGUAGES = ("ar", "de", "es", "hi", "vi", "zh")

for _language in MLQA_TT_LANGUAGES:
    register(Task(
        name=f"squad_mt_{_language}",
        format=FORMAT,
        languages=(_language,),
        hub_id="facebook/mlqa",
        config="mlqa-translate-train.{language}",
        splits={"train": "train", "validation": "validation"},
        metric="squad",
        train_language=_language,
        hparams=QA_STAGE_RECIPE,
        description=f"SQuAD v1.1 machine-translated to {_language} (MLQA translate-train)",
    ))

synth_qa = register(Task(
    name="synth-qa",
    format=FORMAT,
    languages=("en", "de", "es", "fr", "ru", "zh", "ar", "hi"),
    metric="squad",
    generator=dataset_generator("qa"),
    sizes={"train": 1000, "validation": 200, "test": 200},
    hparams={"epochs": 3, "max_length": 256},
    # a target fine-tunes on rows no intermediate stage trains on (xtl.offline.synth.common)
    train_task="synth-qa_target-train",
    description="Synthetic multilingual extractive QA (xtl.offline.synth.qa) in the SQuAD/XQuAD "
                "schema",
))
register(target_train(synth_qa, dataset_generator("qa", train_part="target")))
