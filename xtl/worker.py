"""Run ONE cell of a run directory: what a worker process, Ray task or SLURM job executes.

`python -m xtl.worker RUN_DIR CELL_ID`. The cell writes its own status (running, then done or
failed), so whoever started the worker learns the outcome from the run directory; a worker
that dies leaves the status at `running`, which the runner reports as a dead worker.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from xtl import config
from xtl import plan as planning
from xtl.store import read_json


def run_cell(root: str, cell_id: str, env: dict[str, str] | None = None) -> bool:
    """Execute one cell of the plan in `root`; True when it finished with complete outputs."""
    from xtl import run

    os.environ.update(env or {})
    plan = planning.Plan.from_json(read_json(Path(root) / "plan.json"))
    cell = plan.by_id().get(cell_id)
    if cell is None:
        raise SystemExit(f"xtl.worker: no cell {cell_id!r} in {root}/plan.json")
    exp = config.load(Path(root) / "experiment.yaml")
    return run.execute_cell(run.RunDir(Path(root)), cell, plan, exp, run.kernel_name(), print,
                            f"{cell.kind} {cell.label}")


def main(argv: list[str] | None = None) -> None:
    root, cell_id = argv or sys.argv[1:]
    sys.exit(0 if run_cell(root, cell_id) else 1)


if __name__ == "__main__":
    main()
