"""`xtl plan --check` lists every gap in one pass, then says OK or NOT OK."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from xtl.grid import check, config, plan

HUB_EXP = """\
xtl: 1
models: [tiny]
targets: [xnli]
eval_languages: [de, fr, sw]
mirror: {mirror}
"""
SYNTH_EXP = """\
xtl: 1
models: [tiny]
intermediate: [none, synth-nli]
targets: [synth-nli]
eval_languages: [de, fr]
"""


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xtl.cli", *args], capture_output=True,
                          text=True, timeout=300)


def _mirror_with_only_german_xnli(root):
    folder = root / "mirror" / "facebook" / "xnli" / "de"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"premise": ["a"], "hypothesis": ["b"], "label": [0]}),
                   folder / "validation-00000-of-00001.parquet")
    return root / "mirror"


def test_every_gap_is_listed_not_just_the_first(tmp_path):
    mirror = _mirror_with_only_german_xnli(tmp_path)
    path = tmp_path / "exp.yaml"
    path.write_text(HUB_EXP.format(mirror=mirror))
    exp = config.load(path)
    result = check.run_check(plan.build(exp), exp)
    assert not result.ok
    assert len(result.gaps) == 4, result.gaps
    assert sum("no 'nyu-mll/glue'" in g for g in result.gaps) == 2  # MNLI train and dev
    assert any(g.startswith("xnli/fr/validation:") for g in result.gaps)
    assert any(g.startswith("xnli/sw/validation:") for g in result.gaps)
    assert result.counted == {"mirror": 5}

    proc = _cli("plan", str(path), "--check")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.rstrip().splitlines()
    assert len([ln for ln in lines if ln.startswith("  - ")]) == 4
    assert lines[-1] == ("check: NOT OK: 4 problem(s) above, in 5 splits the plan reads; fix "
                         "them before `xtl run`")
    assert "Traceback" not in proc.stderr


def test_a_complete_plan_ends_with_ok(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(SYNTH_EXP)
    exp = config.load(path)
    result = check.run_check(plan.build(exp), exp)
    assert result.ok and result.counted == {"generated": 6}
    proc = _cli("plan", str(path), "--check", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    # the tree is printed as without --check, then the verdict
    assert "experiment 'exp': 3 cells (1 intermediate stage, 2 targets)" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == (
        "check: OK: all 6 splits the plan reads are available (6 generated)")
