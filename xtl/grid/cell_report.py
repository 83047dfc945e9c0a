"""What a cell's HTML report shows of its executed notebook (the notebook itself is kept as run).

papermill leaves the notebook's own `parameters` cell (the ad-hoc defaults) above the cell it
injects, so a report would show two conflicting `task = ...` lines: the defaults cell is left
out. The injected cell lists every resolved hyperparameter (about 30, most of which a
retrieval cell never reads); the report shows the other parameters there, and the values the
phase uses come right below, in the recipe table (`xtl.cells.phases.recipe_table`, with where each
came from). Every value stays in the cell's params.yaml and notebook.ipynb. A notebook whose
own parameters cell hides its source (`transient.remove_source`: the analysis report, which
names its run directory in the overview) gets the injected cell hidden the same way.
"""

from __future__ import annotations

import copy
from typing import Any

INJECTED = "injected-parameters"
DEFAULTS = "parameters"
# parameters whose full value the recipe table shows better (only the keys the phase reads)
SUMMARISED = ("hparams", "hparam_sources", "task_hparams")


def _tags(cell: Any) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def readable(nb: Any) -> Any:
    """A copy of an executed notebook (nbformat node) as its report shows it."""
    nb = copy.deepcopy(nb)
    if not any(INJECTED in _tags(c) for c in nb.cells):
        return nb  # run by hand with its defaults: they are what ran
    hidden = any(DEFAULTS in _tags(c) and c.get("metadata", {}).get("transient", {})
                 .get("remove_source") for c in nb.cells)
    nb.cells = [c for c in nb.cells if DEFAULTS not in _tags(c) or INJECTED in _tags(c)]
    for cell in nb.cells:
        if INJECTED in _tags(cell) and hidden:
            cell.metadata["transient"] = {"remove_source": True}
        elif INJECTED in _tags(cell):
            lines = cell.source.splitlines()
            kept = [ln for ln in lines if ln.split(" = ", 1)[0] not in SUMMARISED]
            if len(kept) < len(lines):
                kept.append("# hyperparameters: the values this phase uses are in the table "
                            "below; all of them in params.yaml")
            cell.source = "\n".join(kept)
    return nb
