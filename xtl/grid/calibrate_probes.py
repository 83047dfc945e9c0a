"""What the calibration run times: a training step of the kit's own loop on a sample of a
task's training rows (`TrainProbe`, examples/s from seconds per padded token) and an evaluation
of a sample of the rows a cell evaluates (`EvalProbe`, rows/s), each callable once per round
(`xtl.grid.calibrate`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from xtl.core.hparams import Hparams
from xtl.data import embeddings, mlm, sources
from xtl.data.features import features
from xtl.evaluation import bitext, evaluate
from xtl.grid.estimate import Item
from xtl.training import devices, sampling, train, train_data
from xtl.training.train_data import feature_rows

SAMPLE_ROWS = 512  # training rows tokenised for the batch plan (QA windows, padding)
TIMED_STEPS = 4  # optimizer steps timed per task, after one warm-up step
EVAL_ROWS = 128  # rows evaluated per task (after a warm-up batch)


class Stepper:
    """The kit's own training step (`xtl.training.train.train_step`) on one prepared model."""

    def __init__(self, net: Any, tokenizer: Any, device: Any, precision: str):
        import torch

        self.tokenizer, self.device = tokenizer, device
        self.accelerator = devices.make_accelerator(precision, device)
        optimizer = train.make_optimizer(net, Hparams({"learning_rate": 1e-5}))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            net, optimizer, scheduler)
        self.model.train()

    def __call__(self, item: Item, batches: list[dict], hp: Hparams) -> float:
        import torch

        t0 = time.perf_counter()
        train.train_step(self.accelerator, self.model, self.optimizer, self.scheduler, item.task,
                         batches, hp.max_grad_norm)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def _sample(split: Any, n: int) -> Any:
    """The first `n` rows of a shuffled split (fixed seed), as a split of its own."""
    rows = split.rows
    if len(rows) > n:
        rows = rows.shuffle(seed=0).select(range(n))
    return replace(split, rows=rows, fingerprint=f"{split.fingerprint}|calibration-{len(rows)}")


class TrainProbe:
    """Training examples (rows) per second: seconds per padded token, times the padded tokens
    per row of the task's batch plan (length grouping and QA windows included)."""

    def __init__(self, step: Stepper, item: Item, hp: Hparams, mirror: Path | None,
                 raw: Path | None):
        self.step, self.item, self.hp = step, item, hp
        per_step = hp.batch_size * hp.grad_accum
        split = sources.load(item.data, "train", item.language, mirror, raw=raw)
        sample = _sample(split, max(SAMPLE_ROWS, per_step * (TIMED_STEPS + 1)))
        self.feats = features(item.task, sample, step.tokenizer, hp, train=True, cache=False)
        lengths = train_data.lengths(self.feats)
        self.batches = sampling.BatchPlan(lengths, hp.batch_size, 0,
                                          hp.group_by_length).epoch(0)
        padded = [len(b) * int(lengths[b].max()) for b in self.batches]
        self.per_row = sum(padded) / len(sample.rows)
        groups = [list(range(i, min(i + hp.grad_accum, len(self.batches))))
                  for i in range(0, len(self.batches), hp.grad_accum)]
        self.collate = train_data.collator(item.task, step.tokenizer, hp)
        self._run(groups[0])  # warm-up: the plan puts the longest batch first
        self.timed = groups[1:1 + TIMED_STEPS] or groups[:1]
        self.tokens = sum(padded[b] for g in self.timed for b in g)

    def _run(self, group: list[int]) -> float:
        return self.step(self.item, [self.collate(feature_rows(self.feats, self.batches[b]))
                                     for b in group], self.hp)

    def __call__(self) -> float:
        seconds = sum(self._run(g) for g in self.timed)
        return self.tokens / seconds / self.per_row


class EvalProbe:
    """Evaluated rows per second over a sample (tokenisation, prediction, metrics); retrieval
    and dual-encoder tasks: rows whose texts are embedded per second."""

    def __init__(self, net: Any, tokenizer: Any, item: Item, hp: Hparams, precision: str,
                 mirror: Path | None, raw: Path | None):
        self.net, self.tokenizer, self.item, self.hp = net, tokenizer, item, hp
        self.precision = precision
        split = sources.load(item.data, item.split, item.language, mirror, raw=raw)
        self.sample = _sample(split, EVAL_ROWS)
        self.rounds = 0
        self.embedded = item.task.format in ("retrieval", "dual_encoder")
        if self.embedded:
            self.sides = _texts(item.task.format, self.sample.rows)
            self._embed([(texts[:hp.batch_size], None if ctx is None else
                          ctx[:hp.batch_size]) for texts, ctx in self.sides[:1]])
        else:
            n = min(len(self.sample.rows), hp.batch_size)
            self._evaluate(replace(self.sample, rows=self.sample.rows.select(range(n)),
                                   fingerprint=f"{self.sample.fingerprint}|warm-up"))

    def _evaluate(self, split: Any) -> None:
        with _scratch_cache():  # the sample's features are not worth keeping
            if self.item.task.format == mlm.FORMAT:  # scored as training scores it on dev
                mlm.masked_accuracy(self.net, self.tokenizer, self.item.task, split, self.hp,
                                    self.precision)
            else:
                evaluate.evaluate(self.net, self.tokenizer, self.item.task, [split], self.hp,
                                  self.precision)

    def _embed(self, sides: list[tuple[list[str], list | None]]) -> None:
        hp = self.hp
        for texts, contexts in sides:
            embeddings.embed(self.net.encoder, self.tokenizer, texts, hp.input_prefix,
                             hp.pooling, hp.layer, 2 * hp.batch_size,
                             max_length=hp.max_length, precision=self.precision,
                             pairs=contexts)

    def __call__(self) -> float:
        t0 = time.perf_counter()
        if self.embedded:
            self._embed(self.sides)
        else:  # a fresh fingerprint each round: tokenised again, as a cell does once
            self.rounds += 1
            self._evaluate(replace(self.sample,
                                   fingerprint=f"{self.sample.fingerprint}|{self.rounds}"))
        return len(self.sample.rows) / (time.perf_counter() - t0)


def _texts(fmt: str, rows: Any) -> list[tuple[list[str], list | None]]:
    """What a retrieval cell embeds (both sides of the bitext), or a dual encoder's queries and
    candidates with their contexts."""
    if fmt == "retrieval":
        pairs = bitext.bitext(rows)
        return [(pairs.source, None), (pairs.target, None)]
    texts = [q if q is not None else c for q, c in zip(rows["query"], rows["candidate"],
                                                       strict=True)]
    contexts = [q if q is not None else c for q, c in zip(rows["query_context"],
                                                          rows["candidate_context"],
                                                          strict=True)]
    return [(texts, contexts)]


@contextmanager
def _scratch_cache() -> Iterator[None]:
    """XTL_CACHE pointed at a temporary directory (feature caches of samples land there)."""
    old = os.environ.get("XTL_CACHE")
    tmp = tempfile.mkdtemp(prefix="xtl-calibrate-cache-")
    os.environ["XTL_CACHE"] = tmp
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("XTL_CACHE", None)
        else:
            os.environ["XTL_CACHE"] = old
        shutil.rmtree(tmp, ignore_errors=True)
