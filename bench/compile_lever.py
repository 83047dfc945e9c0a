"""One training lever, measured: `torch.compile` of the encoder in the kit's loop (CPU, bf16).

Usage: python bench/compile_lever.py [--pool 960] [--turn 6] [--threads N]

Two arms of bench/train_vs_trainer.py's `kit` arm (multilingual-e5-small, every parameter
trained, dropout on, fused AdamW, bf16 autocast, length-grouped batches of 32, one epoch of the
same synthetic pool): `eager` as the kit trains today, and `compiled`, the same with
`model.encoder.compile(dynamic=True)` (inductor; sequence lengths vary from batch to batch, so
shapes are dynamic). The compiled arm's first steps are timed apart: that is the compile time a
cell would pay. Then both train one epoch in alternating turns (train_vs_trainer's protocol, so a
shared machine's load falls on both), and the table gives real tokens/s and each arm's mean
training loss over the epoch (the same data and start; dropout masks differ between the arms).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).parent))
from train_vs_trainer import (  # noqa: E402
    BATCH,
    MODEL,
    KitArm,
    in_turns,
    make_pool,
    shape_of,
)

from xtl.model import zoo  # noqa: E402


class LossArm(KitArm):
    """The kit arm under a name of its own."""

    def __init__(self, name: str, *args) -> None:
        super().__init__(*args)
        self.name = name


def lever_args(description: str, parser: argparse.ArgumentParser | None = None
               ) -> argparse.Namespace:
    """The lever benches' options (`parser` may hold more), parsed; threads set, header printed."""
    parser = parser or argparse.ArgumentParser(description=description)
    parser.add_argument("--pool", type=int, default=960)
    parser.add_argument("--turn", type=int, default=6)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("$ " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} "
          f"cores; load average before: {os.getloadavg()[0]:.2f}")
    return args


def lever_pool(args: argparse.Namespace) -> tuple[str, object, datasets.Dataset, int]:
    """e5-small's location and tokenizer, the synthetic pool, and the steps of one epoch."""
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    location, _ = zoo.materialize(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(str(location))
    return str(location), tokenizer, make_pool(args.pool, tokenizer), -(-args.pool // BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-up", type=int, default=4,
                        help="steps before timing (the compiled arm compiles in them)")
    args = lever_args("", parser)
    location, tokenizer, pool, steps = lever_pool(args)
    arms = [LossArm("eager", location, pool, tokenizer, steps + 8),
            LossArm("compiled", location, pool, tokenizer, steps + 8)]
    arms[1].model.encoder.compile(dynamic=True)
    shape = shape_of(arms[0].model)
    warm = {}
    for arm in arms:
        start = time.perf_counter()
        arm.warm_up(args.warm_up)
        warm[arm.name] = time.perf_counter() - start
    tally = in_turns(arms, steps, args.turn, shape)
    print(f"\n{'arm':<10}{'real tok/s':>11}{'s/step':>8}{'warm-up':>9}{'mean loss':>11}"
          f"   (one epoch: {steps} steps each after {args.warm_up} warm-up steps)")
    for arm in arms:
        t = tally[arm.name]
        print(f"{arm.name:<10}{t.real / t.seconds:>11.0f}{t.seconds / t.steps:>8.2f}"
              f"{warm[arm.name]:>8.1f}s{np.mean(arm.losses):>11.4f}")
    eager, compiled = tally["eager"], tally["compiled"]
    per_step = compiled.seconds / compiled.steps
    ratio = compiled.real / compiled.seconds / (eager.real / eager.seconds)
    compile_s = warm["compiled"] - args.warm_up * per_step
    print(f"compiled / eager: {ratio:.2f}x real tokens/s; compile time about {compile_s:.0f} s"
          f" (the compiled warm-up less {args.warm_up} steady steps)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
