"""The kit's training loop against transformers.Trainer, on multilingual-e5-small (CPU, bf16).

Usage: python bench/train_vs_trainer.py [--pool 960] [--turn 6] [--threads N]

Three arms, the same everything but the loop:
  kit      xtl.training.train: length-grouped batches (sampling.BatchPlan), the loop's own
           `micro_batches` + `train_step` (accelerate bf16 autocast, clip, AdamW, schedule)
  trainer  transformers.Trainer with its defaults (random batches)
  grouped  transformers.Trainer with train_sampling_strategy="group_by_length" (transformers
           5.x's name for the old group_by_length=True; LengthGroupedSampler)
Same model (e5-small encoder + the kit's classification head, every parameter trainable),
bf16 autocast, batch 32, AdamW (fused: the Trainer's default optimizer and the kit's), lr 1e-5,
weight decay 0.01 (not on biases and LayerNorm), linear schedule with 10% warmup, clipping 1.0,
the same padding collator and cross-entropy. The Trainer arms save and log nothing.

Data: a pool of sentence pairs with token lengths drawn from a log-normal distribution (median
45 tokens, sigma 0.5, clipped to [8, 256]: roughly MNLI pairs under the XLM-R tokenizer), random
token ids between <s> and </s>, 3 labels.

Protocol: every arm trains exactly ONE epoch of the pool (960 pairs = 30 steps by default),
after 2 warm-up steps, so each sees the same examples and both grouped arms their whole
length-grouped plan (the first steps of a grouped epoch are its longest batches: a few steps
would not be representative). The arms run in turns of `--turn` steps (kit, trainer, grouped,
kit, ...; each arm in its own thread, one running at a time) so that a shared machine's load
falls on all of them alike. A step is timed from the end of the previous one (or from the
arm's turn starting) to its end: data loading included, waiting for the turn excluded. Both
grouping rules use mega-batches of min(50, pool / (4 x batch)) batches, as HF does.

On a shared machine use --threads 1: with a busy neighbour on one of the two cores, two
intra-op threads wait for each other at every op (e5-small's forward+backward went from 1.2 s
to 7.8 s here), which measures the neighbour, not the loops.

MFU = model FLOPs per second on REAL (non-padding) tokens / the bf16 matmul peak measured here
(2048^3 bf16 matmuls, best of several runs). FLOPs per example of length S:
6 x non-embedding parameters x S + 12 x layers x hidden x S^2 (attention scores and values).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from torch import nn
from transformers import (
    AutoModel,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    get_linear_schedule_with_warmup,
)
from transformers.trainer_callback import PrinterCallback
from transformers.utils import logging as hf_logging

from xtl.core.hparams import Hparams
from xtl.data import tasks
from xtl.model import dropout, embedding_grad, zoo
from xtl.model.models import XtlModel
from xtl.training import devices, sampling, train, train_data

TASK = tasks.get("synth-nli")  # a 3-way pair-classification head; the rows are synthetic
BATCH = 32
LR = 1e-5
MODEL = "multilingual-e5-small"
# The kit's CPU levers (xtl.model.dropout, xtl.model.embedding_grad), both on in `fit_tasks`.
LEVERS = ("masks", "grad")


# --- data and FLOPs ---------------------------------------------------------------------------

def lognormal_lengths(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.lognormal(np.log(45), 0.5, n)), 8, 256).astype(np.int64)


def make_pool(n: int, tokenizer) -> datasets.Dataset:
    lengths = lognormal_lengths(n)
    rng = np.random.default_rng(1)
    ids = [[tokenizer.cls_token_id, *rng.integers(5, len(tokenizer) - 1, s - 2).tolist(),
            tokenizer.sep_token_id] for s in lengths]
    return datasets.Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(i)
                                                                           for i in ids],
                                       "labels": (np.arange(n) % 3).tolist()})


@dataclass
class Shape:
    non_embedding: int
    layers: int
    hidden: int

    def flops(self, lengths: list[int]) -> float:
        """Training FLOPs of one batch: 6 N S per example plus attention, 12 L H S^2."""
        return sum(6 * self.non_embedding * s + 12 * self.layers * self.hidden * s * s
                   for s in lengths)


def shape_of(model: XtlModel) -> Shape:
    embeddings = sum(p.numel() for n, p in model.named_parameters() if "embeddings." in n
                     and not n.endswith(("LayerNorm.weight", "LayerNorm.bias")))
    total = sum(p.numel() for p in model.parameters())
    config = model.encoder.config
    return Shape(total - embeddings, config.num_hidden_layers, config.hidden_size)


def matmul_peak(size: int = 2048, reps: int = 8, trials: int = 4) -> float:
    """bf16 matmul FLOP/s, best of `trials` (the machine may be shared)."""
    a = torch.randn(size, size, dtype=torch.bfloat16)
    b = torch.randn(size, size, dtype=torch.bfloat16)
    a @ b  # warm-up
    best = 0.0
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, reps * 2 * size ** 3 / (time.perf_counter() - start))
    return best


# --- the arms ---------------------------------------------------------------------------------

@dataclass
class Tally:
    """Timed steps of one arm: seconds, examples, real and padded tokens, model FLOPs."""

    seconds: float = 0.0
    steps: int = 0
    examples: int = 0
    real: int = 0
    padded: int = 0
    flops: float = 0.0

    def add(self, seconds: float, mask: torch.Tensor, shape: Shape) -> None:
        self.seconds += seconds
        self.steps += 1
        self.examples += len(mask)
        self.real += int(mask.sum())
        self.padded += mask.numel()
        self.flops += shape.flops(mask.sum(1).tolist())


class Turns:
    """Arms take turns of `turn` steps, in order; only the arm whose turn it is runs."""

    def __init__(self, names: list[str], turn: int, threads: int):
        self.names, self.turn, self.threads = names, turn, threads
        self.current = names[0]
        self.done: set[str] = set()
        self.cond = threading.Condition()
        self.count = dict.fromkeys(names, 0)
        self.started = dict.fromkeys(names, 0.0)  # when the step now running began
        self.times: dict[str, list[float]] = {n: [] for n in names}

    def begin(self, name: str) -> None:
        """Wait for `name`'s turn (also sets this thread's intra-op threads)."""
        torch.set_num_threads(self.threads)
        with self.cond:
            self.cond.wait_for(lambda: self.current == name)
        self.started[name] = time.perf_counter()

    def step_done(self, name: str, last: bool = False) -> None:
        now = time.perf_counter()
        self.times[name].append(now - self.started[name])
        self.started[name] = now
        self.count[name] += 1
        if last:
            self.done.add(name)
        if last or self.count[name] % self.turn == 0:
            with self.cond:
                rest = [n for n in self.names if n not in self.done]
                if rest:  # the next arm still training, in order
                    i = self.names.index(name)
                    order = self.names[i + 1:] + self.names[:i + 1]
                    self.current = next(n for n in order if n not in self.done)
                self.cond.notify_all()
            if not last:
                self.begin(name)


def in_turns(arms: list, steps: int, turn: int, shape: Shape) -> dict[str, Tally]:
    """Every arm trains `steps` steps, in turns of `turn` (one arm at a time), each in its own
    thread; each arm's timed steps tallied."""
    turns = Turns([a.name for a in arms], turn, torch.get_num_threads())
    workers = [threading.Thread(target=arm.train, args=(steps, turns)) for arm in arms]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    tally = {arm.name: Tally() for arm in arms}
    for arm in arms:
        assert len(turns.times[arm.name]) == steps and len(arm.masks) >= steps
        for seconds, mask in zip(turns.times[arm.name], arm.masks[:steps], strict=True):
            tally[arm.name].add(seconds, mask, shape)
    return tally


