"""What the transferability cells add to a finished run, and the predictions against the gains.

Usage: python bench/transferability_cost.py RUN_DIR

Sums each cell's `status.json` seconds (kernel start to the end of its HTML) by cell kind, so
the share of the transferability cells in the run is read off one run (no second run without
them); prints the report section's tables (xtl/analysis/transferability_report.py) as text.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import pandas as pd

from xtl.analysis import transferability_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    print("$ " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    plan = json.loads((args.run_dir / "plan.json").read_text())
    by_kind: dict[str, list[float]] = {}
    for cell in plan["cells"]:
        status = args.run_dir / "cells" / cell["id"] / "status.json"
        seconds = json.loads(status.read_text()).get("seconds") if status.is_file() else None
        if isinstance(seconds, (int, float)):
            by_kind.setdefault(cell["kind"], []).append(seconds)
            if cell["kind"] == "transferability":
                print(f"  {seconds:6.1f} s  {cell['label']}")
    total = sum(sum(v) for v in by_kind.values())
    for kind, values in sorted(by_kind.items()):
        print(f"{kind:<16} {len(values):2d} cells {sum(values):7.1f} s "
              f"({sum(values) / total:.0%} of cell time)")
    section = transferability_report.section(args.run_dir)
    if section is None:
        print("no transferability estimates in this run")
        return
    print(section.text)
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.precision", 4):
        for label, table in section.tables:
            print(f"\n{label}\n{table.to_string(index=False)}")


if __name__ == "__main__":
    main()
