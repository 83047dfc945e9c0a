"""Token tagging: UD-POS, PAN-X / WikiANN NER, CCG supertagging.

Canonical row: `{"id": str, "tokens": list[str], "tags": list[int]}`. The `tags` column is a
`Sequence(ClassLabel(names=<tag set>))`, so rows carry their tag names: `references(rows)` and
`predict` name tags from it. Source tags are mapped to the task's tag set BY NAME (the UD Hub
repo orders its 18 UPOS names differently from google/xtreme's 17); the tag `_` marks a token
nobody can be trained or scored on (a multi-word token or a word with no form/UPOS): such
tokens are dropped and the rows counted as repaired; a tag outside the tag set is an error.

Features: the words are tokenised without truncation; one sub-token of each word carries its
tag, every other position (later sub-tokens, special tokens, padding) -100. Which one is the
`tag_subtoken` rule: "first" (the default; XTREME's `utils_tag.py` and jiant's `label_mask`)
labels the word's first sub-token whatever it is, a bare SentencePiece word-start marker "▁"
included; "content" (contract v1) labels the first sub-token that is not such a bare marker.
Prediction reads the tag at the same position, so training and evaluation agree. Training keeps
the first window of `max_length` tokens: words past it add no labels (training data only).
Evaluation never loses a word to truncation: a long sentence is cut into overlapping windows
(overlap `min(doc_stride, room // 2)` tokens) and each word is predicted in the window where its
first sub-token has the most context on both sides (BERT's "max context" rule). A word that has
NO sub-token at all (the tokenizer drops it, e.g. a lone zero-width character) gets the
fallback tag ("O" for NER, "X" for UPOS, else the first tag) and `predict` prints how many.

Tag sets: a task's `label_names`; a task with an open tag set (CCG) takes its names from the
rows' ClassLabel (built by its raw reader) and its `label_names` only size the head.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import datasets
import torch
from torch import nn

from xtl.errors import ConfigError, DataError
from xtl.precision import autocast
from xtl.readers import ccg as ccg_reader
from xtl.readers import conllu
from xtl.readers import panx as panx_reader
from xtl.synth import dataset_generator, target_train
from xtl.tasks import Format, Task, register, register_format

FORMAT = "tagging"
CANONICAL_FIELDS = ("tokens", "tags")
IGNORE = -100  # label of positions that do not carry a word's tag
TAG_SUBTOKEN_RULES = ("first", "content")  # the `tag_subtoken` hyperparameter
UNUSABLE = "_"
PADS = {"input_ids": None, "attention_mask": 0, "labels": IGNORE}  # None: the tokenizer's pad

NO_TAGS = "no gold tags (unlabelled file)"
EMPTY = "empty sentence"
NO_TOKENS = "no usable tokens (every token tagged '_')"
REPAIRED = "repaired: tokens tagged '_' dropped (multi-word token, or no form/UPOS)"
_OK = ""


@dataclass(frozen=True)
class TaggingTask(Task):
    """A tagging task with two extras the generic Task lacks."""

    # Hub configs named by a language's English name (google/xtreme `udpos.English`)
    config_names: Mapping[str, str] = field(default_factory=dict)
    # the tag set comes with the rows (CCG: built from the training file); `label_names` are
    # placeholders that fix the head's size
    open_tag_set: bool = False

    def hub_config(self, language: str) -> str:
        return self.config.format(language=self.config_names.get(language, language))


# --------------------------------------------------------------------------- canonical rows

def _shown(names: Sequence[str], limit: int = 20) -> str:
    head = ", ".join(names[:limit])
    return f"[{head}{', ...' if len(names) > limit else ''}] ({len(names)} tags)"


def _source_names(feature: Any) -> list[str] | None:
    """The names of a ClassLabel tag column; None when tags are strings (raw readers)."""
    inner = getattr(feature, "feature", None)
    return list(inner.names) if isinstance(inner, datasets.ClassLabel) else None


def _integer_tags(feature: Any) -> bool:
    """Plain integer tags (no ClassLabel): ids into the task's own tag set."""
    inner = getattr(feature, "feature", None)
    return isinstance(inner, datasets.Value) and inner.dtype.startswith(("int", "uint"))


