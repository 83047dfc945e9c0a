"""The kit's two CPU training levers, measured one by one (e5-small, bf16, one process).

Usage: python bench/cpu_levers.py [--pool 960] [--turn 6] [--threads N]

Three arms of bench/train_vs_trainer.py's `kit` arm (multilingual-e5-small, every parameter
trained, dropout on, fused AdamW, bf16 autocast, length-grouped batches of 32, one epoch of the
same synthetic pool):
  native  torch's own dropout (one Bernoulli draw per element; SDPA's math path for the
          attention probabilities) and embedding backward (a fresh dense gradient each step)
  masks   + `xtl.model.dropout.install`: two mask elements per 64-bit SFC64 draw
  masks+grad  + `xtl.model.embedding_grad.install`: the word embeddings' gradient written into
          one buffer reused across steps (what `fit_tasks` runs on a CPU in one process)
They train one epoch each in alternating turns (train_vs_trainer's protocol, so a shared
machine's load falls on all alike); the table gives real tokens/s, then each arm's training loss
over the epoch (the same data and start; the arms draw their masks in turns from torch's one
generator, so the losses agree within noise, not to the bit; tests/test_cpu_levers.py proves
the values each lever computes). The last lines time one dropout, and one step's
embedding gradient, each way.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from compile_lever import LossArm, lever_args, lever_pool  # noqa: E402
from train_vs_trainer import (  # noqa: E402
    BATCH,
    in_turns,
    print_loss_curves,
    shape_of,
)

from xtl.model import dropout, embedding_grad  # noqa: E402

ARMS = {"native": (), "masks": ("masks",), "masks+grad": ("masks", "grad")}


def best_ms(fn, reps: int = 10) -> float:
    """Milliseconds per call of `fn`, best of 3 rounds of `reps`."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - start) / reps * 1e3)
    return best


def one_backward(embedding: nn.Embedding, ids: torch.Tensor) -> None:
    """Forward + backward of a lookup, then the optimizer's zero_grad (set_to_none)."""
    embedding(ids).sum().backward()
    embedding.weight.grad = None


def main() -> None:
    args = lever_args(__doc__.splitlines()[0])
    location, tokenizer, pool, steps = lever_pool(args)
    arms = [LossArm(name, location, pool, tokenizer, steps + 8, levers)
            for name, levers in ARMS.items()]
    shape = shape_of(arms[0].model)
    for arm in arms:
        arm.warm_up(2)
    tally = in_turns(arms, steps, args.turn, shape)
    print(f"\n{'arm':<12}{'real tok/s':>11}{'s/step':>8}"
          f"   (one epoch: {steps} steps each after 2 warm-up steps)")
    for arm in arms:
        t = tally[arm.name]
        print(f"{arm.name:<12}{t.real / t.seconds:>11.0f}{t.seconds / t.steps:>8.2f}")
    print_loss_curves({arm.name: arm.losses for arm in arms},
                      "the same batches; masks drawn in turns from torch's one generator")
    rate = {name: t.real / t.seconds for name, t in tally.items()}
    print(f"masks / native: {rate['masks'] / rate['native']:.2f}x; masks+grad / masks: "
          f"{rate['masks+grad'] / rate['masks']:.2f}x; masks+grad / native: "
          f"{rate['masks+grad'] / rate['native']:.2f}x real tokens/s")

    x = torch.randn(BATCH, 64, 384, dtype=torch.bfloat16, requires_grad=True)
    ones = torch.ones_like(x)
    torch_ms = best_ms(lambda: nn.functional.dropout(x, 0.1, True).backward(ones), 20)
    ours_ms = best_ms(lambda: dropout.cpu_dropout(x, 0.1).backward(ones), 20)
    print(f"one dropout of a {tuple(x.shape)} bf16 tensor, forward + backward: torch "
          f"{torch_ms:.2f} ms, masks {ours_ms:.2f} ms ({torch_ms / ours_ms:.1f}x)")
    words = arms[0].model.encoder.get_input_embeddings()
    plain = nn.Embedding(*words.weight.shape, padding_idx=words.padding_idx)
    reused = embedding_grad.ReusedGradEmbedding.replacing(plain)
    ids = torch.randint(0, plain.num_embeddings, (BATCH, 64))
    torch_ms = best_ms(lambda: one_backward(plain, ids))
    ours_ms = best_ms(lambda: one_backward(reused, ids))
    print(f"one step's gradient of the {tuple(plain.weight.shape)} word embeddings ({BATCH} x 64 "
          f"ids) and zero_grad: torch {torch_ms:.1f} ms, reused buffer {ours_ms:.1f} ms "
          f"({torch_ms / ours_ms:.1f}x)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
