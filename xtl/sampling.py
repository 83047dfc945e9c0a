"""Which examples go into which batch, epoch by epoch: shuffled, optionally grouped by length.

Padding is per batch (to its longest row), so a batch of similar lengths wastes less compute.
`BatchPlan` shuffles the examples, cuts them into large "mega-batches", sorts each by length,
cuts those into batches and shuffles the batch order: batches are homogeneous in length, while
which examples meet, and the order of batches, stay random (the idea of the Trainer's
LengthGroupedSampler). An epoch's batches depend only on (seed, epoch), so a resumed run
rebuilds them and skips the ones already trained on: the plan itself holds no position.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Batches per mega-batch: larger groups more tightly by length, smaller keeps more randomness.
MEGA_BATCH_MULT = 50


class BatchPlan:
    """Batches of example indices for every epoch; `group_by_length=False` is a plain shuffle."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int,
                 group_by_length: bool = True, mega_batch_mult: int = MEGA_BATCH_MULT):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        # Keep at least ~4 mega-batches on small sets, else grouping degenerates into one sort.
        fit = max(1, len(self.lengths) // (4 * batch_size))
        self.mega = batch_size * max(1, min(mega_batch_mult, fit))

    def __len__(self) -> int:
        """Batches per epoch (the last one may be short)."""
        return -(-len(self.lengths) // self.batch_size)

    def epoch(self, epoch: int) -> list[list[int]]:
        """The batches of `epoch`, in training order."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        if not self.group_by_length:
            return _cut(order, self.batch_size)
        batches = []
        for start in range(0, len(order), self.mega):
            chunk = order[start:start + self.mega]
            # Longest first; a stable sort keeps the random order among equal lengths.
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += _cut(chunk, self.batch_size)
        shuffled = [batches[i] for i in rng.permutation(len(batches))]
        if not shuffled:
            return []
        # The batch holding the longest example goes first: out-of-memory shows at step 1.
        longest = max(range(len(shuffled)), key=lambda i: self.lengths[shuffled[i]].max())
        shuffled.insert(0, shuffled.pop(longest))
        return shuffled


def _cut(order: np.ndarray, size: int) -> list[list[int]]:
    return [order[i:i + size].tolist() for i in range(0, len(order), size)]


def padded_fraction(batches: list[list[int]], lengths: Sequence[int]) -> float:
    """Padding tokens / all tokens when every batch is padded to its longest row."""
    lengths = np.asarray(lengths)
    real = sum(int(lengths[b].sum()) for b in batches)
    total = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1.0 - real / total if total else 0.0
