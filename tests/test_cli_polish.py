"""The command line: --version, help for every option, aligned tables with headers."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

import xtl
from xtl import cli
from xtl.core.store import atomic_write_json
from xtl.core.tables import plural, table
from xtl.data import tasks
from xtl.grid import rundir


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xtl.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_version():
    proc = _cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"xtl {xtl.__version__} (")


def _actions(parser: argparse.ArgumentParser, path: str = "xtl"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _actions(child, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_option_and_argument_has_help():
    missing = [f"{path} {a.dest}" for path, a in _actions(cli.build_parser()) if not a.help]
    assert missing == []
    sub = next(a for a in cli.build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    assert all(choice.help for choice in sub._choices_actions)


def test_table_aligns_columns_under_headers():
    text = table(("A", "BB", "C"), [("x", 1, "end"), ("long", 22, "")], right=(1,))
    assert text.splitlines() == ["A     BB  C", "x      1  end", "long  22"]


def test_plural():
    assert plural(1, "language") == "1 language" and plural(2, "language") == "2 languages"


def test_tasks_table_has_headers_aligned_columns_and_singulars():
    proc = _cli("tasks")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.rstrip("\n").splitlines()
    assert re.match(r"TASK +FORMAT +LANGUAGES +SOURCE$", lines[0])
    assert len(lines) == len(tasks.REGISTRY) + 1
    starts = [lines[0].index(h) for h in ("FORMAT", "SOURCE")]
    for line in lines[1:]:
        assert all(line[s - 2:s] == "  " and line[s] != " " for s in starts), line
    singles = [name for name, t in tasks.REGISTRY.items() if len(t.languages) == 1]
    assert singles  # e.g. English-only intermediate tasks
    assert not re.search(r"\b1 languages", proc.stdout)
    assert re.search(rf"^{re.escape(singles[0])} .* 1 language  ", proc.stdout, re.M)


def test_status_table_has_headers_and_aligned_columns(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("xtl: 1\nmodels: [tiny]\nintermediate: [none, synth-nli]\n"
                    "targets: [synth-nli]\neval_languages: [de]\n")
    from xtl.grid import config, plan

    built = plan.build(config.load(path))
    run_dir = rundir.RunDir(tmp_path / "out")
    atomic_write_json(run_dir.root / "plan.json", built.to_json())
    stage = built.cells[0]
    run_dir.set_status(stage.id, state="failed", error="ValueError: boom", seconds=12.4,
                       where="local (h)")
    lines = rundir.status_table(run_dir.root).splitlines()
    assert lines[0].endswith("1 failed, 2 pending")
    assert re.match(r"  STATE +CELL +LABEL +TIME +WHERE +NOTE$", lines[1])
    cell_col = lines[1].index("CELL")
    assert all(line[cell_col:].split()[0].startswith(("stage-", "target-"))
               for line in lines[2:])
    failed = next(line for line in lines if line.startswith("  failed"))
    assert " 12s " in failed and "local (h)" in failed and failed.endswith("ValueError: boom")


@pytest.mark.parametrize("command", ["plan", "run", "status", "report", "rerun", "data"])
def test_each_command_has_its_help_page(command):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0


def test_a_closed_pipe_is_not_an_error():
    proc = subprocess.run(f"{sys.executable} -m xtl.cli tasks | head -1; "
                          "exit ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith("TASK ")
