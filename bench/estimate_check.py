"""`xtl plan --estimate` against a finished run: estimated vs actual seconds per cell.

Usage: python bench/estimate_check.py EXPERIMENT RUN_DIR [--throughput FILE] [--wall SECONDS]

The estimate comes from the cached calibration of this machine (measured first if there is
none) or from a throughput file; the actual seconds are each cell's `status.json` (`seconds`:
kernel start to the end of its HTML). `--wall` gives the measured wall time of the whole
`xtl run` (planning and the analysis report included) to compare with the estimated wall time.
Cells of the plan that the run directory has not finished are left out of both sums.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from xtl.grid import calibrate, config, estimate, plan, throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--throughput", help="figures file instead of the calibration")
    parser.add_argument("--wall", type=float, help="measured wall time of the whole xtl run (s)")
    args = parser.parse_args()
    print("$ " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    exp = config.load(args.experiment)
    built = plan.build(exp)
    mirror = Path(built.mirror) if built.mirror else None
    raw = Path(built.raw_dir) if built.raw_dir else None
    works = estimate.plan_work(built, exp, mirror, raw)
    tp = (throughput.load_throughput(args.throughput) if args.throughput else
          calibrate.calibrate(works, mirror, raw))
    est = estimate.estimate(built, works, tp)
    print(f"figures: {tp.source}; load average now {os.getloadavg()[0]:.2f}")
    print("\n| cell | estimate | actual | actual / estimate |\n|---|---|---|---|")
    total_est = total_act = 0.0
    for cell in built.cells:
        label = cell.label.replace("|", "\\|")  # a markdown table cell
        status = args.run_dir / "cells" / cell.id / "status.json"
        doc = json.loads(status.read_text()) if status.is_file() else {}
        if doc.get("state") != "done":
            print(f"| {label} | {est.seconds[cell.id]:.0f} s | not done | |")
            continue
        total_est += est.seconds[cell.id]
        total_act += doc["seconds"]
        print(f"| {label} | {est.seconds[cell.id]:.0f} s | {doc['seconds']:.0f} s | "
              f"{doc['seconds'] / est.seconds[cell.id]:.2f} |")
    if total_est:
        print(f"| **finished cells** | **{total_est:.0f} s** | **{total_act:.0f} s** | "
              f"**{total_act / total_est:.2f}** |")
    if args.wall:
        wall = estimate.wall_time(built, est.seconds) + tp.run_s
        print(f"\nwhole run: estimated {wall:.0f} s, measured {args.wall:.0f} s "
              f"(measured / estimated {args.wall / wall:.2f})")


if __name__ == "__main__":
    main()
