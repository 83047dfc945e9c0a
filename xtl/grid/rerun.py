"""`xtl rerun`: execute one cell's notebook again, by hand, into a scratch directory.

A finished cell's files are the record of the run that made them (metrics.json with its training
provenance and collapse flag, predictions, checkpoints) and `xtl status` vouches for them, so a
hand rerun never writes there: the cell's own parameters (`cells/<id>/params.yaml`) are copied
with every path the notebook writes (`cell_dir`, `checkpoint_dir`) moved under the scratch
directory. The parent checkpoint (`init_checkpoint`) is only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from xtl.core.errors import XtlError, unknown
from xtl.core.store import atomic_write_text, read_json
from xtl.grid import plan as planning


@dataclass
class Rerun:
    """Where a hand rerun of one cell reads and writes."""

    cell: planning.Cell
    dest: Path
    parameters: dict[str, Any]

    @property
    def notebook(self) -> Path:
        return self.dest / "notebook.ipynb"

    @property
    def params_file(self) -> Path:
        return self.dest / "params.yaml"


def scratch_parameters(params: dict[str, Any], dest: Path) -> dict[str, Any]:
    """The cell's injected parameters with every path the notebook writes moved under `dest`."""
    moved = dict(params)
    moved["cell_dir"] = str(dest)
    if "checkpoint_dir" in moved:  # retrieval cells train nothing and have none
        moved["checkpoint_dir"] = str(dest / "checkpoint")
    return moved


def prepare(root: Path, cell_id: str, dest: Path | None = None) -> Rerun:
    """Check the cell and the scratch directory, and write the scratch params.yaml."""
    root = Path(root).resolve()
    if not (root / "plan.json").is_file():
        raise XtlError(f"{root} has no plan.json: not a run directory")
    cells = planning.Plan.from_json(read_json(root / "plan.json")).by_id()
    if cell_id not in cells:
        raise unknown(f"cell of {root}", cell_id, cells, XtlError)
    source = root / "cells" / cell_id / "params.yaml"
    if not source.is_file():
        raise XtlError(f"cell {cell_id} has never run ({source} is missing): `xtl run` runs it")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    dest = Path(dest).expanduser().resolve() if dest else root / "reruns" / f"{cell_id}-{stamp}"
    for kept in (root / "cells", root / "checkpoints"):
        if dest == kept or kept in dest.parents or dest in kept.parents:
            raise XtlError(f"--to {dest}: a rerun must not write under {kept}, where the run's "
                           "own cells and checkpoints are; choose another directory")
    if dest.exists() and any(dest.iterdir()):
        raise XtlError(f"--to {dest} exists and is not empty; a rerun writes into a new directory")
    parameters = scratch_parameters(yaml.safe_load(source.read_text(encoding="utf-8")), dest)
    rerun = Rerun(cells[cell_id], dest, parameters)
    atomic_write_text(rerun.params_file,
                      yaml.safe_dump(parameters, sort_keys=True, allow_unicode=True))
    return rerun


def papermill_command(rerun: Rerun) -> str:
    """The command that executes the rerun by hand (after editing its params.yaml)."""
    from xtl.grid.run import NOTEBOOKS

    return (f"papermill {NOTEBOOKS / (rerun.cell.notebook + '.ipynb')} {rerun.notebook} "
            f"-f {rerun.params_file} --cwd {rerun.dest}")


def execute(rerun: Rerun) -> str | None:
    """Run the notebook into the scratch directory and render its report; the error, if any."""
    from papermill.exceptions import PapermillExecutionError

    from xtl.grid import run

    error = None
    try:
        run.execute_notebook(rerun.cell.notebook, rerun.notebook, rerun.parameters,
                             run.kernel_name())
    except PapermillExecutionError as err:
        error = f"{err.ename}: {err.evalue} (notebook cell {err.exec_count})"
    if rerun.notebook.is_file():
        run.render_html(rerun.notebook, rerun.dest / "report.html")
    return error
