"""fp32 vs bf16 autocast for the e5-small demo (parameters/demo.yaml) on this CPU.

Usage: python bench/demo_precision.py [--rows 64] [--eval-rows 100] [--rounds 2]

What the demo does, timed per precision: `xtl.training.train.fit` for one epoch on English synth-qa
and synth-ner rows (frozen word embeddings, batch 16, the demo's max lengths; features
tokenised beforehand), then `xtl.evaluation.evaluate.predict` on one language's dev rows. Each arm
is timed in CPU seconds of this process (with 2 intra-op threads, about 2x its wall time on an
idle machine) as well as wall time: on a shared machine wall time follows the other jobs,
CPU time much less. The arms take turns over rounds; the best round of each is kept. Prints
examples per CPU second and per wall second per arm, and the bf16/fp32 ratios.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from xtl.core.hparams import Hparams
from xtl.data import sources, tasks
from xtl.data.features import features
from xtl.evaluation import evaluate
from xtl.model import zoo
from xtl.model.models import build
from xtl.training import train

ARMS = ("fp32", "bf16")
# task -> max_length as in parameters/demo.yaml
DEMO = {"synth-qa": 96, "synth-ner": 64}


def hparams(precision: str, max_length: int) -> Hparams:
    return Hparams(dict(zoo.PRESETS["multilingual-e5-small"].hparams) | {
        "precision": precision, "max_length": max_length, "batch_size": 16, "epochs": 1,
        "learning_rate": 1e-4, "freeze_embeddings": True, "eval_every": 10_000,
        "doc_stride": 32})


def _timed(work) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) that `work()` took."""
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return time.process_time() - cpu, time.perf_counter() - wall


def train_seconds(path: str, task: tasks.Task, rows: int, hp: dict, work: Path
                  ) -> tuple[float, float]:
    """One epoch of `rows` English rows (with one 16-row dev evaluation and the checkpoints)."""
    model, tok, _ = build(path, [task], seed=0)
    trn = sources.load(task, "train", "en", size=rows)
    dev = sources.load(task, "validation", "en", size=16)
    features(task, trn, tok, hp, train=True)  # tokenised outside the timed span
    features(task, dev, tok, hp)
    return _timed(lambda: train.fit(model, tok, task, trn, dev, hp, 0, work / "ckpt",
                                    work / "h.jsonl", {"cell": "bench"}))


def eval_seconds(path: str, task: tasks.Task, rows: int, hp: dict) -> tuple[float, float]:
    model, tok, _ = build(path, [task], seed=0)
    split = sources.load(task, "validation", "de", size=rows)
    evaluate.predict(model, tok, task, split, hp, hp["precision"])  # warm-up (and tokenise)
    return _timed(lambda: evaluate.predict(model, tok, task, split, hp, hp["precision"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--eval-rows", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    path, _ = zoo.materialize("multilingual-e5-small")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    best: dict[tuple[str, str, str], tuple[float, float]] = {}  # examples per (CPU, wall) s

    def keep(key: tuple[str, str, str], rows: int, seconds: tuple[float, float]) -> None:
        rate = (rows / seconds[0], rows / seconds[1])
        old = best.get(key, (0.0, 0.0))
        best[key] = (max(old[0], rate[0]), max(old[1], rate[1]))

    for r in range(args.rounds):
        for name, max_length in DEMO.items():
            task = tasks.get(name)
            for arm in ARMS:
                hp = hparams(arm, max_length)
                with tempfile.TemporaryDirectory() as tmp:
                    keep((name, arm, "train"), args.rows,
                         train_seconds(str(path), task, args.rows, hp, Path(tmp)))
                keep((name, arm, "eval"), args.eval_rows,
                     eval_seconds(str(path), task, args.eval_rows, hp))
        print(f"round {r + 1} done, load average {os.getloadavg()[0]:.2f}", flush=True)
        table(best)


def table(best: dict[tuple[str, str, str], tuple[float, float]]) -> None:
    print("| task | what | fp32 ex/CPU-s | bf16 ex/CPU-s | ratio | fp32 ex/s | bf16 ex/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name in DEMO:
        for what in ("train", "eval"):
            (a, aw), (b, bw) = best[(name, "fp32", what)], best[(name, "bf16", what)]
            print(f"| {name} | {what} | {a:.1f} | {b:.1f} | {b / a:.2f}x "
                  f"| {aw:.1f} | {bw:.1f} | {bw / aw:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
