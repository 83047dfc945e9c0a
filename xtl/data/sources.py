"""Rows for (task, split, language) from the Hub, a Hub-layout mirror, raw release files, or a
generator.

Every source goes through the same adapter, so the rows a model sees do not depend on where
they came from. A mirror has the Hub's Parquet layout:
`<mirror>/<owner>/<repo>/<config>/<split>-*.parquet` (single-config repos use `data/`).
Raw release files (what the Hub lacks: BUCC, XTREME-R languages, ...) live under a raw root
(`raw_dir` in the experiment file; `XTL_RAW_DIR` wins) at each task's `raw_path`; a
`bundled` task's raw files ship inside xtl (`xtl.offline.samples`) and are read from there.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from xtl.core import smokecaps
from xtl.core.errors import DataError, unknown
from xtl.core.store import sha256_file
from xtl.data import generated
from xtl.data.tasks import Task, get, get_format
from xtl.offline import samples

MIRROR_ENV = "XTL_HUB_MIRROR"
RAW_ENV = "XTL_RAW_DIR"


@dataclass
class Split:
    """Canonical rows of one (task, split, language) and where they came from."""

    task: str
    split: str
    language: str
    rows: datasets.Dataset
    source: str  # "hub" | "mirror" | "raw" | "bundled" | "synthetic"
    location: str
    fingerprint: str
    unusable: dict[str, int] = field(default_factory=dict)

    def provenance(self) -> dict:
        return {"source": self.source, "location": self.location, "fingerprint": self.fingerprint,
                "rows": len(self.rows), "unusable": dict(self.unusable)}


def resolve_mirror(from_file: str | os.PathLike | None) -> Path | None:
    """The mirror in use: `XTL_HUB_MIRROR` wins over the experiment file's `mirror`."""
    return _directory(MIRROR_ENV, from_file, "mirror", "Hub mirror",
                      "; expected <mirror>/<owner>/<repo>/<config>/<split>-*.parquet")


def resolve_raw(from_file: str | os.PathLike | None) -> Path | None:
    """The raw root in use: `XTL_RAW_DIR` wins over the experiment file's `raw_dir`."""
    return _directory(RAW_ENV, from_file, "raw_dir", "raw data directory")


def _directory(env: str, from_file: str | os.PathLike | None, key: str, what: str,
               expected: str = "") -> Path | None:
    """The directory `env` names, else the experiment file's `key`; it must exist."""
    value = os.environ.get(env) or from_file
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        where = env if os.environ.get(env) else f"the experiment file's {key!r}"
        raise DataError(f"{what} {str(path)!r} (from {where}) is not a directory{expected}")
    return path


def _raw_root(task: Task, language: str, raw: Path | None) -> Path:
    if task.bundled:
        return samples.root() / task.raw_path
    root = raw if raw is not None else resolve_raw(None)
    if root is None:
        raise DataError(f"{task.name}/{language} comes from raw release files ({task.raw_path}/); "
                        f"set raw_dir in the experiment file or {RAW_ENV} to the directory that "
                        f"holds {task.raw_path}/")
    folder = root / task.raw_path
    if not folder.is_dir():
        raise DataError(f"{task.name}/{language}: {str(folder)!r} does not exist; the raw root "
                        f"{str(root)!r} must hold {task.raw_path}/")
    return folder


def check_available(task: Task, split: str, language: str, mirror: Path | None,
                    raw: Path | None = None) -> None:
    """Cheap preflight: the mirror or raw root has the files (the Hub is checked by --check)."""
    if language not in task.languages:
        raise unknown(f"language of task {task.name!r}", language, task.languages, DataError)
    source_split = task.source_split(split)
    for member in task.combine:
        check_available(get(member), source_split, language, mirror, raw)
    if task.from_raw(language):
        _check_raw_files(task, split, language, _raw_root(task, language, raw))
    elif task.generator is None and mirror is not None and not task.combine:
        files = _mirror_files(task, source_split, language, mirror)
        for path in files:
            parquet_rows(path)  # reads the footer only: a truncated download fails here
        # a format may look further (span QA: a mixed-language config has this language)
        check = get_format(task.format).check_source
        if check is not None:
            check(task, files, split, language)


