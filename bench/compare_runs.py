"""Do two run directories hold the same numbers? Every metrics.json record and baseline, cell by
cell (cell ids are the join key, docs/contracts.md), compared exactly or within --tol.

Used to show that a change of the kit's shape (issue 22) leaves `make demo`'s metrics as they
were for the same seed:

    python bench/compare_runs.py runs/demo-before runs/demo [--tol 0]

Prints one line per difference and a summary; exits 1 when anything differs (a cell only in one
run, a record only in one, a value apart by more than --tol), 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

Key = tuple[str, ...]


def load(run: Path) -> dict[str, dict]:
    """cell id -> its metrics.json, for every cell that has one."""
    cells = {}
    for path in sorted((run / "cells").glob("*/metrics.json")):
        cells[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
    if not cells:
        sys.exit(f"{run}: no cells/*/metrics.json (not a run directory, or nothing finished)")
    return cells


def values(metrics: dict) -> dict[Key, float]:
    """(kind, task, language, split, metric[, baseline]) -> value, records and baselines."""
    out: dict[Key, float] = {}
    for kind in ("records", "baselines"):
        for rec in metrics.get(kind, []):
            key = (kind, rec.get("task", ""), rec.get("language", ""), rec.get("split", ""),
                   rec.get("metric", ""), rec.get("baseline", ""))
            out[tuple(str(k) for k in key)] = rec.get("value")
    return out


def same(a: float | None, b: float | None, tol: float) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return abs(a - b) <= tol


def compare(before: dict[str, dict], after: dict[str, dict], tol: float) -> list[str]:
    problems = [f"cell {c}: only in the first run" for c in sorted(set(before) - set(after))]
    problems += [f"cell {c}: only in the second run" for c in sorted(set(after) - set(before))]
    for cell in sorted(set(before) & set(after)):
        a, b = values(before[cell]), values(after[cell])
        for key in sorted(set(a) | set(b)):
            where = f"cell {cell} {'/'.join(k for k in key if k)}"
            if key not in a or key not in b:
                problems.append(f"{where}: only in the {'first' if key in a else 'second'} run")
            elif not same(a[key], b[key], tol):
                problems.append(f"{where}: {a[key]!r} -> {b[key]!r}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--tol", type=float, default=0.0,
                        help="largest absolute difference counted as equal (default 0: exact)")
    args = parser.parse_args(argv)
    before, after = load(args.first), load(args.second)
    problems = compare(before, after, args.tol)
    for line in problems:
        print(line)
    n = sum(len(values(m)) for m in before.values())
    verdict = "identical" if not problems else f"{len(problems)} difference(s)"
    print(f"{len(before)} cells / {n} values in {args.first} vs {len(after)} cells in "
          f"{args.second} (tolerance {args.tol:g}): {verdict}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
