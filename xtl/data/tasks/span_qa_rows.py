"""Extractive (span) QA rows: the canonical SQuAD-schema row, its checks and the references
a QA metric takes.

Canonical row: `{"id", "context", "question", "answers": {"text": [...], "answer_start": [...]}}`
(the SQuAD schema; empty lists = no answer, allowed only for SQuAD 2.0-style tasks).

Several loaders strip the context but keep `answer_start` (docs/data.md section 2): `canonicalize`
verifies every start and re-locates stale ones. A config shared by several languages (no
"{language}" in the task's config, e.g. TyDi QA GoldP) is split by the row id's language prefix.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets

from xtl.core.errors import DataError, unknown
from xtl.data.tasks import Task

CANONICAL_FIELDS = ("context", "question", "answers")

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
    """Plan-time check of a mirror's files (`xtl.data.sources.check_available`): a mixed-language
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
    """`{"id", "answers": [gold texts]}` per row, in row order, as `metrics.score` takes
    them for QA metrics (an empty list: an unanswerable question)."""
    return [{"id": row_id, "answers": list(a["text"])}
            for row_id, a in zip(rows["id"], rows["answers"], strict=True)]
