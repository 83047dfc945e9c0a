"""README.md's path, walked from a clean clone: the two commands (their cheap parts), the venv
activated as the README says, `xtl plan / status / report`, and the hand-rerun recipe, which
must leave the finished cell's files byte-identical.

The clone gets its own `.venv` whose packages come from this test's environment (a .pth file),
with the clone's xtl installed into it editable, offline: no package index is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
ACTIVATE = "source .venv/bin/activate"
EXP = """\
xtl: 1
name: walk
models: [tiny]
intermediate: [none]
targets: [synth-nli]
train_sizes: [100]
eval_languages: [de]
hparams: {epochs: 1, max_length: 64, precision: fp32, learning_rate: 1e-4}
"""


def _sh(cmd: str, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> tuple[Path, dict]:
    if None in (shutil.which("git"), shutil.which("make")) or not (REPO / ".git").exists():
        pytest.skip("needs git, make and a git checkout")
    dest = tmp_path_factory.mktemp("readme") / "xtl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONH"))}
    env["PATH"] = "/usr/bin:/bin"  # nothing of this test's venv on PATH: activation must do it
    _sh(f"git clone -q {REPO} {dest}", REPO.parent, env)
    # `make demo` in a fresh clone installs the demo's needs only; `make test` adds `dev`
    demo = _sh("make -n demo", dest, env).stdout
    assert "-e '.[e5]'" in demo and "dev" not in demo
    assert "-e '.[e5,dev]'" in _sh("make -n test", dest, env).stdout
    # the set-up, offline: a venv seeing this environment's packages, the clone's xtl editable
    _sh(f"{sys.base_prefix}/bin/python3 -m venv --without-pip .venv", dest, env)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(dest / ".venv")}))
    (site / "_reuse_test_env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    shared = dest / ".venv" / "share" / "jupyter"  # nbconvert's templates are data files
    shared.mkdir(parents=True)
    (shared / "nbconvert").symlink_to(Path(sys.prefix) / "share" / "jupyter" / "nbconvert")
    _sh(".venv/bin/python -m pip install --quiet --no-deps --no-build-isolation --no-index "
        "-e .", dest, env)
    (dest / ".venv" / ".xtl-demo-installed").touch()
    (dest / ".venv" / ".xtl-installed").touch()  # both stamps newer than pyproject.toml
    return dest, env


@pytest.mark.slow
def test_readme_path_from_a_clean_clone(clone):
    dest, env = clone
    assert ACTIVATE in README and "make demo" in README and "make test" in README
    (dest / "walk.yaml").write_text(EXP)
    # the two commands, with the set-up already done: nothing is installed again
    assert "pip install" not in _sh("make -n test", dest, env).stdout
    ran = _sh("make demo DEMO=walk.yaml", dest, env).stdout
    assert "pip install" not in ran and "xtl run: 1 ran, 0 already done, 0 failed" in ran
    # the commands of "Using it", in a shell with the venv activated as the README says
    out = _sh(f"{ACTIVATE} && xtl --version && xtl plan walk.yaml && xtl status walk.yaml && "
              "xtl report walk.yaml", dest, env).stdout
    assert f"({dest / 'xtl'})" in out.splitlines()[0]  # the clone's xtl answers
    assert "experiment 'walk': 1 cell (0 intermediate stages, 1 target)" in out
    root = dest / "runs" / "walk"
    assert "1 done" in out and f"wrote {root / 'analysis' / 'report.html'}" in out

    # the hand rerun recipe: `xtl rerun runs/<exp> <cell id>`, never touching the cell
    assert "`xtl rerun runs/<exp> <cell id>`" in " ".join(README.split())
    cell = json.loads((root / "plan.json").read_text())["cells"][0]["id"]
    before = {"cells": _digests(root / "cells" / cell),
              "checkpoints": _digests(root / "checkpoints" / cell)}
    assert "metrics.json" in before["cells"] and "best/checkpoint.json" in before["checkpoints"]
    assert any(name.endswith(".safetensors") for name in before["checkpoints"])
    out = _sh(f"{ACTIVATE} && xtl rerun runs/walk {cell} --to scratch && xtl status walk.yaml",
              dest, env).stdout
    after = {"cells": _digests(root / "cells" / cell),
             "checkpoints": _digests(root / "checkpoints" / cell)}
    assert after == before
    assert re.search(rf"^  done +{cell} ", out, re.M)  # `xtl status`: still the same run
    # the rerun is the same computation: same seed, same scores (CPU is deterministic)
    original = json.loads((root / "cells" / cell / "metrics.json").read_text())["records"]
    again = json.loads((dest / "scratch" / "metrics.json").read_text())["records"]
    assert [(r["language"], r["metric"], r["split"], r["value"]) for r in again] == \
        [(r["language"], r["metric"], r["split"], r["value"]) for r in original]
    assert (dest / "scratch" / "report.html").is_file()
    assert (dest / "scratch" / "checkpoint" / "best" / "checkpoint.json").is_file()
