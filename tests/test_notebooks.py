"""Source notebooks: clean, one `parameters` cell of literals, matching what the runner injects."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from xtl import config, plan, run

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("intermediate", "target", "analysis", "retrieval", "transferability")


def parameters_cell(name: str) -> dict:
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected one cell tagged 'parameters'"
    return tagged[0]


@pytest.mark.parametrize("name", NAMES)
def test_committed_clean(name):
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("name", NAMES)
def test_parameters_are_literals(name):
    tree = ast.parse("".join(parameters_cell(name)["source"]))
    for stmt in tree.body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
        ast.literal_eval(stmt.value)  # raises on anything derived


def _names(name: str) -> set[str]:
    tree = ast.parse("".join(parameters_cell(name)["source"]))
    return {stmt.targets[0].id for stmt in tree.body}


def test_runner_injects_exactly_the_declared_parameters(tmp_path):
    exp = config.parse({"xtl": 1, "models": ["tiny"], "intermediate": ["none", "synth-nli"],
                        "targets": ["synth-nli"]})
    exp.values["name"] = "t"
    built = plan.build(exp)
    run_dir = run.RunDir(tmp_path)
    for cell in built.cells:
        injected = set(run.notebook_parameters(cell, run_dir, built, exp))
        assert injected == _names(cell.notebook), cell.notebook
    assert _names("analysis") == {"run_dir"}