def fresh_model(location: str) -> XtlModel:
    torch.manual_seed(0)  # the same head in every arm
    return XtlModel(AutoModel.from_pretrained(location), [TASK])


class KitArm:
    """The kit's loop body, exactly as `xtl.training.train.fit_tasks` runs it for one task."""

    name = "kit"

    def __init__(self, location: str, pool: datasets.Dataset, tokenizer, total: int,
                 levers: tuple[str, ...] = LEVERS):
        hp = Hparams({"learning_rate": LR, "batch_size": BATCH})
        model = fresh_model(location)
        if "masks" in levers:  # as fit_tasks does on a CPU
            dropout.install(model)
        if "grad" in levers:  # as fit_tasks does on a CPU, in one process
            embedding_grad.install(model)
        self.accelerator = devices.make_accelerator("bf16", torch.device("cpu"))
        optimizer = train.make_optimizer(model, hp)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * total), total)
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            model, optimizer, scheduler)
        self.model.train()
        plan = sampling.BatchPlan(train_data.lengths(pool), BATCH, seed=0)  # grouped: kit default
        self.data = train_data.TaskData(TASK, None, None, pool, sampling.Cursor(plan),
                                        train_data.collator(TASK, tokenizer, hp))
        self.masks: list[torch.Tensor] = []
        self.losses: list[float] = []

    def step(self) -> None:
        group = self.data.cursor.take(1)
        batches, weights = train_data.micro_batches(self.data, group, 0, 1)
        loss, _, _ = train.train_step(self.accelerator, self.model, self.optimizer,
                                      self.scheduler, TASK, batches, 1.0, weights)
        self.masks.append(batches[0]["attention_mask"])
        self.losses.append(loss)

    def warm_up(self, steps: int) -> None:
        self.data.cursor.epoch = 1000  # an epoch of its own: the timed one starts fresh
        for _ in range(steps):
            self.step()
        self.data.cursor.epoch, self.data.cursor.position, self.masks = 0, 0, []
        self.losses = []

    def train(self, steps: int, turns: Turns) -> None:
        turns.begin(self.name)
        for i in range(steps):
            self.step()
            turns.step_done(self.name, last=i == steps - 1)