def _check_raw_files(task: Task, split: str, language: str, folder: Path) -> None:
    """Every file the raw reader needs for this split and language is there (both sides of a
    Tatoeba pair, BUCC's sentence and gold files), named if not."""
    if task.raw_files is None:
        return
    needed = [Path(p) for p in task.raw_files(folder, split, language)]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        raise DataError(f"{task.name}/{language}/{split}: raw file{'s' * (len(missing) > 1)} "
                        f"{', '.join(missing)} missing in {str(folder)!r}; this language needs "
                        f"{', '.join(str(p.relative_to(folder)) for p in needed)} there")


def count_rows(task: Task, split: str, language: str, mirror: Path | None) -> int | None:
    """Rows of a split without loading it (generator sizes, Parquet metadata); None if unknown."""
    if task.combine:
        counts = [count_rows(get(m), task.source_split(split), language, mirror)
                  for m in task.combine]
        return None if None in counts else sum(counts)
    if task.generator is not None:
        return task.sizes.get(split)
    if task.bundled:  # a few hundred local rows: read them
        task.source_split(split)  # an unknown split is an error, as in `load`
        rows, _ = task.raw_reader(_raw_root(task, language, None), split, language)
        return len(rows)
    if mirror is None or task.from_raw(language):
        return None
    files = _mirror_files(task, task.source_split(split), language, mirror)
    return sum(parquet_rows(f) for f in files)


def parquet_rows(path: Path) -> int:
    """Rows of one Parquet file from its footer; a file that is not Parquet is a DataError."""
    import pyarrow
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path).num_rows
    except (OSError, pyarrow.ArrowException) as err:
        raise DataError(f"mirror file {str(path)!r} is not a readable Parquet file "
                        f"({type(err).__name__}: {err}); download it again") from None


def load(task: Task, split: str, language: str, mirror: Path | None = None, seed: int = 0,
         size: int | None = None, raw: Path | None = None) -> Split:
    """Canonical rows of `task` for one split and language; unusable rows counted, not hidden."""
    if language not in task.languages:
        raise unknown(f"language of task {task.name!r}", language, task.languages, DataError)
    source_split = task.source_split(split)
    if task.combine:
        return _load_combined(task, split, source_split, language, mirror, seed, size, raw)
    if task.from_raw(language):
        rows, files = task.raw_reader(_raw_root(task, language, raw), split, language)
        raw_rows = rows if isinstance(rows, datasets.Dataset) else datasets.Dataset.from_list(rows)
        source = "bundled" if task.bundled else "raw"
        location = str(files[0].parent) if files else task.raw_path
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.name.encode() + sha256_file(f).encode())
        fingerprint = digest.hexdigest()[:16]
    elif task.generator is not None:
        n = size or task.sizes.get(split, 0)
        raw_rows, fingerprint = generated.rows(task, language, split, n, seed)
        source = "synthetic"
        location = f"xtl.synth:{task.name}/{language}/{split}?n={n}&seed={seed}"
    elif mirror is not None:
        files = _mirror_files(task, source_split, language, mirror)
        try:
            raw_rows = datasets.load_dataset("parquet", split="rows",
                                             data_files={"rows": [str(f) for f in files]})
        except (OSError, ValueError, datasets.exceptions.DatasetGenerationError) as err:
            cache = _cache_problem(err, files)
            if cache:
                raise DataError(f"{task.name}/{language}/{split}: {cache}") from None
            raise DataError(f"{task.name}/{language}/{split}: the mirror files "
                            f"{', '.join(map(str, files))} cannot be read "
                            f"({type(err).__name__}: {err})") from None
        source, location = "mirror", str(files[0].parent)
        fingerprint = raw_rows._fingerprint
    else:
        config = task.hub_config(language) or None
        from xtl.core import hub

        what = f"{task.name}/{language}/{split}"
        hub.require_datasets([(what, task.hub_id)])
        try:
            raw_rows = datasets.load_dataset(task.hub_id, config, split=source_split)
        except ConnectionError as err:  # offline, and this config is not in the cache after all
            if hub.unavailable() is None:
                raise
            raise DataError(f"{what}: not in the `datasets` cache and the Hub is not usable "
                            f"here ({hub.unavailable()}): {type(err).__name__}: {err}. "
                            f"{hub.dataset_advice([task.hub_id])}") from None
        source, location = "hub", f"{task.hub_id}/{config or 'default'}:{source_split}"
        fingerprint = raw_rows._fingerprint
    # an empty source has nothing to canonicalise (a format's own mapping may need one row)
    rows, unusable = (canonicalize(task, raw_rows, split, language) if len(raw_rows)
                      else (raw_rows, {}))
    if len(rows) == 0:
        raise DataError(f"{task.name}/{language}/{split} from {location} has no usable rows "
                        f"(unusable: {unusable or 'none'}; {len(raw_rows)} rows read)")
    capped = smokecaps.cap_rows(rows)  # a smoke run (`xtl run --smoke`): the first N rows
    if len(capped) < len(rows):  # other rows, other fingerprint: caches never mix them
        fingerprint = hashlib.sha256(f"{fingerprint}:first{len(capped)}".encode()).hexdigest()[:16]
        rows = capped
    return Split(task.name, split, language, rows, source, location, fingerprint, unusable)


