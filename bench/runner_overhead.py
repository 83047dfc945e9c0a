"""What the notebook runner costs per cell, against calling the same xtl functions directly.

Usage: python bench/runner_overhead.py [--repeats 3]
One target cell (tiny, synth-nli, 100 training rows, German evaluation) is run three ways,
interleaved: (a) the xtl calls of notebooks/target.ipynb in this process, (b) the notebook
through the runner's papermill call (kernel start + imports + the same calls), (c) an empty
notebook through plain papermill (a fresh kernel's start and shutdown alone); then the HTML
rendering of (b)'s output, and the start-up of a worker process (`python -m xtl.grid.worker`
imports) that parallel executors add. The first repeat of each arm is reported apart: it pays
what a process pays once (the kernels' fork server's imports for (b), the rows and the model's
first build for (a)); the medians are over the others (warm).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill as pm

from xtl.cells import phases
from xtl.grid import run

PARAMS = {"model": "tiny", "task": "synth-nli", "train_task": "synth-nli", "seed": 0,
          "train_size": 100, "subsample_seed": 0, "init_checkpoint": None,
          "eval_split": "validation", "eval_languages": ["de"], "mirror": None,
          "declared_tasks": {},
          "hparams": {"epochs": 1, "max_length": 64, "precision": "fp32"}}


def direct(root: Path) -> None:
    """The target notebook's calls, without a kernel."""
    cell = phases.start("target", "bench", root / "cell", root / "ckpt", PARAMS["hparams"],
                        model="tiny", task="synth-nli", seed=0)
    task = cell.task("synth-nli")
    train = cell.load(task, "train", size=100)
    dev = cell.load(task, "validation")
    model, tok, _ = cell.build_model("tiny", [task])
    cell.fit(model, tok, task, train, dev)
    model, tok = cell.load_trained([task], cell.checkpoint_dir / "best")
    records, examples = cell.evaluate(model, tok, task, [cell.load(task, "validation", "de")])
    cell.finish(records, examples)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    kernel = run.kernel_name()
    empty = Path(tempfile.mkdtemp()) / "empty.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")]), empty)
    rows = {"direct": [], "papermill": [], "kernel": [], "html": [], "worker": []}
    for _ in range(args.repeats):
        root = Path(tempfile.mkdtemp(prefix="xtl-overhead-"))
        rows["direct"].append(timed(direct, root / "a"))
        params = {**PARAMS, "cell_id": "bench", "cell_dir": str(root / "b" / "cell"),
                  "checkpoint_dir": str(root / "b" / "ckpt")}
        out = root / "b" / "cell" / "notebook.ipynb"
        rows["papermill"].append(timed(run.execute_notebook, "target", out, params, kernel))
        rows["html"].append(timed(run.render_html, out, out.with_suffix(".html")))
        # what a parallel executor's worker process adds before its cell starts
        rows["worker"].append(timed(subprocess.run, [sys.executable, "-c",
                                                     "import xtl.grid.worker, xtl.grid.run, "
                                                     "papermill"]))
        rows["kernel"].append(timed(pm.execute_notebook, str(empty),
                                    str(root / "empty-out.ipynb"), None, None, True, False,
                                    kernel))
    imports = subprocess.run([sys.executable, "-X", "importtime", "-c",
                              "import xtl.cells.phases, xtl.evaluation.plots"],
                              capture_output=True, text=True)
    # "import time: <self us> | <cumulative us> | <module>": the self times add up to the total
    self_us = [line.removeprefix("import time:").split("|")[0].strip()
               for line in imports.stderr.splitlines() if line.startswith("import time:")]
    total_import = sum(int(us) for us in self_us if us.isdigit()) / 1e6
    first = {k: v[0] for k, v in rows.items()}
    med = {k: statistics.median(v[1:] or v) for k, v in rows.items()}
    print(f"$ python bench/runner_overhead.py --repeats {args.repeats}")
    print(json.dumps({k: [round(x, 2) for x in v] for k, v in rows.items()}))
    print("                       warm      first in the process")
    print(f"direct calls           {med['direct']:6.2f} s  {first['direct']:6.2f} s")
    print(f"papermill notebook     {med['papermill']:6.2f} s  {first['papermill']:6.2f} s  "
          f"(warm overhead {med['papermill'] - med['direct']:+.2f} s)")
    print(f"  empty-kernel run     {med['kernel']:6.2f} s  {first['kernel']:6.2f} s  "
          "(a fresh kernel's start + shutdown, plain papermill)")
    print(f"  imports (self time)  {total_import:6.2f} s  (cells.phases + evaluation.plots, "
          "fresh process)")
    print(f"HTML rendering         {med['html']:6.2f} s  {first['html']:6.2f} s")
    print(f"runner overhead/cell   {med['papermill'] - med['direct'] + med['html']:6.2f} s  "
          "(warm papermill - warm direct + HTML)")
    print(f"worker process start   {med['worker']:6.2f} s  (local multi-GPU, Ray and SLURM "
          "workers, on top)")

if __name__ == "__main__":
    main()
