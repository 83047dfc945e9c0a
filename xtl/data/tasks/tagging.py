"""Token tagging (UD-POS, PAN-X / WikiANN NER, CCG supertagging): the format (a tag per token,
its loss) and its tasks.

The rows and tag sets are xtl.data.tasks.tagging_rows; features and prediction over windows
xtl.data.tasks.tagging_windows.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from xtl.data.readers import ccg as ccg_reader
from xtl.data.readers import conllu
from xtl.data.readers import panx as panx_reader
from xtl.data.tasks import Format, Task, register, register_format
from xtl.data.tasks.span_qa_windows import DOC_STRIDE
from xtl.data.tasks.tagging_rows import TaggingTask, canonicalize, references
from xtl.data.tasks.tagging_windows import IGNORE, TAG_SUBTOKEN, collator, featurize, predict
from xtl.offline.synth import dataset_generator, target_train

FORMAT = "tagging"
CANONICAL_FIELDS = ("tokens", "tags")


# --------------------------------------------------------------------------- head and loss

class TokenHead(nn.Module):
    """Dropout + linear on every token: logits (batch, tokens, tags)."""

    def __init__(self, hidden_size: int, num_tags: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_tags)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        return self.out(self.dropout(hidden))


def make_head(task: Task, hidden_size: int) -> nn.Module:
    return TokenHead(hidden_size, len(task.label_names))


def loss(logits: torch.Tensor, batch: dict) -> torch.Tensor:
    """Cross-entropy over the labelled positions (one sub-token per word) only."""
    flat = logits.float().reshape(-1, logits.shape[-1])
    target = batch["labels"].reshape(-1)
    if not bool((target != IGNORE).any()):  # every word cut off: no signal, not NaN
        return flat.sum() * 0.0
    return nn.functional.cross_entropy(flat, target, ignore_index=IGNORE)


def decode(logits: torch.Tensor) -> list[list[int]]:
    """Per WINDOW, the argmax tag id of every position; word tags need `word_tags`."""
    return logits.argmax(-1).tolist()


@register_format
class Tagging(Format):
    """One tag per word, from the word's first (or content) sub-token, over windows."""

    name, canonical_fields = FORMAT, CANONICAL_FIELDS
    hparams = (DOC_STRIDE, TAG_SUBTOKEN)
    canonicalize = staticmethod(canonicalize)
    featurize = staticmethod(featurize)
    collator = staticmethod(collator)
    make_head = staticmethod(make_head)
    loss = staticmethod(loss)
    decode = staticmethod(decode)
    predict = staticmethod(predict)
    references = staticmethod(references)


# --------------------------------------------------------------------------- the tasks
# Recipe: jiant's XTREME runs (docs/protocol.md): UD-POS and PAN-X 10 epochs, batch
# 4 x 8 = 32, max_len 256. English training data: the task's own `en` train split.
TAGGING_RECIPE = {"epochs": 10, "max_length": 256}

# google/xtreme ClassLabel (docs/data.md section 2: 17 UPOS, alphabetical)
UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
        "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")
# google/xtreme and unimelb-nlp/wikiann ClassLabel (docs/data.md section 2)
NER_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

# UD's English language names = google/xtreme's config names `udpos.<Name>` (docs/data.md section 2)
UDPOS_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek",
    "en": "English", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian",
    "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "id": "Indonesian", "it": "Italian", "ja": "Japanese", "kk": "Kazakh", "ko": "Korean",
    "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian", "ta": "Tamil",
    "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
    # XTREME-R additions (UD v2.7 treebank directory names)
    "lt": "Lithuanian", "pl": "Polish", "uk": "Ukrainian", "wo": "Wolof", "ro": "Romanian",
}
UDPOS_R_EXTRA = ("lt", "pl", "uk", "wo", "ro")
UDPOS_LANGUAGES = tuple(sorted(code for code in UDPOS_NAMES if code not in UDPOS_R_EXTRA))
# XTREME's 40 PAN-X languages and XTREME-R's 8 additions (docs/data.md section 4)
PANX_LANGUAGES = tuple("ar he vi id jv ms tl eu ml ta te af nl en de el bn hi mr ur fa fr it pt "
                       "es bg ru ja ka ko th sw yo my zh kk tr et fi hu".split())
PANX_R_EXTRA = ("qu", "pl", "uk", "az", "lt", "pa", "gu", "ro")

UD_RELEASES = (UDPOS_NAMES, dict.fromkeys(UDPOS_R_EXTRA, "ud-treebanks-v2.7"), "ud-treebanks-v2.5")

