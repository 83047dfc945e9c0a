"""Training throughput: fp32 vs bf16 autocast, and length-grouped batches on vs off.

Usage: python bench/train_speed.py [--models tiny multilingual-e5-small] [--steps N] [--rounds R]

Data: a pool of sentence pairs whose token lengths are drawn from a log-normal distribution
(median 45 tokens, sigma 0.5, clipped to [8, 256]: roughly MNLI pairs under an XLM-R
tokenizer), random token ids, 3 labels. Each setting builds its epoch plan over the whole pool
(grouping as in training: mega-batches of 50 batches) and is timed on N batches, one from the
middle of each of N equal quantile bins of that epoch's padded batch length, so the figure
stands for the full epoch;
settings are interleaved over rounds and the best round kept (the machine may be shared).
Timing uses `xtl.train.train_step`, the loop's own step (forward, backward, clip, AdamW).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from xtl import sampling, sources, tasks, train, zoo
from xtl.config import HPARAM_DEFAULTS
from xtl.features import features
from xtl.models import XtlModel

TASK = tasks.get("synth-nli")
POOL = 16_000
BATCH = 32


def lognormal_lengths(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.lognormal(np.log(45), 0.5, n)), 8, 256).astype(np.int64)


def representative(batches: list[list[int]], lengths: np.ndarray, k: int) -> list[list[int]]:
    """k full batches at the midpoints of k equal quantile bins of padded batch length."""
    full = sorted((b for b in batches if len(b) == BATCH), key=lambda b: lengths[b].max())
    return [full[int((i + 0.5) * len(full) / k)] for i in range(k)]


def make_batch(indices: list[int], lengths: np.ndarray, vocab: int, pad_id: int) -> dict:
    width = int(lengths[indices].max())
    ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    g = torch.Generator().manual_seed(int(indices[0]))
    for row, i in enumerate(indices):
        ids[row, :lengths[i]] = torch.randint(5, vocab, (int(lengths[i]),), generator=g)
        mask[row, :lengths[i]] = 1
    labels = torch.tensor([i % 3 for i in indices])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def time_setting(model: XtlModel, precision: str, batches: list[dict]) -> float:
    """Examples per second of the training step over `batches` (shortest first, as warm-up)."""
    hp = HPARAM_DEFAULTS | {"learning_rate": 1e-5}
    accelerator = train.make_accelerator(precision, torch.device("cpu"))
    optimizer = train.make_optimizer(model, hp)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    prepared, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    prepared.train()
    train.train_step(accelerator, prepared, optimizer, scheduler, TASK, [batches[0]], 1.0)
    start = time.perf_counter()
    for batch in batches:
        train.train_step(accelerator, prepared, optimizer, scheduler, TASK, [batch], 1.0)
    seconds = time.perf_counter() - start
    accelerator.unwrap_model(prepared, keep_fp32_wrapper=False)  # drop the autocast patch
    return sum(len(b["input_ids"]) for b in batches) / seconds


def synth_padding(tokenizer) -> tuple[float, float]:
    """Full-epoch padded fraction on synth-nli, all 8 languages mixed (batch 32, max 128)."""
    lens = []
    hp = HPARAM_DEFAULTS | {"max_length": 128}
    for lang in TASK.languages:
        split = sources.load(TASK, "train", lang)
        lens.append(train.lengths(features(TASK, split, tokenizer, hp, train=True, cache=False)))
    lengths = np.concatenate(lens)
    return tuple(sampling.padded_fraction(sampling.BatchPlan(lengths, BATCH, 0, g).epoch(0),
                                          lengths) for g in (False, True))


def bench_model(name: str, steps: int, rounds: int) -> None:
    location, source = zoo.materialize(name)
    tokenizer = AutoTokenizer.from_pretrained(str(location))
    torch.manual_seed(0)
    model = XtlModel(AutoModel.from_pretrained(str(location)), [TASK])
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"\n## {name} ({params:.1f} M parameters; {source})")
    lengths = lognormal_lengths(POOL)
    plans = {g: sampling.BatchPlan(lengths, BATCH, 0, g).epoch(0) for g in (False, True)}
    chosen = {g: representative(plans[g], lengths, steps) for g in plans}
    batches = {g: [make_batch(b, lengths, len(tokenizer), tokenizer.pad_token_id)
                   for b in chosen[g]] for g in plans}
    settings = [(p, g) for g in (False, True) for p in ("fp32", "bf16")]
    speed = {s: 0.0 for s in settings}
    for _ in range(rounds):  # interleaved rounds, best kept: the machine may be shared
        for precision, group in settings:
            speed[precision, group] = max(speed[precision, group],
                                          time_setting(model, precision, batches[group]))
    print(f"{'precision':<10}{'group_by_length':<17}{'train ex/s':>11}{'padded (epoch)':>16}"
          f"{'padded (timed)':>16}  (best of {rounds} round(s), {steps} timed steps each)")
    for precision, group in settings:
        print(f"{precision:<10}{str(group):<17}{speed[precision, group]:>11.1f}"
              f"{sampling.padded_fraction(plans[group], lengths):>16.3f}"
              f"{sampling.padded_fraction(chosen[group], lengths):>16.3f}")
    base = speed["fp32", False]
    print(f"ratios vs fp32 without grouping: bf16 {speed['bf16', False] / base:.2f}x, "
          f"grouping {speed['fp32', True] / base:.2f}x, both {speed['bf16', True] / base:.2f}x; "
          f"bf16 with grouping vs bf16 without: {speed['bf16', True] / speed['bf16', False]:.2f}x")
    plain, grouped = synth_padding(tokenizer)
    print(f"synth-nli (8 languages, 9600 rows, full epoch): padded fraction {plain:.3f} without "
          f"grouping, {grouped:.3f} with")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "multilingual-e5-small"])
    parser.add_argument("--steps", type=int, default=0,
                        help="timed batches per setting (default: 16 for tiny, 6 otherwise)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="interleaved rounds, best kept (default: 3 for tiny, 1 otherwise)")
    args = parser.parse_args()
    print("$ " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, CPU bf16 kernels: "
          f"{torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    print(f"data: {POOL} pairs, lengths log-normal (median 45, sigma 0.5, clipped 8-256), "
          f"batch {BATCH}, AdamW, one optimizer step per batch")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    for name in args.models:
        tiny = name == "tiny"
        bench_model(name, args.steps or (16 if tiny else 6), args.rounds or (3 if tiny else 1))
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average after: "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
