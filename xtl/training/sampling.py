"""Which examples go into which batch, epoch by epoch, and which task each step trains on.

Padding is per batch (to its longest row), so a batch of similar lengths wastes less compute.
`BatchPlan` shuffles the examples, cuts them into large "mega-batches", sorts each by length,
cuts those into batches and shuffles the batch order: batches are homogeneous in length, while
which examples meet, and the order of batches, stay random (the idea of the Trainer's
LengthGroupedSampler). An epoch's batches depend only on (seed, epoch), so a resumed run
rebuilds them and skips the ones already trained on: the plan itself holds no position.

A multi-task stage (jiant's recipe, docs/protocol.md) trains each optimizer step on ONE task,
drawn by a sampler. Each task keeps its own epochs e_k (a TASK value, docs/contracts.md); with
c_k = min(n_k, cap) its examples counted (`multitask_cap`; 0 = no cap):
- task k contributes e_k x ceil(c_k / (batch_size x grad_accum)) optimizer steps, and the stage
  trains the SUM of these (jiant's total when the epochs agree);
- `proportional`: p_k ~ e_k x c_k (jiant's proportional, or capped, sampler when the epochs
  agree: p_k ~ c_k), so every task is expected to get its own share of the steps;
  `temperature`: p_k ~ (e_k x c_k)^(1/T); `uniform`: p_k = 1 / K.
MLM tasks can instead take a fixed share `mlm_weight` of the steps, added on top of the
labelled tasks' (the labelled tasks keep their steps).
The task of every step is drawn up front from (seed, probabilities, total) (`schedule`), so the
sampler's state is the step number; each task's position in its own epochs is a `Cursor`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from xtl.core.hparams import MULTITASK_SAMPLERS as SAMPLERS
from xtl.core.hparams import Hparams

# Batches per mega-batch: larger groups more tightly by length, smaller keeps more randomness.
MEGA_BATCH_MULT = 50


class BatchPlan:
    """Batches of example indices for every epoch; `group_by_length=False` is a plain shuffle."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int,
                 group_by_length: bool = True, mega_batch_mult: int = MEGA_BATCH_MULT,
                 stream: int = 0):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        # Task k > 0 of a mixture shuffles on its own stream: two tasks of the same size (a
        # task and its translation) must not visit parallel rows in the same order.
        self.seed = [seed] if stream == 0 else [seed, stream]
        self.group_by_length = group_by_length
        # Keep at least ~4 mega-batches on small sets, else grouping degenerates into one sort.
        fit = max(1, len(self.lengths) // (4 * batch_size))
        self.mega = batch_size * max(1, min(mega_batch_mult, fit))

    def __len__(self) -> int:
        """Batches per epoch (the last one may be short)."""
        return -(-len(self.lengths) // self.batch_size)

    def epoch(self, epoch: int) -> list[list[int]]:
        """The batches of `epoch`, in training order."""
        rng = np.random.default_rng([*self.seed, epoch])
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


def shard(batch: list[int], rank: int, world: int) -> tuple[list[int], float]:
    """This process's share of a global batch, and the weight of its loss.

    Strided, so every process gets the same mix of lengths. A loss averaged over the share,
    times len(share) * world / len(batch), averages (over processes, as DDP does) to the loss of
    the whole batch. A batch smaller than the world gives an empty share: that process runs
    one example with weight 0, because every process must run every backward pass.
    """
    mine = batch[rank::world]
    if not mine:
        return batch[:1], 0.0
    return mine, len(mine) * world / len(batch)


class Cursor:
    """One task's position in its own epochs: (epoch, batches of that epoch already used).

    `take` returns the next up-to-n batches of the current epoch (an epoch's last group may be
    short, as with gradient accumulation over a single task) and moves on to the next epoch
    once this one is used up. The current epoch's batches are computed once and kept.
    """

    def __init__(self, plan: BatchPlan, epoch: int = 0, position: int = 0):
        self.plan, self.epoch, self.position = plan, epoch, position
        self._batches: tuple[int, list[list[int]]] | None = None

    def state(self) -> list[int]:
        return [self.epoch, self.position]

    def take(self, n: int) -> list[list[int]]:
        if self._batches is None or self._batches[0] != self.epoch:
            self._batches = (self.epoch, self.plan.epoch(self.epoch))
        batches = self._batches[1]
        group = batches[self.position:self.position + n]
        self.position += len(group)
        if self.position >= len(batches):
            self.epoch, self.position = self.epoch + 1, 0
        return group


# --- several tasks --------------------------------------------------------------------------

SCHEDULE_SALT = 7_331  # the task draws use their own random stream, never the training RNGs


@dataclass(frozen=True)
class Mixture:
    """How a stage's tasks share its optimizer steps."""

    names: tuple[str, ...]
    examples: tuple[int, ...]  # training examples (features) per task
    counted: tuple[int, ...]  # min(examples, cap): what the sampler and the step count see
    probabilities: tuple[float, ...]  # of each task, at every step
    steps_per_epoch: int  # optimizer steps of one pass over every (capped) labelled task
    total: int  # optimizer steps of the whole run
    epochs: tuple[float, ...] = ()  # each task's own

    def table(self) -> list[dict]:
        epochs = self.epochs or (None,) * len(self.names)
        return [{"task": n, "examples": e, "counted": c, "epochs": ep,
                 "probability": round(p, 4), "expected steps": round(p * self.total, 1)}
                for n, e, c, ep, p in zip(self.names, self.examples, self.counted, epochs,
                                          self.probabilities, strict=True)]


def sampler_weights(counted: Sequence[float], sampler: str, temperature: float) -> np.ndarray:
    """Unnormalised task weights: jiant's Proportional / Temperature / Uniform samplers, of
    each task's counted examples (times its epochs, see the module docstring)."""
    n = np.asarray(counted, dtype=np.float64)
    if sampler == "proportional":
        return n
    if sampler == "temperature":
        return n ** (1.0 / temperature)
    if sampler == "uniform":
        return np.ones_like(n)
    raise ValueError(f"unknown multi-task sampler {sampler!r}; one of {SAMPLERS}")


def mixture(names: Sequence[str], examples: Sequence[int], auxiliary: Sequence[bool],
            hp: Hparams, epochs: Sequence[float] | None = None) -> Mixture:
    """Sampling probabilities and step counts for tasks of `examples` training examples,
    trained for `epochs` each (None: `hp.epochs` for every task).

    `auxiliary` marks MLM tasks. With `mlm_weight` w > 0 (and labelled tasks beside them) they
    share w of the steps equally, the labelled tasks share the rest by the sampler, and the
    total grows to labelled steps / (1 - w): the labelled tasks keep their epochs. With w = 0
    every task, MLM included, is sampled and counted alike. One task: all steps are its own.
    """
    epochs = [hp.epochs] * len(names) if epochs is None else list(epochs)
    cap = hp.multitask_cap
    counted = [min(n, cap) if cap else n for n in examples]
    per_step = hp.batch_size * hp.grad_accum
    steps = [math.ceil(c / per_step) for c in counted]
    weight = hp.mlm_weight if any(auxiliary) and not all(auxiliary) else 0.0
    main = [k for k, aux in enumerate(auxiliary) if not (weight and aux)]
    probabilities = np.zeros(len(names))
    main_weights = sampler_weights([epochs[k] * counted[k] for k in main],
                                   hp.multitask_sampler, hp.multitask_temperature)
    probabilities[main] = (1.0 - weight) * main_weights / main_weights.sum()
    side = [k for k in range(len(names)) if k not in main]
    probabilities[side] = weight / max(1, len(side))
    steps_per_epoch = math.ceil(sum(steps[k] for k in main) / (1.0 - weight))
    total = max(1, math.ceil(_mean_epochs([epochs[k] for k in main], [steps[k] for k in main])
                             * steps_per_epoch))
    return Mixture(tuple(names), tuple(examples), tuple(counted),
                   tuple(float(p) for p in probabilities), steps_per_epoch, total,
                   tuple(epochs))


def _mean_epochs(epochs: Sequence[float], steps: Sequence[int]) -> Fraction:
    """sum(e_k x steps_k) / sum(steps_k), exactly: equal epochs give e itself, so the total
    is ceil(e x steps_per_epoch) as with one epochs value, and with w = 0 it is the sum of
    every task's e_k x steps_k."""
    per_epoch = sum(steps)
    if not per_epoch:
        return Fraction(epochs[0]) if epochs else Fraction(0)
    return sum((Fraction(e) * s for e, s in zip(epochs, steps, strict=True)), Fraction(0)) \
        / per_epoch


def schedule(mix: Mixture, seed: int) -> np.ndarray:
    """The task index of every optimizer step: a pure function of (seed, mixture)."""
    if len(mix.names) == 1:
        return np.zeros(mix.total, dtype=np.int64)
    rng = np.random.default_rng([seed, SCHEDULE_SALT])
    return rng.choice(len(mix.names), size=mix.total, p=np.asarray(mix.probabilities))