udpos = register(TaggingTask(
    name="udpos",
    format=FORMAT,
    languages=UDPOS_LANGUAGES,
    label_names=UPOS,
    hub_id="google/xtreme",
    config="udpos.{language}",
    config_names=UDPOS_NAMES,
    fields={"tokens": "tokens", "tags": "pos_tags"},
    metric="udpos_f1",
    # UD release files for a user without the Hub copy (hub_languages=()): v2.5, as XTREME
    raw_reader=conllu.reader(*UD_RELEASES),
    raw_files=conllu.needed_files(*UD_RELEASES),
    raw_path="udpos",
    hparams=TAGGING_RECIPE,
    # th, tl, yo: test only; kk: train + test (no validation): evaluate those on `test`
    description="UD-POS target (XTREME, UD v2.5, 33 languages); trained on UD English",
))

register(replace(
    udpos,
    name="udpos_r",
    languages=UDPOS_LANGUAGES + UDPOS_R_EXTRA,
    # google/xtreme has no config for lt pl uk wo ro: they come from the UD v2.7 release files
    # under <raw_dir>/udpos/ud-treebanks-v2.7/ (XTREME-R: old languages stay on v2.5)
    hub_languages=UDPOS_LANGUAGES,
    description="UD-POS target (XTREME-R, 38 languages: + lt pl uk wo ro from raw UD v2.7)",
))

panx = register(TaggingTask(
    name="panx",
    format=FORMAT,
    languages=PANX_LANGUAGES,
    label_names=NER_TAGS,
    hub_id="google/xtreme",
    config="PAN-X.{language}",
    fields={"tokens": "tokens", "tags": "ner_tags"},
    metric="seqeval_f1",
    # XTREME's preprocessed files (<raw_dir>/panx/{train,dev,test}-<lang>.tsv), for a user
    # without the Hub copy (hub_languages=())
    raw_reader=panx_reader.reader("{split}-{language}.tsv"),
    raw_path="panx",
    hparams=TAGGING_RECIPE,
    description="PAN-X NER target (XTREME, 40 languages); trained on PAN-X English",
))

# XTREME-R's "WikiANN-NER": 48 languages, all from unimelb-nlp/wikiann (docs/data.md section 3): the
# extra 8 are no google/xtreme configs, and one task has one Hub repo. For the 40 shared
# languages wikiann parses the same panx_dataset files as google/xtreme (same rows; pinned by a
# test on the samples), so one target cell covers XTREME-R without a second fine-tuning.
register(replace(
    panx,
    name="panx_r",
    languages=PANX_LANGUAGES + PANX_R_EXTRA,
    hub_id="unimelb-nlp/wikiann",
    config="{language}",
    description="WikiANN NER target (XTREME-R, 48 languages, unimelb-nlp/wikiann)",
))

# Real PAN-X rows shipped with xtl (xtl/offline/samples/README.md): 200 English training and
# dev sentences and 200 dev sentences in five other languages, four scripts; PAN-X's schema,
# recipe and metric. The offline demo's real zero-shot NER.
register(replace(
    panx,
    name="panx-sample",
    languages=("en", "de", "ar", "hi", "zh", "sw"),
    hub_id=None,
    splits={"train": "train", "validation": "validation"},
    raw_path="panx",
    bundled=True,
    description="PAN-X NER, a real sample shipped with xtl (200 sentences: en train + dev, "
                "dev of de ar hi zh sw); offline",
))

# jiant's CCG head has 1,363 outputs (CCGTask.LABELS); the real tag names come with the rows.
CCG_CAPACITY = 1363
register(TaggingTask(
    name="ccg",
    format=FORMAT,
    languages=("en",),
    label_names=tuple(f"ccg-{k}" for k in range(CCG_CAPACITY)),
    open_tag_set=True,
    fields={"tokens": "tokens", "tags": "tags"},
    metric="token_accuracy",  # supertagging is scored per token (jiant)
    raw_reader=ccg_reader.read,
    raw_path="ccg",
    description="CCG supertagging (CCGbank, bring your own jiant-format files), intermediate",
))

synth_ner = register(Task(
    name="synth-ner",
    format=FORMAT,
    languages=("en", "de", "es", "fr", "ru", "zh", "ar", "hi"),
    label_names=NER_TAGS,
    fields={"tokens": "tokens", "tags": "ner_tags"},
    metric="seqeval_f1",
    generator=dataset_generator("ner"),
    sizes={"train": 1000, "validation": 200, "test": 200},
    hparams={"epochs": 3, "max_length": 128},
    # a target fine-tunes on rows no intermediate stage trains on (xtl.offline.synth.common)
    train_task="synth-ner_target-train",
    description="Synthetic multilingual NER (xtl.offline.synth.ner) in the PAN-X Hub schema; open "
                "vocabulary (no evaluation name is ever trained on)",
))
register(target_train(synth_ner, dataset_generator("ner", train_part="target")))
