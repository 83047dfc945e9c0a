"""Run ONE cell of a run directory: what a worker process executes (`xtl.grid.run.run_cell`).

`python -m xtl.grid.worker RUN_DIR CELL_ID`. The cell writes its own status (running, then done or
failed), so whoever started the worker learns the outcome from the run directory; a worker
that dies leaves the status at `running`, which the runner reports as a dead worker.
"""

from __future__ import annotations

import sys

from xtl.grid.run import run_cell


def main(argv: list[str] | None = None) -> None:
    root, cell_id = argv or sys.argv[1:]
    sys.exit(0 if run_cell(root, cell_id) else 1)


if __name__ == "__main__":
    main()
