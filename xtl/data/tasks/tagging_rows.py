"""Token tagging rows: the canonical row, the task's tag set, and the references a tagging
metric takes.

Canonical row: `{"id": str, "tokens": list[str], "tags": list[int]}`. The `tags` column is a
`Sequence(ClassLabel(names=<tag set>))`, so rows carry their tag names: `references(rows)` and
`predict` name tags from it. Source tags are mapped to the task's tag set BY NAME (the UD Hub
repo orders its 18 UPOS names differently from google/xtreme's 17); the tag `_` marks a token
nobody can be trained or scored on (a multi-word token or a word with no form/UPOS): such
tokens are dropped and the rows counted as repaired; a tag outside the tag set is an error.

Tag sets: a task's `label_names`; a task with an open tag set (CCG) takes its names from the
rows' ClassLabel (built by its raw reader) and its `label_names` only size the head.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets

from xtl.core.errors import DataError
from xtl.data.tasks import Task

UNUSABLE = "_"

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
    """Gold tag names per word, per row: what `xtl.evaluation.metrics.score` takes for tagging."""
    names = tag_names(rows)
    return [[names[t] for t in tags] for tags in rows["tags"]]


def fallback_tag(names: Sequence[str]) -> str:
    """The tag of a word the model cannot see: no entity (NER), "other" (UPOS), else the first."""
    return next((t for t in ("O", "X") if t in names), names[0])
