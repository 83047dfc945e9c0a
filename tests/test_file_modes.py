"""Files and directories xtl writes follow the umask, like any file a program writes: temp files
renamed into place would otherwise stay 0600 / 0700 and colleagues could not open reports."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from xtl.core.atomicdir import replace_dir
from xtl.core.store import atomic_write_json, atomic_write_text, current_umask
from xtl.grid import rundir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_umask_is_read_without_changing_it(umask_022):
    assert current_umask() == 0o022
    assert current_umask() == 0o022


def test_atomic_files_are_0644_under_umask_022(tmp_path, umask_022):
    atomic_write_text(tmp_path / "report.html", "<p>hi</p>")
    atomic_write_json(tmp_path / "cell" / "metrics.json", {"records": []})
    assert _mode(tmp_path / "report.html") == 0o644
    assert _mode(tmp_path / "cell" / "metrics.json") == 0o644
    # the same modes as a plain open() under this umask
    (tmp_path / "plain.txt").write_text("x")
    assert _mode(tmp_path / "plain.txt") == 0o644


def test_replaced_directories_are_0755_under_umask_022(tmp_path, umask_022):
    def fill(tmp: Path) -> None:
        (tmp / "model.safetensors").write_bytes(b"x")

    replace_dir(tmp_path / "best", fill)
    assert _mode(tmp_path / "best") == 0o755
    assert _mode(tmp_path / "best" / "model.safetensors") == 0o644


def test_a_stricter_umask_is_respected_too(tmp_path):
    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "private.txt", "x")
        replace_dir(tmp_path / "d", lambda tmp: None)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "private.txt") == 0o600
    assert _mode(tmp_path / "d") == 0o700


def test_cell_status_and_index_are_readable_by_others(tmp_path, umask_022):
    run_dir = rundir.RunDir(tmp_path)
    run_dir.set_status("target-abc", state="done")
    assert _mode(tmp_path / "cells" / "target-abc" / "status.json") == 0o644
