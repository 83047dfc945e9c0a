"""Extractive (span) QA, SQuAD style: rows, doc-stride windows, start/end head, answer decoding.

Canonical row: `{"id", "context", "question", "answers": {"text": [...], "answer_start": [...]}}`
(the SQuAD schema; empty lists = no answer, allowed only for SQuAD 2.0-style tasks).

Training features are doc-stride windows over the context (question first, context second) with
the answer's start/end token, or the first token (CLS) when the window does not hold the answer.
Evaluation features keep, per window, the row id and the context's character offsets (None
outside the context); `postprocess` maps window logits back to an answer text per row, and
`predict` runs the whole evaluation path (features, logits, decoding) for one split.

Several loaders strip the context but keep `answer_start` (docs/data.md section 2): `canonicalize`
verifies every start and re-locates stale ones. A config shared by several languages (no
"{language}" in the task's config, e.g. TyDi QA GoldP) is split by the row id's language prefix.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn

from xtl.errors import ConfigError, DataError, unknown
from xtl.precision import autocast
from xtl.readers import squad as squad_json
from xtl.synth import dataset_generator, target_train
from xtl.tasks import Format, Task, register, register_format

FORMAT = "span_qa"
CANONICAL_FIELDS = ("context", "question", "answers")

# The columns the model reads; the collator drops everything else (ids, offsets).
MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids", "start_positions",
              "end_positions")
CLS_INDEX = 0
# Longest question in tokens, as XTREME's run_squad.py (`max_query_length`).
MAX_QUERY_LENGTH = 64
# A few unusable rows are counted in the report; more than this share means a systematic
# problem (wrong columns, wrong source) and is an error naming the rows.
MAX_UNUSABLE_FRACTION = 0.01
REPAIRED = "repaired: answer_start re-located"
NOT_FOUND = "answer text not found in the context"
NO_ANSWER = "no gold answer (the task requires one)"
MALFORMED = "malformed answers (text and answer_start lists differ, or empty text)"
EMPTY_TEXT = "empty question or context"
# A config holding every language (TyDi QA GoldP): each split keeps its language's rows, as
# XTREME splits the GoldP dev file per language and trains on the English part of train
# (docs/data.md section 2). The others are counted per language under this prefix: neither
# kept nor unusable.
LEFT_OUT = "left out: other language "
_OK = ""

# TyDi QA ids start with the language's English name (e.g. `arabic-2387335860751143628-1`).
ID_PREFIX_LANGUAGES = {
    "arabic": "ar", "bengali": "bn", "english": "en", "finnish": "fi", "indonesian": "id",
    "japanese": "ja", "korean": "ko", "russian": "ru", "swahili": "sw", "telugu": "te",
    "thai": "th",
}
CANONICAL_FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "context": datasets.Value("string"),
    "question": datasets.Value("string"),
    # Sequence (not List): also datasets 3.x, which the kit still allows
    "answers": {"text": datasets.Sequence(datasets.Value("string")),
                "answer_start": datasets.Sequence(datasets.Value("int32"))},
})


# --------------------------------------------------------------------------- canonical rows

def allows_no_answer(task: Task) -> bool:
    """SQuAD 2.0-style tasks (metric `squad_v2`) have unanswerable questions."""
    return task.metric == "squad_v2"


def relocate(context: str, text: str, start: int) -> int | None:
    """Where `text` sits in `context`: `start` if it is right, else the nearest occurrence.

    Loaders that strip the context but keep `answer_start` leave starts that are too large by
    the stripped length; the nearest occurrence (ties: the earlier one) is the intended one.
    """
    if start >= 0 and context.startswith(text, start):
        return start
    best = None
    pos = context.find(text)
    while pos != -1:
        if best is None or abs(pos - start) < abs(best - start):
            best = pos
        elif pos > start:
            break  # later occurrences are only further away
        pos = context.find(text, pos + 1)
    return best


def _check_answers(context: str, answers: Mapping, require: bool) -> tuple[str, dict]:
    """(status, answers with every start verified) for one row."""
    texts, starts = list(answers["text"]), list(answers["answer_start"])
    if len(texts) != len(starts) or any(t == "" for t in texts):
        return MALFORMED, answers
    if not texts:
        return (NO_ANSWER if require else _OK), {"text": [], "answer_start": []}
    fixed = [relocate(context, t, s) for t, s in zip(texts, starts, strict=True)]
    if any(f is None for f in fixed):
        return NOT_FOUND, answers
    status = REPAIRED if fixed != starts else _OK
    return status, {"text": texts, "answer_start": fixed}


def _mixes_languages(task: Task) -> bool:
    """One config for several languages (TyDi QA GoldP): rows are told apart by id prefix."""
    return "{language}" not in task.config and len(task.languages) > 1


def _id_language(task: Task, split: str, language: str, row_id: str) -> str:
    prefix = row_id.split("-", 1)[0].lower()
    if prefix not in ID_PREFIX_LANGUAGES:
        raise DataError(f"{task.name}/{language}/{split}: row {row_id!r} has no known language "
                        f"prefix (expected one of {sorted(ID_PREFIX_LANGUAGES)}), so it cannot be "
                        "assigned to a language of this mixed-language config")
    return ID_PREFIX_LANGUAGES[prefix]


def _source_columns(task: Task, raw: datasets.Dataset, split: str, language: str) -> dict:
    cols = {canon: task.fields.get(canon, canon) for canon in ("id", *CANONICAL_FIELDS)}
    if cols["id"] not in raw.column_names and "id" not in task.fields:
        cols["id"] = None  # no id column: positional ids, as the generic adapter
    missing = [c for c in cols.values() if c is not None and c not in raw.column_names]
    if missing:
        raise DataError(f"{task.name}/{language}/{split}: columns {missing} missing; the source "
                        f"has {raw.column_names}")
    return cols


def canonicalize(task: Task, raw: datasets.Dataset, split: str, language: str
                 ) -> tuple[datasets.Dataset, dict[str, int]]:
    """Canonical rows with every answer start verified; re-located starts are counted.

    Returns (rows, report): "repaired: ..." keys count kept rows, "left out: other language
    <code>" the rows of other languages in a mixed-language config, the others unusable rows.
    A mixed-language source without a single row of `language` is an error naming what it has.
    """
    if language not in task.languages:
        err = unknown(f"language of task {task.name!r}", language, task.languages, DataError)
        raise DataError(f"{task.name}/{language}/{split}: {err}")
    cols = _source_columns(task, raw, split, language)
    mixed, require = _mixes_languages(task), not allows_no_answer(task)
    prefix = f"{language}-{split}-"

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {"id": [], "context": [], "question": [], "answers": [],
                                "status": []}
        ids = batch[cols["id"]] if cols["id"] else [f"{prefix}{i:07d}" for i in indices]
        for row_id, context, question, answers in zip(
                ids, batch[cols["context"]], batch[cols["question"]], batch[cols["answers"]],
                strict=True):
            row_id = str(row_id)
            row_language = _id_language(task, split, language, row_id) if mixed else language
            if row_language != language:
                status = LEFT_OUT + row_language
            elif not (context or "").strip() or not (question or "").strip():
                status = EMPTY_TEXT
            else:
                status, answers = _check_answers(context, answers, require)
            out["id"].append(row_id)
            out["context"].append(context or "")
            out["question"].append(question or "")
            out["answers"].append(answers)
            out["status"].append(status)
        return out

    mapped = raw.map(convert, batched=True, with_indices=True, remove_columns=raw.column_names,
                     features=datasets.Features({**CANONICAL_FEATURES,
                                                 "status": datasets.Value("string")}),
                     desc=f"{task.name}/{language}/{split}")
    statuses = mapped["status"]
    counts = Counter(s for s in statuses if s != _OK)
    keep = [i for i, s in enumerate(statuses) if s == _OK or s.startswith("repaired:")]
    _check_some_in_language(task, split, language, counts, len(statuses))
    _check_unusable(task, split, language, mapped, statuses, counts, len(keep))
    rows = mapped if len(keep) == len(mapped) else mapped.select(keep)
    rows = rows.remove_columns("status")
    _check_unique_ids(task, split, language, rows["id"])
    return rows, dict(sorted(counts.items()))


def _check_some_in_language(task: Task, split: str, language: str, counts: Counter,
                            total: int) -> None:
    other = {k[len(LEFT_OUT):]: n for k, n in counts.items() if k.startswith(LEFT_OUT)}
    if total and sum(other.values()) == total:
        _none_in_language(task, split, language, total, other)


def _none_in_language(task: Task, split: str, language: str, total: int,
                      found: Mapping[str, int]) -> None:
    has = ", ".join(f"{code}: {n}" for code, n in sorted(found.items()))
    raise DataError(f"{task.name}/{language}/{split}: none of the {total} rows read is in "
                    f"{language!r} (this source holds every language, told apart by the row "
                    f"id's prefix; it has {has}); the source lacks this language's rows")


def check_source(task: Task, files: list, split: str, language: str) -> None:
    """Plan-time check of a mirror's files (`xtl.sources.check_available`): a mixed-language
    config has rows of `language`, from the id column alone (read once per file set)."""
    if not _mixes_languages(task):
        return
    stamp = tuple((str(f), Path(f).stat().st_mtime_ns) for f in files)
    found = _id_languages(stamp, task.fields.get("id", "id"))
    if found is not None and not dict(found).get(language):
        _none_in_language(task, split, language, sum(n for _, n in found), dict(found))


@functools.lru_cache(maxsize=64)
def _id_languages(stamp: tuple, column: str) -> tuple | None:
    """((language, rows), ...) by id prefix; None when the ids cannot be read here (no such
    column: loading the split names the problem)."""
    import pyarrow
    import pyarrow.parquet as pq

    try:
        ids = pq.read_table([f for f, _ in stamp], columns=[column]).column(column).to_pylist()
    except (KeyError, OSError, pyarrow.ArrowException):
        return None
    prefixes = Counter(str(i).split("-", 1)[0].lower() for i in ids)
    return tuple((ID_PREFIX_LANGUAGES.get(p, p), n) for p, n in prefixes.items())


def _check_unusable(task: Task, split: str, language: str, mapped: datasets.Dataset,
                    statuses: list[str], counts: Counter, kept: int) -> None:
    bad = {k: n for k, n in counts.items()
           if not k.startswith("repaired:") and not k.startswith(LEFT_OUT)}
    total = kept + sum(bad.values())
    if not bad or sum(bad.values()) <= MAX_UNUSABLE_FRACTION * total:
        return
    ids = mapped["id"]
    first = [ids[i] for i, s in enumerate(statuses) if s in bad][:5]
    raise DataError(f"{task.name}/{language}/{split}: {sum(bad.values())} of {total} rows are "
                    f"unusable ({bad}), more than {MAX_UNUSABLE_FRACTION:.0%}; first rows: "
                    f"{first}. Check the source and the task's fields")


def _check_unique_ids(task: Task, split: str, language: str, ids: list[str]) -> None:
    # Predictions are keyed by row id: two rows with one id would share an answer.
    if len(set(ids)) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise DataError(f"{task.name}/{language}/{split}: row id {dup!r} occurs more than once")


def references(rows: Any) -> list[dict]:
    """`{"id", "answers": [gold texts]}` per row, in row order, as `xtl.metrics.score` takes
    them for QA metrics (an empty list: an unanswerable question)."""
    return [{"id": row_id, "answers": list(a["text"])}
            for row_id, a in zip(rows["id"], rows["answers"], strict=True)]


# --------------------------------------------------------------------------- features

def _question_limit(tokenizer: Any, hp: dict) -> int:
    room = hp["max_length"] - tokenizer.num_special_tokens_to_add(pair=True) - hp["doc_stride"]
    if room < 2:
        raise ConfigError(f"doc_stride {hp['doc_stride']} leaves no room for the question in "
                          f"max_length {hp['max_length']}; lower doc_stride")
    # The tokenizer needs stride < the context's room, so the question must stay short.
    return min(MAX_QUERY_LENGTH, room - 1)


def _clip_questions(questions: list[str], tokenizer: Any, limit: int) -> list[str]:
    """Cut questions longer than `limit` tokens at a token boundary (rare; run_squad does too)."""
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    out = list(questions)
    for i, offsets in enumerate(enc["offset_mapping"]):
        n = limit
        while len(offsets) > limit and n > 0:
            out[i] = questions[i][:offsets[n - 1][1]]
            again = tokenizer(out[i], add_special_tokens=False)["input_ids"]
            if len(again) <= limit:
                break
            n -= 1  # re-tokenising the cut text gave more tokens: cut one more
    return out


def _context_range(sequence_ids: list) -> tuple[int, int]:
    """First and last token index of the context (sequence 1) in one window."""
    first = sequence_ids.index(1)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
    return first, last


def _answer_tokens(offsets: list, first: int, last: int, answers: Mapping) -> tuple[int, int]:
    """(start, end) token of the first answer in this window, or (CLS, CLS)."""
    if not answers["text"]:
        return CLS_INDEX, CLS_INDEX
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    span = np.asarray(offsets[first:last + 1])
    if span[0, 0] > start_char or span[-1, 1] < end_char:
        return CLS_INDEX, CLS_INDEX
    # first token ending after the start char; last token starting before the end char
    start = first + int(np.searchsorted(span[:, 1], start_char, side="right"))
    end = first + int(np.searchsorted(span[:, 0], end_char, side="left")) - 1
    return (start, end) if start <= end else (CLS_INDEX, CLS_INDEX)


def featurize(batch: dict[str, list], tokenizer: Any, hp: dict, train: bool = False) -> dict:
    """Doc-stride windows of a batch of canonical rows (more windows than rows for long ones)."""
    prefix = hp["input_prefix"]
    questions = [prefix + q.lstrip() for q in batch["question"]]
    questions = _clip_questions(questions, tokenizer, _question_limit(tokenizer, hp))
    enc = tokenizer(questions, batch["context"], truncation="only_second",
                    max_length=hp["max_length"], stride=hp["doc_stride"],
                    return_overflowing_tokens=True, return_offsets_mapping=True)
    samples = enc["overflow_to_sample_mapping"]
    out = {k: enc[k] for k in MODEL_KEYS if k in enc}
    if train:
        out["start_positions"], out["end_positions"] = [], []
    else:
        out["example_id"], out["offset_mapping"] = [], []
    for w, sample in enumerate(samples):
        offsets = enc["offset_mapping"][w]
        first, last = _context_range(enc.sequence_ids(w))
        if train:
            start, end = _answer_tokens(offsets, first, last, batch["answers"][sample])
            out["start_positions"].append(start)
            out["end_positions"].append(end)
        else:
            out["example_id"].append(batch["id"][sample])
            # list slices, not a loop over tokens: Arrow stores the (start, end) tuples
            out["offset_mapping"].append([None] * first + offsets[first:last + 1]
                                         + [None] * (len(offsets) - last - 1))
    return out


class SpanCollator:
    """Pads the model's columns per batch; drops example ids and offsets (the model does not
    read them; evaluation takes them from the features dataset, in loader order)."""

    def __init__(self, tokenizer: Any):
        from transformers import DataCollatorWithPadding  # lazy: registry imports stay light

        self.pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        return dict(self.pad([{k: f[k] for k in MODEL_KEYS if k in f} for f in features]))


def collator(tokenizer: Any) -> SpanCollator:
    return SpanCollator(tokenizer)


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


# --------------------------------------------------------------------------- answers

def _offset_table(offsets: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(char starts, char ends, in-context mask), each (windows, longest window)."""
    if not isinstance(offsets, pa.Array | pa.ChunkedArray):
        offsets = pa.array(offsets, type=pa.list_(pa.list_(pa.int64())))
    if isinstance(offsets, pa.ChunkedArray):
        offsets = offsets.combine_chunks()
    lengths = offsets.value_lengths().to_numpy(zero_copy_only=False)
    tokens = offsets.flatten()  # one entry per token; null outside the context
    valid = tokens.is_valid().to_numpy(zero_copy_only=False)
    pairs = tokens.flatten().to_numpy(zero_copy_only=False).reshape(-1, 2)
    n_windows, width = len(lengths), int(lengths.max(initial=0))
    row = np.repeat(np.arange(n_windows), lengths)
    col = np.arange(len(valid)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    starts = np.full((n_windows, width), -1, dtype=np.int64)
    ends = np.full((n_windows, width), -1, dtype=np.int64)
    mask = np.zeros((n_windows, width), dtype=bool)
    starts[row[valid], col[valid]] = pairs[:, 0]
    ends[row[valid], col[valid]] = pairs[:, 1]
    mask[row[valid], col[valid]] = True
    return starts, ends, mask


def _logit_matrix(logits: Any, n_windows: int, width: int) -> np.ndarray:
    """Window logits as a (windows, width) float array; -inf where a window has no token."""
    out = np.full((n_windows, width), -np.inf, dtype=np.float32)
    if isinstance(logits, torch.Tensor):
        logits = logits.detach().float().cpu().numpy()
    if isinstance(logits, np.ndarray) and logits.ndim == 2:
        n = min(width, logits.shape[1])
        out[:, :n] = logits[:n_windows, :n]
        return out
    for w, row in enumerate(logits):
        row = np.asarray(row, dtype=np.float32)[:width]
        out[w, :len(row)] = row
    return out


def _column(data: Any, name: str) -> Any:
    if isinstance(data, datasets.Dataset):
        return data.with_format("arrow")[name] if name == "offset_mapping" else data[name]
    if isinstance(data, Mapping):
        return data[name]
    return [r[name] for r in data]


def _best_spans(start: np.ndarray, end: np.ndarray, mask: np.ndarray, n_best: int,
                max_answer_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window: best score (start+end) and its start/end token over the n-best candidates."""
    s = np.where(mask, start, -np.inf)
    e = np.where(mask, end, -np.inf)
    n_windows, width = s.shape
    k = max(1, min(n_best, width))
    top_s = np.argpartition(-s, k - 1, axis=1)[:, :k]
    top_e = np.argpartition(-e, k - 1, axis=1)[:, :k]
    score = (np.take_along_axis(s, top_s, 1)[:, :, None]
             + np.take_along_axis(e, top_e, 1)[:, None, :])
    length = top_e[:, None, :] - top_s[:, :, None]
    ok = (length >= 0) & (length < max_answer_length) & np.isfinite(score)
    score = np.where(ok, score, -np.inf).reshape(n_windows, k * k)
    flat = score.argmax(1)
    rows = np.arange(n_windows)
    return score[rows, flat], top_s[rows, flat // k], top_e[rows, flat % k]


def postprocess(rows: Any, features: Any, start_logits: Any, end_logits: Any, n_best: int = 20,
                max_answer_length: int = 30, null_threshold: float | None = None
                ) -> dict[str, str]:
    """The answer text per row id from window logits (SQuAD-style n-best decoding).

    Spans lie inside the context, end >= start, at most `max_answer_length` tokens; the best
    start+end score over all windows of a row wins. With `null_threshold` (SQuAD 2.0), a row
    answers "" when its null score (CLS start+end, min over windows) beats the best span by
    more than the threshold. A row without any valid span answers "".
    """
    ids, contexts = list(_column(rows, "id")), list(_column(rows, "context"))
    position = {row_id: i for i, row_id in enumerate(ids)}
    try:
        example = np.array([position[e] for e in _column(features, "example_id")], dtype=np.int64)
    except KeyError as err:
        raise DataError(f"a feature window belongs to row {err.args[0]!r}, which is not among "
                        "the rows given to postprocess") from None
    char_start, char_end, mask = _offset_table(_column(features, "offset_mapping"))
    n_windows, width = mask.shape
    start = _logit_matrix(start_logits, n_windows, width)
    end = _logit_matrix(end_logits, n_windows, width)
    best, tok_s, tok_e = _best_spans(start, end, mask, n_best, max_answer_length)
    null = np.full(len(ids), np.inf)
    np.minimum.at(null, example, start[:, CLS_INDEX] + end[:, CLS_INDEX])
    order = np.lexsort((-best, example))  # by row, best window first
    rows_seen, first = np.unique(example[order], return_index=True)
    answers = dict.fromkeys(ids, "")
    for i, w in zip(rows_seen.tolist(), order[first].tolist(), strict=True):
        if not np.isfinite(best[w]):
            continue
        if null_threshold is not None and null[i] - best[w] > null_threshold:
            continue
        answers[ids[i]] = contexts[i][char_start[w, tok_s[w]]:char_end[w, tok_e[w]]]
    return answers


@torch.inference_mode()
def window_logits(model: Any, tokenizer: Any, task: Task, feats: datasets.Dataset, hp: dict,
                  precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """(start, end) logits of every evaluation window, (windows, longest window), -inf padded."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    inputs = feats.select_columns([k for k in MODEL_KEYS if k in feats.column_names])
    loader = torch.utils.data.DataLoader(inputs, batch_size=2 * hp["batch_size"],
                                         collate_fn=collator(tokenizer))
    lengths = pc.list_value_length(feats.with_format("arrow")["input_ids"]).to_numpy()
    width = int(lengths.max(initial=0))
    start = np.full((len(feats), width), -np.inf, dtype=np.float32)
    end = np.full((len(feats), width), -np.inf, dtype=np.float32)
    at = 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(precision, device):
            logits = model(task.name, batch).float().cpu().numpy()
        n, t = logits.shape[:2]
        start[at:at + n, :t], end[at:at + n, :t] = logits[..., 0], logits[..., 1]
        at += n
    model.train(was_training)
    return start, end


def predict(model: Any, tokenizer: Any, task: Task, split: Any, hp: dict,
            precision: str = "fp32") -> list[str]:
    """The answer text for every canonical row of `split` (an `xtl.sources.Split`), in order."""
    from xtl.features import features  # here: xtl.features imports the registry

    feats = features(task, split, tokenizer, hp, train=False)
    start, end = window_logits(model, tokenizer, task, feats, hp, precision)
    threshold = 0.0 if allows_no_answer(task) else None
    answers = postprocess(split.rows, feats, start, end,
                          max_answer_length=hp["max_answer_length"], null_threshold=threshold)
    return [answers[row_id] for row_id in split.rows["id"]]


@register_format
class SpanQA(Format):
    """An answer span in the context (or none), decoded over overlapping windows."""

    name, canonical_fields = FORMAT, CANONICAL_FIELDS
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
# load in their own language (`xtl.sources._load_combined` passes the combined task's language
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
    # a target fine-tunes on rows no intermediate stage trains on (xtl.synth.common)
    train_task="synth-qa_target-train",
    description="Synthetic multilingual extractive QA (xtl.synth.qa) in the SQuAD/XQuAD schema",
))
register(target_train(synth_qa, dataset_generator("qa", train_part="target")))
