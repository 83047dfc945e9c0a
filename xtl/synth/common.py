"""Helpers shared by the synthetic generators: argument checks, seeded streams, split hashing.

Every generator builds language-independent meanings from a random stream named after the
task, split and seed, and assigns each meaning to one split by hashing it, so the splits are
disjoint for any seeds and row ``i`` is the same meaning in every language.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence

SPLITS: tuple[str, ...] = ("train", "validation", "test")

# Share of meanings per split, in tenths (80/10/10).
DEFAULT_BUCKETS: Mapping[str, range] = {
    "train": range(0, 8),
    "validation": range(8, 9),
    "test": range(9, 10),
}


def check_args(language: str, split: str, n: int, languages: Sequence[str]) -> None:
    """Raise ValueError naming a bad language, split or row count."""
    if language not in languages:
        raise ValueError(f"unknown language {language!r}; valid: {', '.join(languages)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")


def split_rng(task: str, split: str, seed: int) -> random.Random:
    """The random stream of one (task, split, seed): a string seed is stable across runs."""
    return random.Random(f"xtl.synth.{task}/{split}/{seed}")


def bucket(key: str, buckets: int = 10) -> int:
    """A stable hash of ``key`` into ``range(buckets)`` (Python's hash() is salted)."""
    return int(hashlib.md5(key.encode()).hexdigest(), 16) % buckets


def split_of(key: str, buckets: Mapping[str, range] = DEFAULT_BUCKETS) -> str:
    """The split a meaning (given as a canonical string) belongs to."""
    b = bucket(key, sum(len(r) for r in buckets.values()))
    return next(name for name, r in buckets.items() if b in r)


def balanced(values: Sequence, n: int, rng: random.Random) -> list:
    """``n`` items cycling through ``values`` in random order: counts differ by at most one."""
    items = [values[i % len(values)] for i in range(n)]
    rng.shuffle(items)
    return items
