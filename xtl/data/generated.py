"""Rows of a synthetic task: generated once per machine, then read from `$XTL_CACHE/generated/`.

A kit generator's rows are a function of (task, language, split, n, seed), of the values its
closure holds and of the kit's source: the cache key covers all of them, so an edited generator
is rerun. Generators defined outside xtl (a notebook's, a test's) run every time: their code is
not in the key.
Why a cache: synth-nli keeps only matched triples of meanings hashed into one part
(`xtl.offline.synth.nli`), so its 1,200 target-training rows take about 10 s of rejection
sampling on a CPU, and every cell that read them paid it again in its fresh kernel.
An entry is the rows as JSON with their fingerprint; one whose rows do not give that fingerprint
(truncated, edited) is regenerated with a warning, never read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import datasets

from xtl.core.store import atomic_write_json, cache_dir, read_json_object
from xtl.data.tasks import Task

# The code a generator's rows depend on: the synthetic benchmark and the tasks that wrap it.
_SOURCES = ("offline", "data/tasks")


def rows(task: Task, language: str, split: str, n: int, seed: int
         ) -> tuple[datasets.Dataset, str]:
    """The generated rows of one split as a Dataset, and their fingerprint."""
    key = json.dumps([task.name, language, split, n, seed], sort_keys=True)
    identity = _identity(task.generator)
    path = None if identity is None else (
        cache_dir() / "generated" /
        f"{task.name}-{language}-{split}-{_digest(key + identity + code_digest())}.json")
    cached = None if path is None else _read(task, path, key)
    if cached is not None:
        return cached
    made = task.generator(language, split, n, seed)
    # a generator may give a typed Dataset (nested features) or plain rows
    table = made if isinstance(made, datasets.Dataset) else _dataset(task, made)
    listed = made.to_list() if isinstance(made, datasets.Dataset) else made
    fingerprint = _fingerprint(key, listed)
    features = table.features.to_dict() if isinstance(made, datasets.Dataset) else None
    if path is None:
        return table, fingerprint
    try:
        atomic_write_json(path, {"rows": listed, "features": features,
                                 "fingerprint": fingerprint})
    except OSError as err:  # a full or read-only cache costs the next cell the time, no more
        warnings.warn(f"generated rows not cached at {path}: {err}", stacklevel=2)
    return table, fingerprint


def _read(task: Task, path: Path, key: str) -> tuple[datasets.Dataset, str] | None:
    if not path.exists():
        return None
    doc = read_json_object(path)
    listed = doc.get("rows") if doc else None
    if not isinstance(listed, list) or doc.get("fingerprint") != _fingerprint(key, listed):
        warnings.warn(f"generated rows at {path} are damaged; generating them again",
                      stacklevel=3)
        return None
    features = doc.get("features")
    table = (_dataset(task, listed) if features is None else
             datasets.Dataset.from_list(listed, features=datasets.Features.from_dict(features)))
    return table, doc["fingerprint"]


def _identity(generator: Callable) -> str | None:
    """The generator's name and closure values, or None when it is not the kit's own or holds
    something other than plain values (its rows could then differ under the same key)."""
    if not getattr(generator, "__module__", "").startswith("xtl."):
        return None
    values = []
    for cell in getattr(generator, "__closure__", None) or ():
        value = cell.cell_contents
        if isinstance(value, types.ModuleType):
            values.append(value.__name__)
        elif value is None or isinstance(value, (str, int, float, bool)):
            values.append(repr(value))
        else:
            return None
    return json.dumps([generator.__module__, generator.__qualname__, values])


def _fingerprint(key: str, listed: list) -> str:
    body = json.dumps(listed, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(key.encode() + hashlib.sha256(body).digest()).hexdigest()[:16]


def _dataset(task: Task, listed: list[dict]) -> datasets.Dataset:
    features = datasets.Features({
        col: (datasets.ClassLabel(names=list(task.label_names)) if canon == "label"
              else datasets.Value("string"))
        for canon, col in task.fields.items()
    })
    return datasets.Dataset.from_list(listed, features=features)


@functools.cache
def code_digest() -> str:
    """A digest of the source files generated rows depend on (read once per process)."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for folder in _SOURCES:
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