def _cache_problem(err: BaseException, files: list[Path]) -> str | None:
    """What to say when reading failed in the `datasets` cache, not in the mirror's files
    (an unwritable HOME or HF_DATASETS_CACHE), or None."""
    mirror_files = {str(Path(f).resolve()) for f in files}
    seen: set[int] = set()
    while err is not None and id(err) not in seen:  # the OSError may be wrapped
        seen.add(id(err))
        name = getattr(err, "filename", None)
        if isinstance(err, OSError) and name and str(Path(name).resolve()) not in mirror_files:
            return (f"the datasets cache cannot be written at {name!r} ({err.strerror or err}); "
                    "the mirror files themselves were not the problem. Make it writable or set "
                    "HF_DATASETS_CACHE to a writable directory")
        err = err.__cause__ or err.__context__
    return None


def _load_combined(task: Task, split: str, member_split: str, language: str,
                   mirror: Path | None, seed: int, size: int | None, raw: Path | None) -> Split:
    """The member tasks' rows of one split, concatenated; ids and unusable counts name the
    member they came from (a nested combination keeps its members' names)."""
    parts, unusable = [], {}
    for name in task.combine:
        member = get(name)
        if (member.format, tuple(member.label_names)) != (task.format, tuple(task.label_names)):
            raise DataError(f"task {task.name!r} combines {name!r}, whose format and labels "
                            f"({member.format}, {list(member.label_names)}) differ from its own "
                            f"({task.format}, {list(task.label_names)})")
        part = load(member, member_split, language, mirror, seed, size, raw)
        leaf = not member.combine
        rows = _tag_ids(part.rows, name) if leaf else part.rows
        parts.append((part, rows.select_columns(sorted(rows.column_names))))
        for reason, count in part.unusable.items():
            unusable[f"{reason} ({name})" if leaf else reason] = count
    features = parts[0][1].features
    rows = datasets.concatenate_datasets(
        [r if r.features == features else r.cast(features) for _, r in parts])
    sources_used = sorted({p.source for p, _ in parts})
    location = " + ".join(p.location for p, _ in parts)
    digest = json.dumps([[p.task, p.fingerprint] for p, _ in parts]).encode()
    return Split(task.name, split, language, rows, "+".join(sources_used), location,
                 hashlib.sha256(digest).hexdigest()[:16], unusable)


def _tag_ids(rows: datasets.Dataset, member: str) -> datasets.Dataset:
    # members' own ids can collide (SNLI's generated ids, MNLI's idx): prefix the member
    return rows.map(lambda b: {"id": [f"{member}/{i}" for i in b["id"]]}, batched=True,
                    desc=f"ids of {member}")