class Classifier(nn.Module):
    """The same XtlModel, with the forward signature and loss output the Trainer expects."""

    def __init__(self, model: XtlModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels):
        logits = self.model(TASK.name, {"input_ids": input_ids, "attention_mask": attention_mask})
        return {"loss": nn.functional.cross_entropy(logits.float(), labels), "logits": logits}


class TakeTurns(TrainerCallback):
    """Puts a Trainer on the shared Turns: wait at the start, report every step's end."""

    def __init__(self, name: str):
        self.name, self.turns, self.steps = name, None, 0

    def on_train_begin(self, args, state, control, **kwargs):
        if self.turns is not None:
            self.turns.begin(self.name)

    def on_step_end(self, args, state, control, **kwargs):
        if self.turns is not None:
            self.turns.step_done(self.name, last=state.global_step == self.steps)


class RecordingCollator(DataCollatorWithPadding):
    """The kit's padding collator, noting each batch's attention mask (tokens, padding)."""

    masks: list[torch.Tensor]

    def __call__(self, features):
        batch = super().__call__(features)
        self.masks.append(batch["attention_mask"])
        return batch


class LossTrainer(Trainer):
    """A Trainer noting each step's training loss (the kit's `train_step` returns its own)."""

    losses: list[float]

    def training_step(self, *args, **kwargs) -> torch.Tensor:
        loss = super().training_step(*args, **kwargs)
        self.losses.append(float(loss))
        return loss


