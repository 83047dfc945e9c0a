"""The caps of a smoke run (`xtl run FILE --smoke`), read by the loaders and the training loop.

The driver (xtl.grid.smoke) puts them in the environment, so every notebook kernel and worker of the
run reads the same caps without a parameter that would enter a cell's identity (docs/smoke.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xtl.core.store import read_json

SMOKE_ENV = "XTL_SMOKE"
DEFAULT_ROWS = 16  # rows per split: a batch or so, every language still evaluated
DEFAULT_STEPS = 2  # optimizer steps per trained cell


@dataclass(frozen=True)
class Caps:
    rows: int
    steps: int
    # what the smoke run replaced in the experiment file: {key: {"from": ..., "to": ...}}
    substitutions: dict[str, Any] = field(default_factory=dict)

    def to_env(self) -> str:
        return json.dumps({"rows": self.rows, "steps": self.steps,
                           "substitutions": self.substitutions}, sort_keys=True)


def active() -> Caps | None:
    """The caps of the smoke run this process belongs to, or None (a real run)."""
    value = os.environ.get(SMOKE_ENV)
    if not value:
        return None
    doc = json.loads(value)
    return Caps(int(doc["rows"]), int(doc["steps"]), doc.get("substitutions", {}))


def cap_rows(rows: Any) -> Any:
    """The first `rows` rows of a split (a `datasets.Dataset`) in a smoke run; else all."""
    caps = active()
    if caps is None or len(rows) <= caps.rows:
        return rows
    return rows.select(range(caps.rows))


def cap_steps(total: int) -> int:
    """Optimizer steps of a fit: at most the smoke run's `steps`; else `total`."""
    caps = active()
    return total if caps is None else min(total, caps.steps)


MARKER = "smoke.json"  # in a smoke run directory: what the run was (docs/contracts.md)


def is_smoke(root: Path) -> dict | None:
    """The smoke marker of a run directory (None: a real run)."""
    path = root / MARKER
    try:
        return read_json(path) if path.is_file() else None
    except ValueError:
        return None
