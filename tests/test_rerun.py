"""`xtl rerun` writes into a scratch directory, never into the finished cell."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xtl.core.errors import XtlError
from xtl.core.store import atomic_write_json
from xtl.grid import config, plan, rerun, run, rundir

EXP = ("xtl: 1\nmodels: [tiny]\nintermediate: [none, synth-nli]\ntargets: [synth-nli]\n"
       "eval_languages: [de]\n")


@pytest.fixture
def run_dir(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(EXP)
    exp = config.load(path)
    built = plan.build(exp)
    rd = rundir.RunDir(tmp_path / "out")
    atomic_write_json(rd.root / "plan.json", built.to_json())
    for cell in built.cells:  # the parameters `xtl run` wrote for each cell
        params = run.notebook_parameters(cell, rd, built, exp)
        rd.cell(cell.id).mkdir(parents=True)
        (rd.cell(cell.id) / "params.yaml").write_text(yaml.safe_dump(params))
    return rd, built


def test_every_written_path_moves_to_the_scratch_dir(run_dir, tmp_path):
    rd, built = run_dir
    target = next(c for c in built.cells if c.kind == "target" and c.parent)
    job = rerun.prepare(rd.root, target.id, tmp_path / "scratch")
    original = yaml.safe_load((rd.cell(target.id) / "params.yaml").read_text())
    written = yaml.safe_load(job.params_file.read_text())
    assert written["cell_dir"] == str(tmp_path / "scratch")
    assert written["checkpoint_dir"] == str(tmp_path / "scratch" / "checkpoint")
    # everything else is the cell's own: same seed, hyperparameters, parent checkpoint
    same = {k: v for k, v in written.items() if k not in ("cell_dir", "checkpoint_dir")}
    assert same == {k: v for k, v in original.items() if k not in ("cell_dir", "checkpoint_dir")}
    assert written["init_checkpoint"] == str(rd.checkpoint(target.parent) / "best")
    command = rerun.papermill_command(job)
    assert command.startswith("papermill ") and "target.ipynb" in command
    assert f"-f {job.params_file}" in command


def test_default_scratch_dir_is_under_reruns(run_dir):
    rd, built = run_dir
    job = rerun.prepare(rd.root, built.cells[0].id)
    assert job.dest.parent == rd.root / "reruns"
    assert job.dest.name.startswith(built.cells[0].id + "-")


@pytest.mark.parametrize("inside", ["cells", "cells/X", "checkpoints/X/best", "."])
def test_scratch_inside_the_runs_own_cells_is_refused(run_dir, inside):
    rd, built = run_dir
    cell = built.cells[0].id
    dest = rd.root / inside.replace("X", cell)
    with pytest.raises(XtlError, match="must not write under"):
        rerun.prepare(rd.root, cell, dest)


def test_non_empty_scratch_dir_and_unknown_cell_are_refused(run_dir, tmp_path):
    rd, built = run_dir
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(XtlError, match="not empty"):
        rerun.prepare(rd.root, built.cells[0].id, tmp_path / "used")
    with pytest.raises(XtlError, match="unknown cell"):
        rerun.prepare(rd.root, "target-nope", tmp_path / "new")


def test_retrieval_cells_have_no_checkpoint_dir():
    moved = rerun.scratch_parameters({"cell_dir": "/r/cells/x", "task": "t"}, Path("/s"))
    assert moved == {"cell_dir": "/s", "task": "t"}
