"""bench/compare_runs.py: two run directories' metrics compared record by record."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from types import SimpleNamespace

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _compare_runs() -> SimpleNamespace:
    return SimpleNamespace(**runpy.run_path(str(BENCH / "compare_runs.py")))


def _run(root: Path, cells: dict[str, list[tuple[str, float]]]) -> Path:
    for cell, recs in cells.items():
        folder = root / "cells" / cell
        folder.mkdir(parents=True)
        records = [{"task": "panx", "language": lang, "split": "validation", "metric": "f1",
                    "value": value} for lang, value in recs]
        baselines = [{"task": "panx", "language": "de", "split": "validation", "metric": "f1",
                      "baseline": "majority", "value": 1.5}]
        (folder / "metrics.json").write_text(json.dumps({"records": records,
                                                         "baselines": baselines}))
    return root


def test_identical_runs_pass_and_each_difference_is_named(tmp_path, capsys):
    tool = _compare_runs()
    a = _run(tmp_path / "a", {"target-1": [("de", 40.0), ("ar", 35.5)], "target-2": []})
    same = _run(tmp_path / "same", {"target-1": [("de", 40.0), ("ar", 35.5)], "target-2": []})
    assert tool.main([str(a), str(same)]) == 0
    assert "identical" in capsys.readouterr().out
    b = _run(tmp_path / "b", {"target-1": [("de", 40.0), ("ar", 35.25), ("sw", 1.0)],
                              "target-3": []})
    assert tool.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "cell target-1 records/panx/ar/validation/f1: 35.5 -> 35.25" in out
    assert "cell target-1 records/panx/sw/validation/f1: only in the second run" in out
    assert "cell target-2: only in the first run" in out
    assert "cell target-3: only in the second run" in out
    assert "4 difference(s)" in out
    within = tool.compare(tool.load(a), tool.load(b), tol=0.5)  # 0.25 apart: equal within 0.5
    assert len(within) == 3 and not any("35.25" in line for line in within)
