"""Training throughput: fp32 vs bf16 autocast, length-grouped batches on vs off, and the word
embeddings trained densely, frozen, or with sparse updates.

Usage: python bench/train_speed.py [--models tiny multilingual-e5-small] [--steps N] [--rounds R]

Data: a pool of sentence pairs whose token lengths are drawn from a log-normal distribution
(median 45 tokens, sigma 0.5, clipped to [8, 256]: roughly MNLI pairs under an XLM-R
tokenizer), random token ids, 3 labels. Each setting builds its epoch plan over the whole pool
(grouping as in training: mega-batches of 50 batches) and is timed on N batches, one from the
middle of each of N equal quantile bins of that epoch's padded batch length, so the figure
stands for the full epoch; settings are interleaved over rounds and the best round kept (the machine
may be shared). Timing uses `xtl.training.train.train_step`, the loop's own step (forward, backward,
clip, AdamW).

Embedding arms (bf16, grouped): `full` (every weight, dense AdamW: the default), `frozen`
(`freeze_embeddings: true`: no gradient or optimizer state for the word-embedding matrix) and
`sparse` (the matrix's gradient holds only the rows of the batch's tokens, `nn.Embedding(sparse=
True)`, updated by `torch.optim.SparseAdam`; the other weights by AdamW; the clip norm counts
both). The kit has no `sparse` option: `train_step` clips with `clip_grad_norm_`, which sparse
gradients do not support, so that arm runs its own copy of the step.
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

from xtl.core.hparams import Hparams
from xtl.data import sources, tasks
from xtl.data.features import features
from xtl.model import zoo
from xtl.model.models import XtlModel
from xtl.training import devices, sampling, train, train_data

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
    hp = Hparams({"learning_rate": 1e-5})
    accelerator = devices.make_accelerator(precision, torch.device("cpu"))
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


def sparse_step(model: XtlModel, optimizers: list, batch: dict, max_norm: float = 1.0) -> None:
    """`train.train_step` for a model whose word embeddings have sparse gradients."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(TASK.name, batch)
    loss = torch.nn.functional.cross_entropy(logits.float(), batch["labels"])
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    squares = [(g.coalesce().values() if g.is_sparse else g).float().pow(2).sum() for g in grads]
    scale = max_norm / (float(torch.stack(squares).sum().sqrt()) + 1e-6)
    if scale < 1.0:
        for g in grads:
            g.mul_(scale)
    for optimizer in optimizers:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def time_embeddings(model: XtlModel, arm: str, batches: list[dict]) -> float:
    """Examples per second of one embedding arm (bf16) over `batches`, after one warm-up step."""
    embedding = model.encoder.get_input_embeddings()
    embedding.weight.requires_grad_(arm != "frozen")
    embedding.sparse = arm == "sparse"
    try:
        if arm != "sparse":
            return time_setting(model, "bf16", batches)
        hp = Hparams({"learning_rate": 1e-5})
        dense = [p for p in model.parameters() if p is not embedding.weight]
        optimizers = [torch.optim.AdamW(dense, lr=hp["learning_rate"], fused=True),
                      torch.optim.SparseAdam([embedding.weight], lr=hp["learning_rate"])]
        model.train()
        sparse_step(model, optimizers, batches[0])
        start = time.perf_counter()
        for batch in batches:
            sparse_step(model, optimizers, batch)
        return sum(len(b["input_ids"]) for b in batches) / (time.perf_counter() - start)
    finally:
        embedding.weight.requires_grad_(True)
        embedding.sparse = False


def bench_embeddings(model: XtlModel, batches: list[dict], rounds: int, steps: int) -> None:
    arms = ("full", "frozen", "sparse")
    speed = {arm: 0.0 for arm in arms}
    for _ in range(rounds):
        for arm in arms:
            speed[arm] = max(speed[arm], time_embeddings(model, arm, batches))
    share = model.encoder.get_input_embeddings().weight.numel() / sum(
        p.numel() for p in model.parameters())
    print(f"word embeddings ({share:.0%} of the weights), bf16 with grouping "
          f"(best of {rounds} round(s), {steps} timed steps each):")
    print(f"{'embeddings':<12}{'train ex/s':>11}{'vs full':>9}")
    for arm in arms:
        print(f"{arm:<12}{speed[arm]:>11.1f}{speed[arm] / speed['full']:>8.2f}x")


def synth_padding(tokenizer) -> tuple[float, float]:
    """Full-epoch padded fraction on synth-nli, all 8 languages mixed (batch 32, max 128)."""
    lens = []
    hp = Hparams({"max_length": 128})
    for lang in TASK.languages:
        split = sources.load(TASK, "train", lang)
        feats = features(TASK, split, tokenizer, hp, train=True, cache=False)
        lens.append(train_data.lengths(feats))
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
    bench_embeddings(model, batches[True], rounds, steps)
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