def _mirror_files(task: Task, source_split: str, language: str, mirror: Path) -> list[Path]:
    if task.hub_id is None:
        raise DataError(f"task {task.name!r} has no Hub id, so it cannot come from a mirror")
    repo = mirror / task.hub_id
    config_dir = repo / (task.hub_config(language) or "data")
    if not repo.is_dir():
        raise DataError(f"the Hub mirror {str(mirror)!r} has no {task.hub_id!r} "
                        f"(expected directory {str(repo)!r}); fill it with `xtl data download`")
    if not config_dir.is_dir():
        configs = sorted(p.name for p in repo.iterdir() if p.is_dir())
        raise unknown(f"config of {task.hub_id!r} in the mirror (looked for {str(config_dir)!r})",
                      config_dir.name, configs, DataError)
    files = sorted(config_dir.glob(f"{source_split}-*.parquet"))
    if not files:
        splits = sorted({p.name.split("-")[0] for p in config_dir.glob("*.parquet")})
        raise unknown(f"split in {str(config_dir)!r}", source_split, splits, DataError)
    return files


def canonicalize(task: Task, raw: datasets.Dataset, split: str, language: str
                 ) -> tuple[datasets.Dataset, dict[str, int]]:
    """Rename the source's columns to the format's canonical fields and map labels to ints.

    A format may have its own `canonicalize` hook (choices held in several columns, QA answers
    to re-locate, ...); this generic one serves the rest (`xtl.data.tasks.Format`).
    """
    own = get_format(task.format).canonicalize
    if own is not None:
        return own(task, raw, split, language)
    missing = [col for col in task.fields.values() if col not in raw.column_names]
    if missing:
        raise DataError(f"{task.name}/{language}/{split}: columns {missing} missing; the source "
                        f"has {raw.column_names}")
    to_int = _label_mapper(task, raw, split, language)
    id_col = task.fields.get("id")
    keep = {canon: col for canon, col in task.fields.items() if canon not in ("id", "label")}
    prefix = f"{language}-{split}-"
    label_col = task.fields["label"]

    # `map` fingerprints this function by pickling what it closes over: not the Task, whose
    # synthetic generator would drag in every row generated so far (seconds per split)
    def convert(row: dict, i: int) -> dict:
        out = {canon: row[col] for canon, col in keep.items()}
        out["id"] = str(row[id_col]) if id_col else f"{prefix}{i:07d}"
        out["label"] = to_int(row[label_col], i)
        return out

    # explicit types: `map` would otherwise keep a same-named source column's type (PAWS-X's
    # int32 `id` would stay int; a string `label` column would turn the int labels into text)
    out_features = datasets.Features({**{canon: raw.features[col] for canon, col in keep.items()},
                                      "id": datasets.Value("string"),
                                      "label": datasets.Value("int64")})
    rows = raw.map(convert, with_indices=True, remove_columns=raw.column_names,
                   features=out_features, desc=f"{task.name}/{language}/{split}")
    usable = rows.filter(lambda r: r["label"] >= 0)
    dropped = len(rows) - len(usable)
    unusable = {"no label (-1 or empty)": dropped} if dropped else {}
    return usable, unusable


def class_label_ids(names: list[str], where: str):
    """A ClassLabel column's ids, range-checked: Parquet stores plain integers, so a damaged or
    foreign file can hold an id outside the label set (a crash deep in training otherwise)."""
    def to_int(value, i: int) -> int:
        if value is None:
            return -1
        if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value < len(names):
            raise DataError(f"{where} row {i}: label id {value!r} is outside the label set "
                            f"{names} (expected -1 for none, or 0 to {len(names) - 1})")
        return int(value)

    return to_int


def _label_mapper(task: Task, raw: datasets.Dataset, split: str, language: str):
    feature = raw.features[task.fields["label"]]
    names = list(task.label_names)
    if isinstance(feature, datasets.ClassLabel):
        if list(feature.names) != names:
            raise DataError(f"{task.name}/{language}/{split}: the source's labels are "
                            f"{feature.names}, the task expects {names} in that order")
        return class_label_ids(names, f"{task.name}/{language}/{split}")
    lookup = {name: k for k, name in enumerate(names)}
    lookup.update({alias: names.index(target) for alias, target in task.label_aliases.items()})

    def to_int(value, i: int) -> int:
        text = str(value).strip()
        if text in ("", "-1", "None"):
            return -1
        if text not in lookup:
            raise DataError(f"{task.name}/{language}/{split} row {i}: label {value!r} is outside "
                            f"the label set {names}")
        return lookup[text]

    return to_int
