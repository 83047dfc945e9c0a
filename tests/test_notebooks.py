"""Source notebooks: clean, one `parameters` cell of literals, matching what the runner injects."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from test_results import run_dir  # noqa: F401  (the hand-written run directory fixture)

from xtl.grid import config, plan, run, rundir

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("intermediate", "target", "analysis", "retrieval", "transferability")
ALL = NAMES + ("explore",)


def parameters_cell(name: str) -> dict:
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected one cell tagged 'parameters'"
    return tagged[0]


@pytest.mark.parametrize("name", ALL)
def test_committed_clean(name):
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("name", ALL)
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
    root = rundir.RunDir(tmp_path)
    for cell in built.cells:
        injected = set(run.notebook_parameters(cell, root, built, exp))
        assert injected == _names(cell.notebook), cell.notebook
    assert _names("analysis") == {"run_dir"}


# --- each notebook runs headless with its defaults, or refuses in one line ------------------

TIMEOUT = 600  # seconds per notebook cell: a hang fails the test instead of idling


def _execute(name: str, cwd: Path, parameters: dict | None = None):
    import papermill as pm

    from xtl.core import kernels

    with kernels.engine_options() as quiet:
        return pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(cwd / f"{name}.out.ipynb"),
                                   parameters=parameters or {}, kernel_name=run.kernel_name(),
                                   progress_bar=False, cwd=str(cwd), execution_timeout=TIMEOUT,
                                   **quiet)


def _metrics(cwd: Path) -> dict:
    found = list(cwd.glob("runs/adhoc/cells/*/metrics.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", ("intermediate", "target", "retrieval"))
def test_phase_notebooks_run_standalone_with_their_defaults(name, tmp_path):
    _execute(name, tmp_path)
    records = _metrics(tmp_path)["records"]
    assert records and all(0 <= r["value"] <= 100 for r in records)
    if name == "retrieval":  # the shipped Tatoeba sample: no Hub, no mirror
        assert {r["language"] for r in records} == {"de", "zh", "hi"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ("analysis", "explore"))
def test_run_notebooks_say_they_need_a_run_directory(name, tmp_path):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as caught:
        _execute(name, tmp_path)  # the default runs/demo does not exist here
    assert caught.value.ename == "DataError"
    assert caught.value.evalue == ("runs/demo has no plan.json: not a run directory (expected "
                                   "the directory `xtl run` wrote, e.g. runs/<experiment>)")


@pytest.mark.slow
def test_explorer_runs_headless_on_a_run_directory(run_dir, tmp_path):  # noqa: F811
    nb = _execute("explore", tmp_path, {"run_dir": str(run_dir)})
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "evaluated cells" in text
    kinds = {k for o in outputs for k in o.get("data", {})}
    assert {"image/png", "text/html", "application/vnd.jupyter.widget-view+json"} <= kinds


@pytest.mark.parametrize("name", ALL)
def test_defaults_need_no_network(name):
    """Every default names something offline: shipped samples, synthetic tasks, `tiny`."""
    from xtl.data import tasks

    source = "".join(parameters_cell(name)["source"])
    values = {s.targets[0].id: ast.literal_eval(s.value) for s in ast.parse(source).body}
    for key in ("task", "train_task"):
        if key in values:
            task = tasks.get(values[key])
            assert task.generator is not None or task.bundled, (name, values[key])
    assert values.get("model", "tiny") == "tiny" and values.get("mirror") is None
