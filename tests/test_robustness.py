"""A full disk and concurrent commands: nothing lost, nothing corrupted, a rerun completes.

ENOSPC is injected where every file of the kit is written (`xtl.core.store.atomic_write_bytes`):
in-process for the unit tests, and through a `sitecustomize` on PYTHONPATH for real `xtl run`
processes and the notebook kernels they start (each counts its own writes). After a failed
write, a rerun must give the results of an uninterrupted run (the `baseline` of
tests/conftest.py), every result exactly once, and no temp file left behind.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAULT_EXP, xtl_env
from conftest import results as _results
from test_runner import _xtl

from xtl.core import atomicdir, store
from xtl.grid import lock, rundir


def _enospc(path) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


# --- unit: the atomic writers under ENOSPC ----------------------------------------------------

@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_failed_file_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch, where):
    target = tmp_path / "metrics.json"
    store.atomic_write_json(target, {"records": [1, 2]})
    before = target.read_bytes()

    def fail(*args, **kwargs):
        raise _enospc(target)

    if where == "fsync":
        monkeypatch.setattr(store.os, "fsync", fail)
    else:
        monkeypatch.setattr(store.os, "fdopen", lambda fd, mode: _FullFile(fd))
    with pytest.raises(OSError) as info:
        store.atomic_write_json(target, {"records": [3]})
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


class _FullFile:
    """A file object whose write fails as a full disk makes it fail (the fd is still closed)."""

    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def write(self, data):
        raise _enospc(self.fd)


def test_a_failed_directory_write_keeps_the_old_directory(tmp_path):
    dest = tmp_path / "best"
    atomicdir.replace_dir(dest, lambda tmp: (tmp / "weights").write_text("old"))

    def fill(tmp: Path) -> None:
        (tmp / "weights").write_text("half")
        raise _enospc(tmp / "weights")

    with pytest.raises(OSError):
        atomicdir.replace_dir(dest, fill)
    assert (dest / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_the_lock_heartbeat_survives_a_failed_write(tmp_path, monkeypatch):
    """A heartbeat that dies with the first full disk would let a second run take the lock
    over (stale after 10 minutes) while the first is still running."""
    monkeypatch.setattr(lock, "HEARTBEAT_EVERY", 0.05)
    calls, messages = [], []
    real = lock._touch

    def flaky(path):
        calls.append(path)
        if len(calls) <= 2:
            raise _enospc(path)
        real(path)

    monkeypatch.setattr(lock, "_touch", flaky)
    with lock.RunLock(tmp_path, messages.append) as held:
        deadline = time.time() + 10
        while len(calls) < 4 and time.time() < deadline:
            time.sleep(0.02)
        assert held._thread.is_alive()
    assert len(calls) >= 4 and "lock heartbeat not written" in messages[0]
    assert not (tmp_path / lock.LOCK_NAME).exists()


# --- end to end (slow): ENOSPC in the runner and in the kernels, then a rerun ---------------

SITECUSTOMIZE = """
import errno, os
_spec = os.environ.get("XTL_TEST_ENOSPC", "")
if _spec:
    _who, _name, _n = _spec.split(":")
    import xtl.core.store as _store

    _real, _seen = _store.atomic_write_bytes, [0]

    def _full(path, data, fault_point=None):
        # a kernel has JPY_PARENT_PID, forked or not; the runner and its fork servers do not
        mine = ("JPY_PARENT_PID" in os.environ) == (_who == "kernel")
        if mine and os.path.basename(str(path)) == _name:
            _seen[0] += 1
            if _seen[0] == int(_n):
                raise OSError(errno.ENOSPC, "No space left on device (injected)", str(path))
        return _real(path, data, fault_point)

    _store.atomic_write_bytes = _full
