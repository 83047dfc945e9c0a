"""Helpers shared by the synthetic generators: argument checks, seeded streams, disjoint parts.

Every generator builds language-independent meanings from a random stream named after the
task, part and seed, so row ``i`` is the same meaning in every language. The meaning space is
cut, by a stable hash of each meaning's key, into four disjoint PARTS:

- ``stage``: the ``train`` split of a task, what an intermediate stage trains on;
- ``target``: the ``train`` split of the task's ``<name>_target-train`` variant, the English
  rows a TARGET of that task fine-tunes on (`xtl.data.tasks`: its ``train_task``);
- ``validation`` and ``test``: what every cell evaluates (and selects checkpoints on).

So an intermediate stage never trains on a row (nor, for the frame-based tasks, on a
sentence) that its targets train or evaluate on, and no evaluation row is trained on. Which
key a meaning hashes by is the generator's choice: a sentence meaning (nli, qa, retrieval),
a generated name (ner: every entity name belongs to one part).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

SPLITS: tuple[str, ...] = ("train", "validation", "test")
TRAIN_PARTS: tuple[str, ...] = ("stage", "target")
PARTS: tuple[str, ...] = (*TRAIN_PARTS, "validation", "test")

# Share of meanings per part, in tenths.
_SHARES = {"stage": range(0, 4), "target": range(4, 6), "validation": range(6, 8),
           "test": range(8, 10)}


def check_args(language: str, split: str, n: int, languages: Sequence[str],
               train_part: str = "stage") -> None:
    """Raise ValueError naming a bad language, split, row count or training part."""
    if language not in languages:
        raise ValueError(f"unknown language {language!r}; valid: {', '.join(languages)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if train_part not in TRAIN_PARTS:
        raise ValueError(f"unknown train_part {train_part!r}; valid: {', '.join(TRAIN_PARTS)}")


def part_of_split(split: str, train_part: str = "stage") -> str:
    """The part a split reads: ``train`` is the stage or the target part."""
    return train_part if split == "train" else split


def part_rng(task: str, part: str, seed: int) -> random.Random:
    """The random stream of one (task, part, seed): a string seed is stable across runs."""
    return random.Random(f"xtl.synth.{task}/{part}/{seed}")


def bucket(key: str, buckets: int = 10) -> int:
    """A stable hash of ``key`` into ``range(buckets)`` (Python's hash() is salted)."""
    return int(hashlib.md5(key.encode()).hexdigest(), 16) % buckets


def part_of(key: str) -> str:
    """The part a meaning (given as a canonical string) belongs to."""
    b = bucket(key)
    return next(name for name, r in _SHARES.items() if b in r)


def balanced(values: Sequence, n: int, rng: random.Random) -> list:
    """``n`` items cycling through ``values`` in random order: counts differ by at most one."""
    items = [values[i % len(values)] for i in range(n)]
    rng.shuffle(items)
    return items
