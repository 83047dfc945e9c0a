"""Mewsli-X release files (google-research `dense_representations_for_entity_retrieval/mel`,
`get-mewsli-x.sh` output, docs/data.md section 3) -> the dual-encoder rows of
xtl/data/tasks/dual_encoder.py.

Files under the task folder (the release's `mewsli_x/output/dataset/`):
- `candidate_set_entities.jsonl`: one Entity a line {entity_id, title, description,
  sentence_spans, description_language, description_url}: the candidate pool (~1M, 50
  languages). A candidate is encoded as (title, description); its id is the Wikidata QID.
- `wikinews_mentions-{dev,test}.jsonl`: ContextualMentions {context: {document_id, language,
  text, sentence_spans, ...}, mentions: [{example_id, mention_span: {start, end, text},
  entity_id, ...}]}, all 11 languages in one file (the community copy's per-language
  `wikinews_mentions/<lang>/<split>.jsonl` is read instead where present).
- `wikipedia_pairs-{train,dev}.jsonl`: English MentionEntityPair {contextual_mention:
  {context, mention}, entity: Entity}: the training data.
A mention is encoded as (mention text, the context sentences its span overlaps): the span
survives truncation and the context stays local. Its one relevant candidate is its entity.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xtl.core.errors import DataError
from xtl.data.readers import text_lines

CANDIDATES = "candidate_set_entities.jsonl"
PARTS = {"train": "train", "validation": "dev", "test": "test"}  # canonical -> release name


def _part(split: str, allowed: tuple[str, ...]) -> str:
    if split not in allowed:
        raise DataError(f"Mewsli-X has no {split!r} split here; expected one of {list(allowed)}")
    return PARTS[split]


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, JSON object) of every non-empty line."""
    if not path.is_file():
        raise DataError(f"raw file {str(path)!r} does not exist (Mewsli-X: run get-mewsli-x.sh "
                        "and point raw_dir at the folder holding mewslix/)")
    for n, line in text_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{n}:{err.colno}: not valid JSON: {err.msg}") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{n}: expected a JSON object, got {type(record).__name__}")
        yield n, record


