"""The run directory as the runner reads it: where each cell's files live, its status.json,
and whether a cell is done (its status says so AND its outputs are complete: metrics.json
present, a stage's best checkpoint verified, a target's metrics covering the requested
evaluation), docs/contracts.md section 3.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from xtl.core.errors import ConfigError, ModelError
from xtl.core.store import atomic_write_json, read_json
from xtl.core.tables import table
from xtl.grid import plan as planning
from xtl.model.models import verify_checkpoint


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunDir:
    root: Path
    # called before every status write: `RunLock.check` while `xtl run` holds the lock
    guard: Any = None

    def cell(self, cell_id: str) -> Path:
        return self.root / "cells" / cell_id

    def checkpoint(self, cell_id: str) -> Path:
        return self.root / "checkpoints" / cell_id

    def status(self, cell_id: str) -> dict:
        return read_status(self.cell(cell_id) / "status.json")

    def set_status(self, cell_id: str, **status: Any) -> None:
        if self.guard is not None:
            self.guard()
        atomic_write_json(self.cell(cell_id) / "status.json",
                          {"cell": cell_id, "host": socket.gethostname(), "pid": os.getpid(),
                           "updated": now(), **status}, fault_point="status_update")


STATES = ("pending", "running", "done", "failed", "skipped", "interrupted")


def read_status(path: Path) -> dict:
    """A cell's status.json; anything unreadable, of another shape or with an unknown state
    (truncated, foreign, from another version) reads as never run."""
    try:
        doc = read_json(path) if path.is_file() else None
    except (OSError, ValueError):
        doc = None
    if not isinstance(doc, dict) or doc.get("state") not in STATES:
        return {"state": "pending"}
    return doc


def outputs_complete(run_dir: RunDir, cell: planning.Cell) -> bool:
    """metrics.json present (and covering the requested evaluation for a target)."""
    metrics = run_dir.cell(cell.id) / "metrics.json"
    try:
        records = read_json(metrics)["records"] if metrics.is_file() else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return False  # absent, truncated or of another shape: not done
        have = {(r.get("language"), r.get("split")) for r in records}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if cell.kind == "stage":
        return True
    if cell.kind == "transferability":  # its numbers are estimates, not records
        try:
            return isinstance(read_json(metrics).get("estimates"), list)
        except (OSError, ValueError, AttributeError):
            return False
    return {(lang, cell.evaluation["split"]) for lang in cell.evaluation["languages"]} <= have


def checkpoint_ok(run_dir: RunDir, cell: planning.Cell) -> bool:
    try:
        return verify_checkpoint(run_dir.checkpoint(cell.id) / "best").get("cell") == cell.id
    except ModelError:
        return False


def is_done(run_dir: RunDir, cell: planning.Cell) -> bool:
    """Done = status done AND complete outputs (never trust the status file alone)."""
    if run_dir.status(cell.id).get("state") != "done" or not outputs_complete(run_dir, cell):
        return False
    return cell.kind != "stage" or checkpoint_ok(run_dir, cell)


def dependants(plan: planning.Plan, cell_id: str) -> list[planning.Cell]:
    return [c for c in plan.cells if c.parent == cell_id]


def not_needed(run_dir: RunDir, plan: planning.Plan, cell: planning.Cell) -> bool:
    """A finished stage whose checkpoint retention removed, while every dependant is done."""
    deps = dependants(plan, cell.id)
    return (cell.kind == "stage" and run_dir.status(cell.id).get("state") == "done"
            and outputs_complete(run_dir, cell) and bool(deps)
            and all(is_done(run_dir, d) or not_needed(run_dir, plan, d) for d in deps))


def state_of(run_dir: RunDir, plan: planning.Plan, cell: planning.Cell) -> tuple[str, str]:
    """(state, note) for `xtl status` and `xtl plan`."""
    if is_done(run_dir, cell):
        return "done", ""
    if not_needed(run_dir, plan, cell):
        return "done", "checkpoint removed (keep_checkpoints); dependants are done"
    status = run_dir.status(cell.id)
    state = status.get("state", "pending")
    if state == "done" and outputs_complete(run_dir, cell):
        return "pending", ("checkpoint removed (keep_checkpoints) or invalid: the stage is "
                           "retrained for the cells that need it")
    if state == "done":
        return "pending", "outputs missing or incomplete: will be recomputed"
    if state == "failed":
        return "failed", status.get("error", "")
    if state == "skipped":
        return "skipped", status.get("reason", "")
    if state == "interrupted":
        return "pending", f"interrupted {status.get('finished', '')}; the next run resumes it"
    if state == "running":
        return "running", f"pid {status.get('pid')} on {status.get('host')} since " \
                          f"{status.get('started')} (stale if that process is gone)"
    return "pending", ""


def changed_cells(run_dir: RunDir, plan: planning.Plan) -> list[str]:
    """Cells whose label exists in the directory's previous plan under another id."""
    path = run_dir.root / "plan.json"
    if not path.is_file():
        return []
    old = {c.label: c.id for c in read_plan(run_dir.root).cells}
    return [f"{c.label}: {old[c.label]} -> {c.id}" for c in plan.cells
            if c.label in old and old[c.label] != c.id]


def read_plan(root: Path) -> planning.Plan:
    """The run directory's plan.json; a damaged or foreign one is one clear error."""
    path = Path(root) / "plan.json"
    try:
        return planning.Plan.from_json(read_json(path))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(
            f"{path} is damaged or not an xtl plan ({type(err).__name__}: {str(err)[:200]}); "
            "move it away (xtl run writes it again from the experiment file)") from None


def status_table(root: Path) -> str:
    """`xtl status`: one line per cell with its state and why."""
    plan, run_dir = read_plan(root), RunDir(root)
    rows, counts = [], {}
    for cell in plan.cells:
        state, note = state_of(run_dir, plan, cell)
        counts[state] = counts.get(state, 0) + 1
        status = run_dir.status(cell.id)
        seconds = status.get("seconds")
        took = f"{seconds:.0f}s" if isinstance(seconds, (int, float)) else ""
        where = status["where"] if status.get("where") and state != "pending" else ""
        rows.append((state, cell.id, cell.label, took, where, note))
    head = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return f"{root}: {head}\n" + table(("STATE", "CELL", "LABEL", "TIME", "WHERE", "NOTE"), rows,
                                       indent="  ", right=(3,))
