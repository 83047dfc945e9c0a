"""What one run of the test suite's fault-tolerance grid costs once the caches are warm: the
grid of tests/fault_grid.yaml (the tiny model, a synth-nli stage and two synth-nli
targets), which the slow tests run dozens of times. One cold run fills `XTL_CACHE`; then each
warm run goes into a fresh run directory. Prints each run's wall time and the notebooks' own
time in their data-loading cells. Compare two trees by running it with each on PYTHONPATH.

Usage: python bench/fault_grid.py [--warm 2] [--cpu-cells K]
`--cpu-cells K` runs the cells in worker processes, K at once (`executor: {kind: local,
cpu_cells: K}`), the path of the demo and of every cluster executor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = Path(__file__).resolve().parents[1] / "tests" / "fault_grid.yaml"
LOADING = ("run.load(", "load_stage(")  # the cells that read a split's rows


def loading_seconds(out: Path) -> float:
    """Seconds the run's notebooks spent in cells that load rows (papermill's timings)."""
    total = 0.0
    for path in (out / "cells").glob("*/notebook.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if any(call in "".join(cell["source"]) for call in LOADING):
                total += cell["metadata"].get("papermill", {}).get("duration") or 0.0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=2, help="warm runs after the cold one")
    parser.add_argument("--cpu-cells", type=int, default=0, help="worker processes (0: none)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="xtl-fault-grid-"))
    executor = (f"executor: {{kind: local, cpu_cells: {args.cpu_cells}}}\n"
                if args.cpu_cells else "")
    (root / "exp.yaml").write_text(GRID.read_text() + executor)
    env = os.environ | {"XTL_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1",
                        "MKL_NUM_THREADS": "1"}
    for i in range(args.warm + 1):
        out = root / f"out{i}"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "xtl.cli", "run", str(root / "exp.yaml"),
                        "--out", str(out)], env=env, check=True, capture_output=True)
        label = "cold" if i == 0 else f"warm {i}"
        print(f"{label:7s} run: {time.perf_counter() - start:6.1f} s wall, "
              f"{loading_seconds(out):5.1f} s in the cells that load rows")


if __name__ == "__main__":
    main()