"""


def _run_with_enospc(args: list[str], spec: str, hooks: Path) -> subprocess.CompletedProcess:
    env = xtl_env(XTL_TEST_ENOSPC=spec,
                  PYTHONPATH=os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "xtl.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def assert_complete(out: Path, expected: dict) -> None:
    """The uninterrupted results, each record once, every cell done, no temp files."""
    assert _results(out) == expected
    for metrics in (out / "cells").glob("*/metrics.json"):
        keys = [(r["task"], r["language"], r["split"], r["metric"])
                for r in json.loads(metrics.read_text())["records"]]
        assert len(keys) == len(set(keys)), metrics
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name
                 or p.name.endswith(".old")]
    assert leftovers == []


@pytest.mark.slow
@pytest.mark.parametrize("spec, first_rc", [
    # Three points cover the distinct paths (runner write, kernel result, kernel checkpoint);
    # the HTML writes take the runner path (CI time is the limit on more).
    ("runner:status.json:4", 1),    # the second cell finished; its 'done' status is lost
    ("kernel:metrics.json:1", 1),   # every cell's kernel: results computed, not recorded
    ("kernel:checkpoint.json:1", 1),  # every trained checkpoint's marker
])
def test_enospc_then_rerun_gives_the_uninterrupted_results(baseline, tmp_path, spec,
                                                           first_rc):
    _, expected = baseline
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (tmp_path / "exp.yaml").write_text(FAULT_EXP)
    args = ["run", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "out")]
    failed = _run_with_enospc(args, spec, hooks)
    assert failed.returncode == first_rc, failed.stdout + failed.stderr[-3000:]
    assert "No space left on device (injected)" in failed.stdout + failed.stderr + "".join(
        p.read_text() for p in (tmp_path / "out").rglob("log.txt"))
    assert not (tmp_path / "out" / lock.LOCK_NAME).exists()  # released on the way out
    assert "Traceback" not in failed.stderr  # a one-line `xtl: error:`, not a crash
    again = _xtl(args + ["--retry-failed"])
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    assert_complete(tmp_path / "out", expected)
    assert "3 done" in rundir.status_table(tmp_path / "out")  # in-process: `xtl status`'s table


# --- concurrency -----------------------------------------------------------------------------

def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_second_run_refuses_naming_the_holder_and_writes_nothing(tmp_path):
    (tmp_path / "exp.yaml").write_text(FAULT_EXP)
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.html").write_text("earlier")
    with lock.RunLock(out):
        before = _snapshot(out)
        second = _xtl(["run", str(tmp_path / "exp.yaml"), "--out", str(out)])
        assert _snapshot(out) == before
    assert second.returncode == 2
    assert f"is being run by pid {os.getpid()} on {os.uname().nodename}" in second.stderr
    assert "Traceback" not in second.stderr


# Holds the first training step until the test releases it: the first run is certainly
# still in a cell while the others look (cells take seconds).
HOLD_SITECUSTOMIZE = """
import os
_hold = os.environ.get("XTL_TEST_HOLD")
if _hold:
    import time
    import xtl.core.faults as _faults
    _real = _faults.fault

    def _fault(point):
        if point == "train_step" and not os.path.exists(_hold + ".released"):
            open(_hold + ".held", "w").close()
            deadline = time.time() + 300
            while not os.path.exists(_hold + ".released") and time.time() < deadline:
                time.sleep(0.1)
        _real(point)

    _faults.fault = _fault  # before any xtl module imports it
"""


@pytest.mark.slow
def test_two_runs_and_a_report_at_once(baseline, tmp_path):
    """While one `xtl run` works: a second refuses naming it, `xtl report` and `xtl status`
    succeed and corrupt nothing, and the first finishes with the uninterrupted results."""
    _, expected = baseline
    (tmp_path / "exp.yaml").write_text(FAULT_EXP)
    out = tmp_path / "out"
    args = ["run", str(tmp_path / "exp.yaml"), "--out", str(out)]
    hooks, hold = tmp_path / "hooks", tmp_path / "hold"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(HOLD_SITECUSTOMIZE)
    env = xtl_env(XTL_TEST_HOLD=str(hold), PYTHONPATH=os.pathsep.join(
        [str(hooks), os.environ.get("PYTHONPATH", "")]))
    first = subprocess.Popen([sys.executable, "-m", "xtl.cli", *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not hold.with_suffix(".held").exists():
            time.sleep(0.2)
        assert _running_cell(out), "the first run never started a cell"
        second = _xtl(args)
        assert second.returncode == 2
        assert f"is being run by pid {first.pid}" in second.stderr
        report = _xtl(["report", str(tmp_path / "exp.yaml"), "--out", str(out)])
        assert report.returncode == 0, report.stdout + report.stderr[-3000:]
        assert "running" in (out / "index.html").read_text()
        assert "running" in rundir.status_table(out)
        hold.with_suffix(".released").touch()
        stdout, stderr = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stdout + stderr[-3000:]
    assert "3 ran, 0 already done, 0 failed" in stdout
    assert_complete(out, expected)
    assert (out / "analysis" / "report.html").is_file()


def _running_cell(out: Path) -> bool:
    for path in (out / "cells").glob("*/status.json") if (out / "cells").is_dir() else []:
        try:
            if json.loads(path.read_text()).get("state") == "running":
                return True
        except ValueError:
            pass
    return False
