"""What the loop trains on: each task of the mixture (`TaskData`: rows, features, its cursor
through its epochs, its collator), its batches, and the checks of a fit's inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from xtl.core.errors import ConfigError, DataError, ModelError, unknown
from xtl.core.hparams import TASK_KEYS, Hparams, check_hparam
from xtl.data import mlm
from xtl.data.features import features
from xtl.data.sources import Split
from xtl.data.tasks import Task, get_format
from xtl.model.models import XtlModel
from xtl.training import sampling


@dataclass
class TaskData:
    """One task of the mixture: rows, features, its cursor through its epochs, how to batch,
    and its own hyperparameters (the cell's LOOP values with this task's TASK values)."""

    task: Task
    train: Split
    dev: Split  # the rows the selection scores (`dev_subset`)
    feats: datasets.Dataset
    cursor: sampling.Cursor
    collate: Callable[[list[dict]], dict]
    hp: Hparams = field(default_factory=Hparams)
    full_dev: Split | None = None  # the whole dev split (`dev` when no subset is taken)

    def __post_init__(self) -> None:
        if self.full_dev is None:
            self.full_dev = self.dev

    @property
    def auxiliary(self) -> bool:
        """MLM: trained alongside, not selected on (unless it is all the stage trains)."""
        return self.task.format == mlm.FORMAT



def check_inputs(model: XtlModel, tasks: list[Task], trains: list[Split], devs: list[Split],
                 hp: Hparams, task_hps: list[dict] | None = None) -> None:
    """Raise for every bad input before any work, naming the offending value."""
    names = [t.name for t in tasks]
    if task_hps is not None:
        if len(task_hps) != len(tasks):
            raise ConfigError(f"fit: {len(task_hps)} per-task hyperparameter sets for "
                              f"{len(tasks)} tasks {names}")
        for name, own in zip(names, task_hps, strict=True):
            for key, value in own.items():
                if key not in TASK_KEYS:
                    raise ConfigError(f"fit: {key!r} of task {name!r} is one value per cell "
                                      f"(a LOOP value), not per task; per-task keys: "
                                      f"{', '.join(TASK_KEYS)}")
                check_hparam(key, value, f"fit: task {name}")
    if not tasks or len(set(names)) != len(names) or not len(tasks) == len(trains) == len(devs):
        raise ConfigError(f"fit: tasks {names} must be distinct and have one train and one dev "
                          f"split each ({len(trains)} train, {len(devs)} dev given)")
    if len(tasks) > 1 and hp.multitask_aggregate not in ("mean", *names):
        raise unknown("multitask_aggregate (the dev score that selects the best checkpoint)",
                      hp.multitask_aggregate, ("mean", *names))
    for task, train, dev in zip(tasks, trains, devs, strict=True):
        for split in (train, dev):
            if len(split.rows) == 0:
                raise DataError(f"{split.task}/{split.language}/{split.split} has no rows to "
                                f"{'train' if split is train else 'evaluate'} on")
        if task.name not in model.heads:
            raise ModelError(f"the model has no head for task {task.name!r}; it has "
                             f"{sorted(model.heads)}")
        _check_labels(task, [train, dev])


def _check_labels(task: Task, splits: list[Split]) -> None:
    """Class ids must index the task's classes, which sized the head (-1, unlabelled, too)."""
    if not task.label_names:
        return
    n = len(task.label_names)
    for split in splits:
        if "label" not in split.rows.column_names:
            continue
        column = split.rows.with_format("arrow")["label"]
        if not pa.types.is_integer(column.type):
            continue  # per-token or span labels: the format checks its own
        labels = column.to_numpy()
        bad = labels[(labels < 0) | (labels >= n)]
        if len(bad):
            raise DataError(f"{split.task}/{split.language}/{split.split}: label id {int(bad[0])}"
                            f" ({len(bad)} row(s)) is outside the {n} classes of the "
                            f"{task.name!r} head ({', '.join(map(str, task.label_names))})")



def lengths(feats: Any) -> np.ndarray:
    """Tokens per example, read from the Arrow column (no Python lists of every row)."""
    return pc.list_value_length(feats.with_format("arrow")["input_ids"]).to_numpy()


def collator(task: Task, tokenizer: Any, hp: Hparams) -> Callable[[list[dict]], dict]:
    """The format's collator; MLM's masks with the run's masking probability."""
    if task.format == mlm.FORMAT:
        return mlm.collator(tokenizer, hp.mlm_probability)
    return get_format(task.format).collator(tokenizer)


def task_data(task: Task, train: Split, dev: Split, tokenizer: Any, hp: Hparams, seed: int,
              stream: int) -> TaskData:
    """Tokenised once (cached) with the task's own `hp`; the task's batches are a function of
    (seed, epoch, stream); `dev` is cut to the rows the selection evaluates (`dev_subset`)."""
    feats = features(task, train, tokenizer, hp, train=True)
    plan = sampling.BatchPlan(lengths(feats), hp.batch_size, seed, hp.group_by_length,
                              stream=stream)
    return TaskData(task, train, selection_split(dev, hp.dev_subset), feats,
                    sampling.Cursor(plan), collator(task, tokenizer, hp), hp, full_dev=dev)


def selection_split(dev: Split, first: int) -> Split:
    """The dev rows the checkpoint selection scores: the first `first` (jiant's
    `eval_subset_num`, a fixed deterministic subset); 0, or more than there are: all."""
    if not first or first >= len(dev.rows):
        return dev
    return replace(dev, rows=dev.rows.select(range(first)),
                   fingerprint=f"{dev.fingerprint}|first={first}")



def feature_rows(feats: datasets.Dataset, indices: list[int]) -> list[dict]:
    """Feature rows by index, as the list of dicts collators take."""
    columns = feats[indices]
    return [dict(zip(columns, values, strict=True))
            for values in zip(*columns.values(), strict=True)]


def micro_batches(data: TaskData, group: list[list[int]], rank: int, world: int
                  ) -> tuple[list[dict], list[float]]:
    """This process's collated share of each global micro-batch, and each share's loss weight.

    With several processes, each runs a strided share of every batch (`sampling.shard`); the
    weights make the gradient DDP averages equal the gradient of the whole batch.
    """
    batches, weights = [], []
    for indices in group:
        mine, weight = sampling.shard(indices, rank, world)
        batch = data.collate(feature_rows(data.feats, mine))
        if not weight:  # a stand-in row: a loss gathering across processes leaves it out
            batch["stand_in"] = torch.ones(())  # xtl.data.tasks.dual_encoder.STAND_IN
        batches.append(batch)
        weights.append(weight)
    return batches, weights


