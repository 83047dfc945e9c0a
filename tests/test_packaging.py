"""xtl as a real package: every package and data file ships, the notebooks come from the
package (`xtl.notebooks`), and a wheel installed elsewhere runs a grid outside the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_is_listed():
    found = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "xtl").rglob("__init__.py")}
    assert set(SETUPTOOLS["packages"]) == found | {"xtl.notebooks"}


def test_every_package_data_pattern_matches_files():
    dirs = {"xtl.notebooks": REPO / "notebooks"}
    for package, patterns in SETUPTOOLS["package-data"].items():
        where = dirs.get(package, REPO.joinpath(*package.split(".")))
        for pattern in patterns:
            assert list(where.glob(pattern)), f"package-data {package}: {pattern} matches nothing"


def test_the_runner_reads_the_packaged_notebooks():
    from xtl.grid import run

    for name in ("intermediate", "target", "retrieval", "analysis"):
        assert (run.NOTEBOOKS / f"{name}.ipynb").is_file()
    assert Path(str(run.NOTEBOOKS)).resolve() == REPO / "notebooks"  # editable: the checkout


EXP = """\
xtl: 1
name: wheel
models: [tiny]
intermediate: [none]
targets: [synth-nli]
train_sizes: [100]
eval_languages: [de]
hparams: {epochs: 1, max_length: 64, precision: fp32}
"""


@pytest.mark.slow
def test_a_wheel_runs_a_grid_outside_the_repository(tmp_path, tiny_dir):
    """Build the wheel, install it (no dependencies: they come from this environment's
    site-packages through a path file, whose own .pth hooks, the editable xtl's included,
    stay unread) into a fresh venv, and run a tiny grid from a directory of its own."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(REPO)], check=True, capture_output=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "repo-env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # the data files pip would have installed with nbconvert (its HTML templates)
    (venv / "share" / "jupyter").mkdir(parents=True)
    (venv / "share" / "jupyter" / "nbconvert").symlink_to(
        Path(sys.prefix) / "share" / "jupyter" / "nbconvert")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(next(wheels.glob("xtl-*.whl")))],
                   check=True, capture_output=True)
    work = tmp_path / "elsewhere"
    (work / "cache").mkdir(parents=True)
    (work / "cache" / "models").symlink_to(tiny_dir.parent)  # the tiny model, built once
    (work / "exp.yaml").write_text(EXP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XTL_", "PYTHON"))}
    env |= {"XTL_CACHE": str(work / "cache"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    where = subprocess.run([python, "-c", "import xtl, xtl.grid.run; print(xtl.__file__); "
                            "print(xtl.grid.run.NOTEBOOKS)"], cwd=work, env=env, check=True,
                           capture_output=True, text=True).stdout.split()
    assert all(p.startswith(site) for p in where), where  # the wheel's xtl, not the checkout
    proc = subprocess.run([venv / "bin" / "xtl", "run", "exp.yaml", "--out", "out"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [metrics] = (work / "out").glob("cells/*/metrics.json")
    doc = json.loads(metrics.read_text())
    assert {(r["task"], r["language"]) for r in doc["records"]} >= {("synth-nli", "de")}
    assert all(0 <= r["value"] <= 100 for r in doc["records"] if r["metric"] == "accuracy")
    assert doc["provenance"]["git"] == {"commit": None, "dirty": None}  # not a checkout
    assert (work / "out" / "index.html").is_file()