def tag_set(task: Task, source_names: list[str] | None, where: str) -> list[str]:
    """The tag names the canonical rows use."""
    if isinstance(task, TaggingTask) and task.open_tag_set:
        if source_names is None:
            raise DataError(f"{where}: task {task.name!r} takes its tag set from the rows, but "
                            "the source's tags are not a ClassLabel")
        if len(source_names) > len(task.label_names):
            raise DataError(f"{where}: {len(source_names)} tags, more than the "
                            f"{len(task.label_names)} the {task.name!r} head has")
        return source_names
    if not task.label_names:
        raise DataError(f"{where}: a tagging task needs label_names (its tag set)")
    return list(task.label_names)


def _columns(task: Task, raw: datasets.Dataset, where: str) -> dict[str, str | None]:
    cols = {"tokens": task.fields.get("tokens", "tokens"), "tags": task.fields.get("tags", "tags"),
            "id": task.fields.get("id")}
    missing = [c for c in cols.values() if c is not None and c not in raw.column_names]
    if missing:
        raise DataError(f"{where}: columns {missing} missing; the source has {raw.column_names}")
    return cols


def _row(tokens: list, tags: list | None, source_names: list[str] | None,
         index: Mapping[str, int], where: str, i: int) -> tuple[str, list[str], list[int]]:
    """(status, kept tokens, tag ids) of one source row."""
    if tags is None or any(t is None for t in tags):
        return NO_TAGS, [], []
    if len(tokens) != len(tags):
        raise DataError(f"{where} row {i}: {len(tokens)} tokens but {len(tags)} tags")
    if not tokens:
        return EMPTY, [], []
    if source_names is not None and not all(0 <= t < len(source_names) for t in tags):
        bad_id = next(t for t in tags if not 0 <= t < len(source_names))
        raise DataError(f"{where} row {i}: tag id {bad_id} is outside the tag set "
                        f"{_shown(source_names)}")
    names = [source_names[t] for t in tags] if source_names is not None else list(tags)
    bad = next((n for n in names if n != UNUSABLE and n not in index), None)
    if bad is not None:
        raise DataError(f"{where} row {i}: tag {bad!r} is outside the tag set "
                        f"{_shown(list(index))}")
    kept = [(tok, index[n]) for tok, n in zip(tokens, names, strict=True) if n != UNUSABLE]
    if not kept:
        return NO_TOKENS, [], []
    status = REPAIRED if len(kept) < len(tokens) else _OK
    return status, [str(tok) for tok, _ in kept], [t for _, t in kept]


def canonicalize(task: Task, raw: datasets.Dataset, split: str, language: str
                 ) -> tuple[datasets.Dataset, dict[str, int]]:
    """Canonical rows with tags mapped by name; unusable rows and repaired rows counted."""
    where = f"{task.name}/{language}/{split}"
    cols = _columns(task, raw, where)
    source_names = _source_names(raw.features[cols["tags"]])
    names = tag_set(task, source_names, where)
    if source_names is None and _integer_tags(raw.features[cols["tags"]]):
        source_names = names
    index = {name: k for k, name in enumerate(names)}
    prefix = f"{language}-{split}-"

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {"id": [], "tokens": [], "tags": [], "status": []}
        ids = batch[cols["id"]] if cols["id"] else [f"{prefix}{i:07d}" for i in indices]
        for row_id, tokens, tags, i in zip(ids, batch[cols["tokens"]], batch[cols["tags"]],
                                           indices, strict=True):
            status, kept, tag_ids = _row(tokens or [], tags, source_names, index, where, i)
            out["id"].append(str(row_id))
            out["tokens"].append(kept)
            out["tags"].append(tag_ids)
            out["status"].append(status)
        return out

    features = datasets.Features({
        "id": datasets.Value("string"),
        "tokens": datasets.Sequence(datasets.Value("string")),
        "tags": datasets.Sequence(datasets.ClassLabel(names=names)),
        "status": datasets.Value("string"),
    })
    mapped = raw.map(convert, batched=True, with_indices=True, remove_columns=raw.column_names,
                     features=features, desc=where)
    statuses = mapped["status"]
    keep = [i for i, s in enumerate(statuses) if s == _OK or s.startswith("repaired:")]
    rows = (mapped if len(keep) == len(mapped) else mapped.select(keep)).remove_columns("status")
    report = Counter(s for s in statuses if s != _OK)
    return rows, dict(sorted(report.items()))


def tag_names(rows: datasets.Dataset) -> list[str]:
    """The tag names of canonical rows (their `tags` ClassLabel)."""
    names = _source_names(rows.features["tags"])
    if names is None:
        raise DataError("tagging rows must be canonical: their 'tags' column is a ClassLabel")
    return names


