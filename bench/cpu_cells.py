"""Cells in parallel on the CPU (`executor: {kind: local, cpu_cells: K}`): is one cell with all
the cores faster than K cells at once, each with its share?

Usage: python bench/cpu_cells.py [--model multilingual-e5-small] [--steps 30] [--rounds 2]

Each arm trains the same model (bf16 autocast, word embeddings frozen: the demo's settings) on
the same random batch (16 rows x 40 tokens) for N optimizer steps after 3 warm-up steps, in
fresh processes:
- `serial`: two jobs one after the other, each with every core (torch threads = cores);
- `parallel`: two jobs at once, each with half of the cores.
The figure is the wall time of the two jobs' timed steps (model loading excluded: in a real
cell it is single-threaded, so running cells in parallel hides it too, on top of this ratio).
Arms alternate over rounds; the best round of each is kept (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

STEP_SCRIPT = """
import sys, time, torch
from transformers import AutoModel
from xtl.model import zoo
threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
location, _ = zoo.materialize(sys.argv[3])
model = AutoModel.from_pretrained(location)
model.get_input_embeddings().weight.requires_grad_(False)
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
torch.manual_seed(0)
ids = torch.randint(5, 1000, (16, 40))
mask = torch.ones_like(ids)

def step():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    out.float().pow(2).mean().backward()
    opt.step()
    opt.zero_grad()

for _ in range(3):
    step()
print("ready", flush=True)
sys.stdin.readline()  # start the timed steps together
start = time.perf_counter()
for _ in range(steps):
    step()
print(time.perf_counter() - start, flush=True)
"""


def jobs(count: int, threads: int, steps: int, model: str) -> list[float]:
    """Start `count` jobs, wait until all have loaded and warmed up, time their steps together."""
    procs = [subprocess.Popen([sys.executable, "-c", STEP_SCRIPT, str(threads), str(steps),
                               model], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for _ in range(count)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    return [float(p.communicate()[0].strip()) for p in procs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    half = max(1, cores // 2)
    best = {"serial": float("inf"), "parallel": float("inf")}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        first = jobs(1, cores, args.steps, args.model)[0]
        second = jobs(1, cores, args.steps, args.model)[0]
        best["serial"] = min(best["serial"], first + second)
        both = jobs(2, half, args.steps, args.model)
        best["parallel"] = min(best["parallel"], max(both))
        print(f"round: serial {first:.2f} + {second:.2f} s; parallel {both[0]:.2f} / "
              f"{both[1]:.2f} s ({time.perf_counter() - t0:.0f} s with loading)", flush=True)
    steps = 2 * args.steps
    print(f"{args.model}, {cores} cores, 2 jobs x {args.steps} steps (best of {args.rounds})")
    print(f"serial   (2 jobs one after the other, {cores} threads each): "
          f"{best['serial']:.2f} s  {steps / best['serial']:.2f} steps/s")
    print(f"parallel (2 jobs at once, {half} thread(s) each):            "
          f"{best['parallel']:.2f} s  {steps / best['parallel']:.2f} steps/s")
    print(f"parallel / serial throughput: {best['serial'] / best['parallel']:.2f}x")


if __name__ == "__main__":
    main()