class TrainerArm:
    def __init__(self, name: str, location: str, pool: datasets.Dataset, tokenizer,
                 strategy: str, workdir: str):
        self.name = name
        self.callback = TakeTurns(name)
        self.collator = RecordingCollator(tokenizer)
        self.collator.masks = []
        args = TrainingArguments(
            output_dir=os.path.join(workdir, name), per_device_train_batch_size=BATCH,
            learning_rate=LR, weight_decay=0.01, warmup_steps=0.1, max_grad_norm=1.0,
            lr_scheduler_type="linear", bf16=True, use_cpu=True, max_steps=1,
            train_sampling_strategy=strategy, save_strategy="no", report_to="none",
            disable_tqdm=True, seed=0)
        self.trainer = LossTrainer(model=Classifier(fresh_model(location)), args=args,
                                   train_dataset=pool, data_collator=self.collator,
                                   callbacks=[self.callback])
        self.trainer.remove_callback(PrinterCallback)  # no metrics dict printed
        self.trainer.losses = []

    def warm_up(self, steps: int) -> None:
        self.trainer.args.max_steps, self.trainer.args.seed = steps, 1000
        self.trainer.train()

    @property
    def losses(self) -> list[float]:
        return self.trainer.losses

    @property
    def masks(self) -> list[torch.Tensor]:
        # accelerate's loader collates one batch ahead (to know the last one): batch i is
        # masks[i]; the warm-up's batches come first.
        return self.collator.masks

    def train(self, steps: int, turns: Turns) -> None:
        self.collator.masks, self.trainer.losses = [], []
        self.trainer.args.max_steps, self.trainer.args.seed = steps, 0
        self.callback.turns, self.callback.steps = turns, steps
        self.trainer.train()


# --- where a kit step's time goes (for the MFU discussion) ------------------------------------

def breakdown(arm: KitArm, steps: int) -> dict[str, float]:
    """Mean seconds per part of a kit step: batch, forward+backward, clip, optimizer."""
    parts = dict.fromkeys(("batch", "forward+backward", "clip", "optimizer"), 0.0)
    acc, model = arm.accelerator, arm.model
    for _ in range(steps):
        t0 = time.perf_counter()
        # a cursor left at an epoch's end hands out an empty group once, then the next epoch
        group = arm.data.cursor.take(1) or arm.data.cursor.take(1)
        batches, _ = train_data.micro_batches(arm.data, group, 0, 1)
        t1 = time.perf_counter()
        with acc.autocast():
            logits = model(TASK.name, batches[0])
            loss = nn.functional.cross_entropy(logits.float(), batches[0]["labels"])
        acc.backward(loss)
        t2 = time.perf_counter()
        acc.clip_grad_norm_(model.parameters(), 1.0)
        t3 = time.perf_counter()
        arm.optimizer.step()
        arm.scheduler.step()
        arm.optimizer.zero_grad()
        t4 = time.perf_counter()
        for key, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[key] += seconds / steps
    return parts


GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def op_profile(arm: KitArm, top: int = 8) -> tuple[float, list[tuple[str, float]]]:
    """One kit step under torch.profiler: GEMM share of operator time, and the top operators."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        arm.step()
    events = sorted(((e.key, e.self_cpu_time_total) for e in prof.key_averages()),
                    key=lambda e: -e[1])
    total = sum(t for _, t in events)
    gemm = sum(t for k, t in events if k in GEMM_OPS) / total
    return gemm, [(k, t / total) for k, t in events[:top]]


def small_matmul_rate(tokens: int, hidden: int) -> float:
    """bf16 FLOP/s of the model's own GEMM shape (tokens x hidden @ hidden x 4 hidden)."""
    a = torch.randn(tokens, hidden, dtype=torch.bfloat16)
    b = torch.randn(hidden, 4 * hidden, dtype=torch.bfloat16)
    a @ b
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(20):
            a @ b
        best = max(best, 20 * 2 * tokens * hidden * 4 * hidden / (time.perf_counter() - start))
    return best


def print_loss_curves(losses: dict[str, list[float]], differ: str, window: int = 6) -> None:
    """Each arm's training loss over the epoch, as means of `window` steps."""
    print(f"training loss over the epoch, mean of each {window} steps (the same pool; {differ}):")
    for name, curve in losses.items():
        means = [np.mean(curve[i:i + window]) for i in range(0, len(curve), window)]
        print(f"  {name:<11}" + " ".join(f"{m:.4f}" for m in means)
              + f"   epoch mean {np.mean(curve):.4f}")