def _field(record: dict, dotted: str, where: str, kind: type = str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise DataError(f"{where}: required field {dotted!r} is missing")
        value = value[part]
    if not isinstance(value, kind) or (kind is str and not value):
        raise DataError(f"{where}: field {dotted!r} must be a non-empty {kind.__name__}, "
                        f"got {value!r}")
    return value


def _entity(record: dict, where: str) -> dict:
    return {"id": _field(record, "entity_id", where), "title": _field(record, "title", where),
            "description": _field(record, "description", where),
            "language": _field(record, "description_language", where)}


def mention_context(context: dict, start: int, end: int, where: str) -> str:
    """The context sentences that overlap [start, end); the whole text where none does."""
    text = _field(context, "text", f"{where} (context.text is empty in the released "
                                   "*_no_text files: get-mewsli-x.sh fills it)")
    if not 0 <= start < end <= len(text):
        raise DataError(f"{where}: mention span [{start}, {end}) is outside the "
                        f"{len(text)}-character context")
    spans = [(s["start"], s["end"]) for s in context.get("sentence_spans") or []
             if isinstance(s, dict) and "start" in s and "end" in s]
    hit = [(s, e) for s, e in spans if s < end and start < e]
    return text[min(s for s, _ in hit):max(e for _, e in hit)].strip() if hit else text


def _mention_row(context: dict, mention: dict, where: str) -> dict:
    span = _field(mention, "mention_span", where, dict)
    start, end = span.get("start"), span.get("end")
    if not isinstance(start, int) or not isinstance(end, int):
        raise DataError(f"{where}: mention_span needs integer 'start' and 'end', got {span!r}")
    entity = _field(mention, "entity_id", where)
    return {"id": _field(mention, "example_id", where),
            "query": _field(span, "text", f"{where} mention_span"),
            "query_context": mention_context(context, start, end, where),
            "candidate": None, "candidate_context": None, "candidate_id": None,
            "candidate_language": None, "gold": [entity]}


@functools.lru_cache(maxsize=1)
def _candidate_columns(path: str, mtime_ns: int, size: int) -> dict[str, list]:
    # One parse per file version in a process: every language's split shares the pool.
    columns: dict[str, list] = {"id": [], "title": [], "description": [], "language": []}
    first: dict[str, int] = {}
    for n, record in _records(Path(path)):
        entity = _entity(record, f"{path}:{n}")
        if entity["id"] in first:
            raise DataError(f"{path}:{n}: entity {entity['id']!r} is listed twice (first at "
                            f"line {first[entity['id']]}); the candidate set maps ids 1:1")
        first[entity["id"]] = n
        for key, value in entity.items():
            columns[key].append(value)
    if not columns["id"]:
        raise DataError(f"{path}: the candidate set is empty")
    return columns


def candidates(folder: Path) -> dict[str, list]:
    """The candidate set as columns {id, title, description, language} (cached per file)."""
    path = Path(folder) / CANDIDATES
    if not path.is_file():
        raise DataError(f"raw file {str(path)!r} does not exist (the Mewsli-X candidate set)")
    stat = os.stat(path)
    return _candidate_columns(str(path), stat.st_mtime_ns, stat.st_size)


def mention_file(folder: Path, split: str, language: str) -> Path:
    part = _part(split, ("validation", "test"))
    per_language = Path(folder) / "wikinews_mentions" / language / f"{part}.jsonl"
    return per_language if per_language.is_file() else Path(folder) / \
        f"wikinews_mentions-{part}.jsonl"


def mention_files(folder: Path, split: str, language: str) -> list[Path]:
    """What `read_mentions` reads, for a plan-time check (`Task.raw_files`)."""
    if split not in ("validation", "test"):
        return []  # the reader names this error itself
    return [mention_file(folder, split, language), Path(folder) / CANDIDATES]


def pair_files(folder: Path, split: str, language: str) -> list[Path]:
    """What `read_pairs` reads, for a plan-time check (`Task.raw_files`)."""
    if split not in ("train", "validation"):
        return []
    return [Path(folder) / f"wikipedia_pairs-{PARTS[split]}.jsonl"]


def read_mentions(folder: Path, split: str, language: str) -> tuple[dict[str, list], list[Path]]:
    """WikiNews mentions of `language` (queries) + the whole candidate set (the pool), as
    columns of dual-encoder rows; a gold entity missing from the candidate set is an error."""
    path = mention_file(folder, split, language)
    pool = candidates(folder)
    known = set(pool["id"])
    queries = []
    for n, record in _records(path):
        where = f"{path}:{n}"
        context = _field(record, "context", where, dict)
        if _field(context, "language", f"{where} context") != language:
            continue
        for m, mention in enumerate(_field(record, "mentions", where, list)):
            row = _mention_row(context, mention, f"{where} mentions[{m}]")
            if row["gold"][0] not in known:
                raise DataError(f"{where} mentions[{m}] (example {row['id']!r}): entity "
                                f"{row['gold'][0]!r} is not in the candidate set "
                                f"{str(Path(folder) / CANDIDATES)!r}")
            queries.append(row)
    if not queries:
        raise DataError(f"{path}: no mentions in language {language!r}")
    columns = {key: [q[key] for q in queries] for key in queries[0]}
    n_pool = len(pool["id"])
    for key, value in (("id", pool["id"]), ("query", [None] * n_pool),
                       ("query_context", [None] * n_pool), ("candidate", pool["title"]),
                       ("candidate_context", pool["description"]), ("candidate_id", pool["id"]),
                       ("candidate_language", pool["language"]), ("gold", [[]] * n_pool)):
        columns[key] = columns[key] + list(value)
    return columns, [path, Path(folder) / CANDIDATES]


def read_pairs(folder: Path, split: str, language: str) -> tuple[list[dict], list[Path]]:
    """English Wikipedia (mention, entity) pairs: each row both a query and its candidate."""
    if language != "en":
        raise DataError(f"Mewsli-X Wikipedia pairs are English only, not {language!r}")
    path = Path(folder) / f"wikipedia_pairs-{_part(split, ('train', 'validation'))}.jsonl"
    out = []
    for n, record in _records(path):
        where = f"{path}:{n}"
        mention = _field(record, "contextual_mention", where, dict)
        row = _mention_row(_field(mention, "context", where, dict),
                           _field(mention, "mention", where, dict), where)
        entity = _entity(_field(record, "entity", where, dict), f"{where} entity")
        if entity["id"] != row["gold"][0]:
            raise DataError(f"{where} (example {row['id']!r}): the mention's entity_id "
                            f"{row['gold'][0]!r} differs from the paired entity {entity['id']!r}")
        row.update(candidate=entity["title"], candidate_context=entity["description"],
                   candidate_id=entity["id"], candidate_language=entity["language"])
        out.append(row)
    if not out:
        raise DataError(f"{path}: no mention-entity pairs")
    return out, [path]
