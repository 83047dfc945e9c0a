"""Token tagging windows: features (one labelled sub-token per word) and prediction (a tag per
word, read back from the window that gives the word the most context).

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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import torch

from xtl.core.errors import ConfigError, DataError
from xtl.core.hparams import Hparams, Spec, one_of
from xtl.data.tasks import Task
from xtl.data.tasks.tagging_rows import fallback_tag, tag_names

IGNORE = -100  # label of positions that do not carry a word's tag
TAG_SUBTOKEN_RULES = ("first", "content")  # the `tag_subtoken` hyperparameter
TAG_SUBTOKEN = Spec("tag_subtoken", "first", (str,),
                    'the sub-token of a word that carries its tag: "first" (XTREME, jiant) or '
                    '"content" (v1: the first that is not a bare marker)',
                    one_of(TAG_SUBTOKEN_RULES), per_task=True, v1_value="content")
PADS = {"input_ids": None, "attention_mask": 0, "labels": IGNORE}  # None: the tokenizer's pad


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


def _room(tokenizer: Any, hp: Hparams) -> tuple[list[int], list[int], int, int]:
    head, tail = special_template(tokenizer)
    room = hp.max_length - len(head) - len(tail)
    if room < 2:
        raise ConfigError(f"max_length {hp.max_length} leaves no room for words")
    return head, tail, room, min(hp.doc_stride, room // 2)


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


def featurize(batch: dict[str, list], tokenizer: Any, hp: Hparams, train: bool = False) -> dict:
    """Labels at each word's `tag_subtoken` position; training: the first window per row,
    evaluation: every window with the word each labelled position belongs to (`word_index`,
    -1 elsewhere) and its window number."""
    head, tail, room, overlap = _room(tokenizer, hp)
    prefix = hp.input_prefix.split()  # e5-style prefixes: extra leading words, no labels
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
        firsts = _label_positions(words, ids, bare, hp.tag_subtoken)
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


# --------------------------------------------------------------------------- prediction

def window_tags(model: Any, tokenizer: Any, task: Task, feats: datasets.Dataset, hp: Hparams,
                precision: str = "fp32") -> list[list[int]]:
    """The argmax tag id at every position of every evaluation window, in window order."""
    from xtl.data.features import head_logits  # here: xtl.data.features imports the registry

    inputs = feats.select_columns(["input_ids", "attention_mask"])
    out: list[list[int]] = []
    for batch, logits in head_logits(model, task, inputs, collator(tokenizer), hp, precision):
        lengths = batch["attention_mask"].sum(1).tolist()
        out += [row[:n].tolist() for row, n in zip(logits.argmax(-1).cpu(), lengths, strict=True)]
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


def predict(model: Any, tokenizer: Any, task: Task, split: Any, hp: Hparams,
            precision: str = "fp32") -> list[list[str]]:
    """Predicted tag names per word for every canonical row of `split`, in row order."""
    from xtl.data.features import features  # here: xtl.data.features imports the registry

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
