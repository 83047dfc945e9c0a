"""Extractive (span) QA doc-stride windows: building them from rows, and decoding answer texts
back from their logits.

Training features are doc-stride windows over the context (question first, context second) with
the answer's start/end token, or the first token (CLS) when the window does not hold the answer.
Evaluation features keep, per window, the row id and the context's character offsets (None
outside the context); `postprocess` maps window logits back to an answer text per row, and
`predict` runs the whole evaluation path (features, logits, decoding) for one split.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from xtl.core.errors import ConfigError, DataError
from xtl.core.hparams import Hparams, Spec, above
from xtl.data.tasks import Task
from xtl.data.tasks.span_qa_rows import allows_no_answer

# The format's hyperparameters (xtl.core.hparams; tagging's windows use the stride too).
DOC_STRIDE = Spec("doc_stride", 128, (int,), "overlap between windows of a long context",
                  above(0), per_task=True)
MAX_ANSWER_LENGTH = Spec("max_answer_length", 30, (int,),
                         "longest answer span (tokens) at decoding", above(0), per_task=True)

# The columns the model reads; the collator drops everything else (ids, offsets).
MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids", "start_positions",
              "end_positions")
CLS_INDEX = 0
# Longest question in tokens, as XTREME's run_squad.py (`max_query_length`).
MAX_QUERY_LENGTH = 64


def _question_limit(tokenizer: Any, hp: Hparams) -> int:
    room = hp.max_length - tokenizer.num_special_tokens_to_add(pair=True) - hp.doc_stride
    if room < 2:
        raise ConfigError(f"doc_stride {hp.doc_stride} leaves no room for the question in "
                          f"max_length {hp.max_length}; lower doc_stride")
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


def featurize(batch: dict[str, list], tokenizer: Any, hp: Hparams, train: bool = False) -> dict:
    """Doc-stride windows of a batch of canonical rows (more windows than rows for long ones)."""
    prefix = hp.input_prefix
    questions = [prefix + q.lstrip() for q in batch["question"]]
    questions = _clip_questions(questions, tokenizer, _question_limit(tokenizer, hp))
    enc = tokenizer(questions, batch["context"], truncation="only_second",
                    max_length=hp.max_length, stride=hp.doc_stride,
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


def window_logits(model: Any, tokenizer: Any, task: Task, feats: datasets.Dataset, hp: Hparams,
                  precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """(start, end) logits of every evaluation window, (windows, longest window), -inf padded."""
    from xtl.data.features import head_logits  # here: xtl.data.features imports the registry

    inputs = feats.select_columns([k for k in MODEL_KEYS if k in feats.column_names])
    lengths = pc.list_value_length(feats.with_format("arrow")["input_ids"]).to_numpy()
    width = int(lengths.max(initial=0))
    start = np.full((len(feats), width), -np.inf, dtype=np.float32)
    end = np.full((len(feats), width), -np.inf, dtype=np.float32)
    at = 0
    for _, logits in head_logits(model, task, inputs, collator(tokenizer), hp, precision):
        logits = logits.float().cpu().numpy()
        n, t = logits.shape[:2]
        start[at:at + n, :t], end[at:at + n, :t] = logits[..., 0], logits[..., 1]
        at += n
    return start, end


def predict(model: Any, tokenizer: Any, task: Task, split: Any, hp: Hparams,
            precision: str = "fp32") -> list[str]:
    """The answer text for every canonical row of `split` (a `sources.Split`), in order."""
    from xtl.data.features import features  # here: xtl.data.features imports the registry

    feats = features(task, split, tokenizer, hp, train=False)
    start, end = window_logits(model, tokenizer, task, feats, hp, precision)
    threshold = 0.0 if allows_no_answer(task) else None
    answers = postprocess(split.rows, feats, start, end,
                          max_answer_length=hp.max_answer_length, null_threshold=threshold)
    return [answers[row_id] for row_id in split.rows["id"]]
