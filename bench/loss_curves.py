"""Two runs' training-loss curves side by side, cell by cell (the same grid, two versions).

Usage: python bench/loss_curves.py RUN_A RUN_B [--window 15]

For every cell that trained in both run directories (a `history.jsonl`), prints each run's
training loss as means of `window` steps, its dev scores, and the two curves' largest gap
between window means. Used to show that a change meant to keep the model's maths (the CPU
training levers: other dropout masks, the same gradients) learns as before.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def history(cell: Path) -> tuple[list[float], list[float]]:
    losses, scores = [], []
    for line in (cell / "history.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if "loss" in entry:
            losses.append(entry["loss"])
        if "dev_score" in entry:
            scores.append(entry["dev_score"])
    return losses, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--window", type=int, default=15)
    args = parser.parse_args()
    cells = sorted(p.parent.name for p in args.run_a.glob("cells/*/history.jsonl")
                   if (args.run_b / "cells" / p.parent.name / "history.jsonl").is_file())
    axes = {c["id"]: c["axes"] for c in
            json.loads((args.run_a / "plan.json").read_text())["cells"]}
    print(f"A = {args.run_a}\nB = {args.run_b}\ntraining loss, mean of each {args.window} "
          "steps; dev scores after each evaluation")
    for name in cells:
        (loss_a, dev_a), (loss_b, dev_b) = (history(run / "cells" / name)
                                            for run in (args.run_a, args.run_b))
        means = [[np.mean(c[i:i + args.window]) for i in range(0, len(c), args.window)]
                 for c in (loss_a, loss_b)]
        title = ", ".join(f"{k} {v}" for k, v in axes.get(name, {}).items())
        gap = max(abs(a - b) for a, b in zip(*means, strict=False))
        print(f"\n{name} ({title}): {len(loss_a)} / {len(loss_b)} steps; largest gap {gap:.3f}")
        for run, m, dev in (("A", means[0], dev_a), ("B", means[1], dev_b)):
            print(f"  {run} loss " + " ".join(f"{v:.3f}" for v in m)
                  + "   dev " + " ".join(f"{v:.1f}" for v in dev))


if __name__ == "__main__":
    main()