def references(rows: datasets.Dataset) -> list[list[str]]:
    """Gold tag names per word, per row: what `xtl.metrics.score` takes for tagging."""
    names = tag_names(rows)
    return [[names[t] for t in tags] for tags in rows["tags"]]


def fallback_tag(names: Sequence[str]) -> str:
    """The tag of a word the model cannot see: no entity (NER), "other" (UPOS), else the first."""
    return next((t for t in ("O", "X") if t in names), names[0])


# --------------------------------------------------------------------------- features

def special_template(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one sequence of words."""
    cached = getattr(tokenizer, "_xtl_tag_template", None)
    if cached is not None:
        return cached
    enc = tokenizer([["a"]], is_split_into_words=True)
    try:
        words = enc.word_ids(0)
    except ValueError:
        raise ConfigError(f"tagging needs a fast tokenizer (word ids); "
                          f"{type(tokenizer).__name__} is not one") from None
    first, last = words.index(0), len(words) - 1 - words[::-1].index(0)
    ids = enc["input_ids"][0]
    tokenizer._xtl_tag_template = (ids[:first], ids[last + 1:])
    return tokenizer._xtl_tag_template


def window_starts(n_tokens: int, room: int, overlap: int) -> list[int]:
    """Start of each window of `room` tokens over `n_tokens`, consecutive ones overlapping."""
    starts = [0]
    while starts[-1] + room < n_tokens:
        starts.append(starts[-1] + room - overlap)
    return starts


def _room(tokenizer: Any, hp: dict) -> tuple[list[int], list[int], int, int]:
    head, tail = special_template(tokenizer)
    room = hp["max_length"] - len(head) - len(tail)
    if room < 2:
        raise ConfigError(f"max_length {hp['max_length']} leaves no room for words")
    return head, tail, room, min(hp["doc_stride"], room // 2)


def _bare_ids(tokenizer: Any) -> set[int]:
    """Ids of sub-tokens that only mark a word start ("▁" alone in SentencePiece vocabularies)."""
    vocab = tokenizer.get_vocab()
    return {vocab[t] for t in ("\u2581",) if t in vocab}


def _label_positions(words: list[int], ids: list[int], bare: set[int],
                     rule: str = "first") -> list[int]:
    """The word index at the sub-token that carries each word's label, -1 elsewhere.

    "first": the word's first sub-token, whatever it is (XTREME, jiant). "content": the first
    sub-token unless it is a bare word-start marker, then the first one with content (XLM-R
    style tokenizers split a CJK character into "▁" + the character; v1's rule).
    """
    if rule not in TAG_SUBTOKEN_RULES:
        raise ConfigError(f"unknown tag_subtoken rule {rule!r}; expected one of "
                          f"{', '.join(TAG_SUBTOKEN_RULES)}")
    chosen: dict[int, int] = {}
    for k, w in enumerate(words):
        if w < 0:
            continue
        if w not in chosen or (rule == "content" and ids[chosen[w]] in bare
                               and ids[k] not in bare
                               and all(ids[j] in bare for j in range(chosen[w], k))):
            chosen[w] = k
    out = [-1] * len(words)
    for w, k in chosen.items():
        out[k] = w
    return out


def featurize(batch: dict[str, list], tokenizer: Any, hp: dict, train: bool = False) -> dict:
    """Labels at each word's `tag_subtoken` position; training: the first window per row,
    evaluation: every window with the word each labelled position belongs to (`word_index`,
    -1 elsewhere) and its window number."""
    head, tail, room, overlap = _room(tokenizer, hp)
    prefix = hp["input_prefix"].split()  # e5-style prefixes: extra leading words, no labels
    bare = _bare_ids(tokenizer)
    enc = tokenizer([prefix + list(t) for t in batch["tokens"]], is_split_into_words=True,
                    add_special_tokens=False)
    out: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
    if not train:
        out.update(example_id=[], window=[], word_index=[])
    for i, tags in enumerate(batch["tags"]):
        ids = enc["input_ids"][i]
        words = [w - len(prefix) if w is not None and w >= len(prefix) else -1
                 for w in enc.word_ids(i)]
        firsts = _label_positions(words, ids, bare, hp["tag_subtoken"])
        labels = [tags[w] if w >= 0 else IGNORE for w in firsts]
        for k, start in enumerate([0] if train else window_starts(len(ids), room, overlap)):
            end = min(start + room, len(ids))
            out["input_ids"].append(head + ids[start:end] + tail)
            out["attention_mask"].append([1] * (len(head) + end - start + len(tail)))
            out["labels"].append([IGNORE] * len(head) + labels[start:end] + [IGNORE] * len(tail))
            if not train:
                out["example_id"].append(batch["id"][i])
                out["window"].append(k)
                out["word_index"].append([-1] * len(head) + firsts[start:end] + [-1] * len(tail))
    return out


class TaggingCollator:
    """Pads input ids, attention mask and labels (-100) to the batch's longest row; drops the
    evaluation bookkeeping columns (example ids, windows, word indices)."""

    def __init__(self, tokenizer: Any):
        self.pads = {**PADS, "input_ids": tokenizer.pad_token_id or 0}

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        return {key: torch.tensor([list(f[key]) + [pad] * (width - len(f[key]))
                                   for f in features], dtype=torch.long)
                for key, pad in self.pads.items() if key in features[0]}


def collator(tokenizer: Any) -> TaggingCollator:
    return TaggingCollator(tokenizer)


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


# --------------------------------------------------------------------------- prediction

@torch.inference_mode()
def window_tags(model: Any, tokenizer: Any, task: Task, feats: datasets.Dataset, hp: dict,
                precision: str = "fp32") -> list[list[int]]:
    """The argmax tag id at every position of every evaluation window, in window order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    inputs = feats.select_columns(["input_ids", "attention_mask"])
    loader = torch.utils.data.DataLoader(inputs, batch_size=2 * hp["batch_size"],
                                         collate_fn=collator(tokenizer))
    out: list[list[int]] = []
    for batch in loader:
        lengths = batch["attention_mask"].sum(1).tolist()
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(precision, device):
            best = model(task.name, batch).argmax(-1).cpu()
        out += [row[:n].tolist() for row, n in zip(best, lengths, strict=True)]
    model.train(was_training)
    return out


def word_tags(n_words: Sequence[int], windows: Sequence[int], word_index: Sequence[list[int]],
              predicted: Sequence[list[int]], head: int, tail: int) -> list[list[int | None]]:
    """Per row, the tag id of every word from the window where the word's labelled sub-token
    has the most context (min distance to the window's content edges); None: never seen."""
    out: list[list[int | None]] = []
    best: list[int] = []
    for k, positions, tags in zip(windows, word_index, predicted, strict=True):
        if k == 0:
            if len(out) == len(n_words):
                raise DataError("evaluation features hold more rows than the split")
            out.append([None] * n_words[len(out)])
            best = [-1] * len(out[-1])
        last = len(positions) - tail - 1
        for p, word in enumerate(positions):
            if word >= 0 and min(p - head, last - p) > best[word]:
                best[word], out[-1][word] = min(p - head, last - p), tags[p]
    if len(out) != len(n_words):
        raise DataError(f"evaluation features hold {len(out)} rows, the split {len(n_words)}")
    return out


def predict(model: Any, tokenizer: Any, task: Task, split: Any, hp: dict,
            precision: str = "fp32") -> list[list[str]]:
    """Predicted tag names per word for every canonical row of `split`, in row order."""
    from xtl.features import features  # here: xtl.features imports the registry

    feats = features(task, split, tokenizer, hp, train=False)
    predicted = window_tags(model, tokenizer, task, feats, hp, precision)
    head, tail = special_template(tokenizer)
    n_words = [len(t) for t in split.rows["tokens"]]
    ids = word_tags(n_words, feats["window"], feats["word_index"], predicted, len(head),
                    len(tail))
    names = tag_names(split.rows)
    fallback = fallback_tag(names)
    unseen = sum(t is None or t >= len(names) for row in ids for t in row)
    if unseen:
        print(f"NOTE {split.task}/{split.language}/{split.split}: {unseen} of {sum(n_words)} "
              f"words have no sub-token (or an untrained tag id); predicted {fallback!r}")
    return [[names[t] if t is not None and t < len(names) else fallback for t in row]
            for row in ids]


@register_format
class Tagging(Format):
    """One tag per word, from the word's first (or content) sub-token, over windows."""

    name, canonical_fields = FORMAT, CANONICAL_FIELDS
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
    # a target fine-tunes on rows no intermediate stage trains on (xtl.synth.common)
    train_task="synth-ner_target-train",
    description="Synthetic multilingual NER (xtl.synth.ner) in the PAN-X Hub schema; open "
                "vocabulary (no evaluation name is ever trained on)",
))
register(target_train(synth_ner, dataset_generator("ner", train_part="target")))