# --- main -------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=960,
                        help="sentence pairs; one epoch of them is timed in every arm")
    parser.add_argument("--turn", type=int, default=6, help="steps per turn of an arm")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads (default: torch's, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("$ " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    started = time.perf_counter()
    peak = matmul_peak()
    print(f"measured bf16 matmul peak (2048^3, best of 4): {peak / 1e9:.0f} GFLOP/s (measured "
          "again at the end; the MFU uses the higher)")

    location, source = zoo.materialize(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(str(location))
    pool = make_pool(args.pool, tokenizer)
    lengths = np.asarray(train_data.lengths(pool))
    print(f"model {MODEL} ({source}); pool {args.pool} pairs, tokens per pair: median "
          f"{np.median(lengths):.0f}, mean {lengths.mean():.1f}, p95 "
          f"{np.percentile(lengths, 95):.0f}, max {lengths.max()} (log-normal, median 45, "
          f"sigma 0.5, clipped 8-256); batch {BATCH}")
    steps = -(-args.pool // BATCH)  # one epoch
    with tempfile.TemporaryDirectory() as workdir:
        arms = [KitArm(str(location), pool, tokenizer, steps + 8),
                TrainerArm("trainer", str(location), pool, tokenizer, "random", workdir),
                TrainerArm("grouped", str(location), pool, tokenizer, "group_by_length",
                           workdir)]
        shape = shape_of(arms[0].model)
        print(f"non-embedding parameters {shape.non_embedding / 1e6:.1f} M of "
              f"{sum(p.numel() for p in arms[0].model.parameters()) / 1e6:.1f} M; "
              f"{shape.layers} layers, hidden {shape.hidden}; {steps} steps per epoch")
        for arm in arms:  # warm-up: allocator, kernels, first optimizer state
            arm.warm_up(2)
        tally = in_turns(arms, steps, args.turn, shape)
        losses = {arm.name: list(arm.losses) for arm in arms}
        arms[0].data.cursor.position = 10  # not an epoch's first (longest) batch
        parts = breakdown(arms[0], 4)
        gemm_share, ops = op_profile(arms[0])
        peak = max(peak, matmul_peak())  # again at the end: the best of both
        tokens = int(np.mean([int(m.sum()) for m in arms[0].masks[-4:]]))
        gemm = small_matmul_rate(tokens, shape.hidden)

    print(f"bf16 matmul peak used: {peak / 1e9:.0f} GFLOP/s")
    print(f"\n{'arm':<9}{'ex/s':>8}{'real tok/s':>12}{'padded':>8}{'s/step':>8}"
          f"{'GFLOP/s':>9}{'MFU':>7}   (one epoch: {steps} steps each, turns of {args.turn})")
    for name, t in tally.items():
        print(f"{name:<9}{t.examples / t.seconds:>8.1f}{t.real / t.seconds:>12.0f}"
              f"{1 - t.real / t.padded:>8.1%}{t.seconds / t.steps:>8.2f}"
              f"{t.flops / t.seconds / 1e9:>9.1f}{t.flops / t.seconds / peak:>7.1%}")
    kit = tally["kit"]
    for other in ("trainer", "grouped"):
        o = tally[other]
        print(f"kit / {other}: {kit.examples / kit.seconds / (o.examples / o.seconds):.2f}x "
              f"examples/s")
    print_loss_curves(losses, "each arm its own batch order and dropout masks")
    step = sum(parts.values())
    print("kit step breakdown (mean of 4 steps): " + ", ".join(
        f"{k} {v:.2f} s ({v / step:.0%})" for k, v in parts.items()))
    print(f"kit step under torch.profiler: GEMMs {gemm_share:.0%} of operator time; top "
          "operators: " + ", ".join(f"{k.removeprefix('aten::')} {v:.0%}" for k, v in ops))
    print(f"bf16 GEMM at the model's shape ({tokens} x {shape.hidden} @ {shape.hidden} x "
          f"{4 * shape.hidden}): {gemm / 1e9:.0f} GFLOP/s = {gemm / peak:.0%} of peak")
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average after: "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
