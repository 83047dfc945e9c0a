"""Model features from canonical rows: each format's featuriser through `datasets.map`, cached.

Tokenised splits are saved under `$XTL_CACHE/features/<key>`; the key covers everything that
changes the features (task, split, language, source fingerprint, tokenizer, the featuriser's
hyperparameters, train/eval, kit version), so a second run tokenises nothing. Each entry carries
the checksum of its files (`xtl-checksum.json`, written last); an entry that does not verify
(truncated, edited, half-deleted) is rebuilt with a warning, never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import datasets
import torch

import xtl
from xtl.core.hparams import Hparams
from xtl.core.precision import autocast
from xtl.core.store import atomic_write_json, cache_dir, read_json_object, sha256_tree, umask_mode
from xtl.data.sources import Split
from xtl.data.tasks import Task, get_format
from xtl.data.tokenizer_state import without_call_state

# The hyperparameters a featuriser may read; the others do not change features.
FEATURE_HPARAMS = ("max_length", "input_prefix", "doc_stride", "tag_subtoken")


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of the tokenizer's full definition (vocabulary, normaliser, specials), not of
    what earlier calls left on it."""
    cached = getattr(tokenizer, "_xtl_fingerprint", None)
    if cached:
        return cached
    backend = getattr(tokenizer, "backend_tokenizer", None)
    with without_call_state(tokenizer):
        text = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(),
                                                                       sort_keys=True)
    digest = hashlib.sha256(text.encode())
    digest.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True).encode())
    tokenizer._xtl_fingerprint = digest.hexdigest()[:16]
    return tokenizer._xtl_fingerprint


def cache_key(task: Task, split: Split, tokenizer: Any, hp: Hparams, train: bool) -> str:
    parts = {"task": task.name, "format": task.format, "split": split.split,
             "language": split.language, "source": split.source, "data": split.fingerprint,
             "tokenizer": tokenizer_fingerprint(tokenizer), "train": train,
             "hp": {k: hp.get(k) for k in FEATURE_HPARAMS}, "xtl": xtl.__version__}
    blob = json.dumps(parts, sort_keys=True).encode()
    return f"{task.name}-{split.language}-{split.split}-{hashlib.sha256(blob).hexdigest()[:16]}"


def features(task: Task, split: Split, tokenizer: Any, hp: Hparams, train: bool = False,
             cache: bool = True) -> datasets.Dataset:
    """Tokenised rows of a split, ready for the format's collator (padding is per batch).

    `train` says whether the features are for training (QA keeps offsets only for evaluation).
    """
    path = cache_dir() / "features" / cache_key(task, split, tokenizer, hp, train)
    if cache and path.exists():
        problem = damage(path)
        if problem is None:
            cached = _load(path)
            if cached is not None:
                return cached
        else:
            warnings.warn(f"feature cache {path} is damaged ({problem}); rebuilding it",
                          stacklevel=2)
            _discard(path)
    fmt = get_format(task.format)
    feats = split.rows.map(
        fmt.featurize, batched=True, remove_columns=split.rows.column_names,
        fn_kwargs={"tokenizer": tokenizer, "hp": hp, "train": train},
        desc=f"tokenise {split.task}/{split.language}/{split.split}")
    if cache:
        _save(feats, path)
        cached = _load(path)
        if cached is not None:  # memory-mapped from disk, like every later read
            return cached
    return feats


def _load(path: Path) -> datasets.Dataset | None:
    """The entry at `path`, or None when it vanished meanwhile (another process sharing the
    cache discarded it): the caller then tokenises instead of failing."""
    try:
        return datasets.load_from_disk(str(path))
    except FileNotFoundError:
        return None


# Written last into a cache entry: the checksum of every other file in it (as checkpoints).
CHECKSUM = "xtl-checksum.json"


def damage(path: Path) -> str | None:
    """Why the cache entry at `path` cannot be trusted, or None when it verifies."""
    record = read_json_object(path / CHECKSUM)
    if record is None:
        return f"{CHECKSUM} missing or unreadable"
    try:
        actual = sha256_tree(path, exclude=(CHECKSUM,))
    except OSError as err:
        return f"unreadable: {err}"
    if record.get("sha256") != actual:
        return "its files do not match their checksum"
    return None


def _discard(path: Path) -> None:
    """Move a damaged entry aside, then delete it (a reader never sees it half-deleted).

    The verdict may be stale: between it and the move, another process sharing the cache can
    have replaced the damaged entry with a good one, which is then put back, not deleted
    (deleting it made that process's read fail with FileNotFoundError)."""
    aside = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.damaged."))
    moved = aside / "entry"
    try:
        os.replace(path, moved)
    except OSError:
        pass  # another process moved it already
    if moved.exists() and damage(moved) is None:
        try:
            os.rename(moved, path)
        except OSError:
            pass  # yet another good copy took its place
    shutil.rmtree(aside, ignore_errors=True)


def _save(feats: datasets.Dataset, path) -> None:
    """Save to a temp dir and rename: a concurrent or killed writer leaves no half cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.chmod(tmp, umask_mode(directory=True))  # not mkdtemp's owner-only 0700
        feats.save_to_disk(tmp)
        atomic_write_json(Path(tmp) / CHECKSUM, {"sha256": sha256_tree(Path(tmp))})
        try:
            os.rename(tmp, path)
        except OSError:  # another process cached it first: theirs is identical
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def head_logits(model: Any, task: Task, rows: Any, collate: Callable[[list[dict]], dict],
                hp: Hparams, precision: str = "fp32") -> Iterator[tuple[dict, torch.Tensor]]:
    """(batch on the model's device, `task`'s head logits) per batch of 2 x `batch_size` rows,
    in order: the model in eval mode (its mode restored after), inference mode, `precision`'s
    autocast. Every evaluation path of the formats runs its rows through here."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loader = torch.utils.data.DataLoader(rows, batch_size=2 * hp.batch_size, collate_fn=collate)
    try:
        with torch.inference_mode():
            for batch in loader:
                batch = {k: v.to(device) for k, v in batch.items()}
                with autocast(precision, device):
                    yield batch, model(task.name, batch)
    finally:
        model.train(was_training)
