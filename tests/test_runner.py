"""The runner's promises: locks, changed-cell detection, retention, status, fault points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAULT_EXP, assert_same_checkpoint, run_xtl, xtl_env
from conftest import results as _results

from xtl.core.errors import ConfigError
from xtl.core.store import atomic_write_json, read_json
from xtl.grid import config, lock, plan, run, rundir


def _plan(tmp_path, text=FAULT_EXP):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    exp = config.load(path)
    return path, exp, plan.build(exp)


# --- locks -----------------------------------------------------------------------------------

def test_second_holder_is_refused_with_who_holds_it(tmp_path):
    first = lock.RunLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(lock.LockedError) as info:
            lock.RunLock(tmp_path).acquire()
        assert f"pid {os.getpid()}" in str(info.value) and "use another --out" in str(info.value)
    finally:
        first.release()
    assert not (tmp_path / lock.LOCK_NAME).exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    atomic_write_json(tmp_path / lock.LOCK_NAME, {"host": os.uname().nodename, "pid": dead.pid,
                                                 "started": "x", "heartbeat_unix": time.time()})
    messages = []
    with lock.RunLock(tmp_path, messages.append):
        assert read_json(tmp_path / lock.LOCK_NAME)["pid"] == os.getpid()
    assert "taking over a stale lock" in messages[0] and "dead" in messages[0]


def test_old_heartbeat_on_another_host_is_stale(tmp_path):
    atomic_write_json(tmp_path / lock.LOCK_NAME, {"host": "elsewhere", "pid": 1,
                                                 "heartbeat_unix": time.time() - 3600})
    messages = []
    with lock.RunLock(tmp_path, messages.append):
        pass
    assert "heartbeat is 3600 s old" in messages[0]


def test_fresh_lock_on_another_host_is_respected(tmp_path):
    atomic_write_json(tmp_path / lock.LOCK_NAME, {"host": "elsewhere", "pid": 1,
                                                 "heartbeat_unix": time.time()})
    with pytest.raises(lock.LockedError, match="on elsewhere"):
        lock.RunLock(tmp_path).acquire()


# --- fault points ----------------------------------------------------------------------------

@pytest.mark.parametrize("spec, calls, dies", [("here", 1, True), ("here:2", 1, False),
                                               ("here:2", 2, True), ("elsewhere", 3, False)])
def test_fault_point_kills_at_the_named_occurrence(spec, calls, dies):
    code = "from xtl.core.faults import fault\n" + "fault('here')\n" * calls
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "XTL_FAULT": spec})
    assert (proc.returncode == -9) == dies


# --- plans and run directories ---------------------------------------------------------------

def _fake_cell(run_dir: rundir.RunDir, cell: plan.Cell, state: str, metrics: bool = True) -> None:
    run_dir.set_status(cell.id, state=state, label=cell.label)
    if metrics:
        records = [{"task": "synth-nli", "language": lang, "split": "validation",
                    "metric": "accuracy", "value": 50.0, "n": 1, "flags": []}
                   for lang in (cell.evaluation.get("languages") or ["en"])]
        atomic_write_json(run_dir.cell(cell.id) / "metrics.json", {"records": records})


def test_changed_parameters_are_refused_then_forced(tmp_path):
    path, exp, built = _plan(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    atomic_write_json(out / "plan.json", built.to_json())
    path.write_text(FAULT_EXP.replace("epochs: 1", "epochs: 2"))
    with pytest.raises(ConfigError) as info:
        run.prepare(path, out)
    message = str(info.value)
    assert "changed the parameters of 3 cell(s)" in message and "--force" in message
    assert "tiny | none -> synth-nli | seed 0 | n=100" in message
    run.prepare(path, out, force=True)


def test_status_names_every_state_and_why(tmp_path):
    _, exp, built = _plan(tmp_path)
    run_dir = rundir.RunDir(tmp_path / "out")
    atomic_write_json(run_dir.root / "plan.json", built.to_json())
    stage, *targets = built.cells
    _fake_cell(run_dir, stage, "failed", metrics=False)
    run_dir.set_status(stage.id, state="failed", error="ValueError: boom")
    dependant = next(t for t in targets if t.parent == stage.id)
    run_dir.set_status(dependant.id, state="skipped", reason=f"depends on {stage.id}")
    table = rundir.status_table(run_dir.root)
    assert "1 failed, 1 pending, 1 skipped" in table
    assert "ValueError: boom" in table and f"depends on {stage.id}" in table


def test_done_needs_complete_outputs_not_just_status(tmp_path):
    _, exp, built = _plan(tmp_path)
    run_dir = rundir.RunDir(tmp_path / "out")
    stage, *targets = built.cells
    target = targets[0]
    _fake_cell(run_dir, target, "done")
    assert rundir.is_done(run_dir, target)
    (run_dir.cell(target.id) / "metrics.json").write_text('{"records": [')  # truncated
    assert not rundir.is_done(run_dir, target)
    assert rundir.state_of(run_dir, built, target)[0] == "pending"
    _fake_cell(run_dir, stage, "done")
    assert not rundir.is_done(run_dir, stage)  # no verified checkpoint


def test_retention_none_drops_a_stage_once_its_dependants_are_done(tmp_path):
    _, exp, built = _plan(tmp_path)
    run_dir = rundir.RunDir(tmp_path / "out")
    stage = built.cells[0]
    dependant = next(c for c in built.cells if c.parent == stage.id)
    for which in ("best", "last"):
        (run_dir.checkpoint(stage.id) / which).mkdir(parents=True)
    _fake_cell(run_dir, stage, "done")
    run.apply_retention(run_dir, built, "best", print)
    assert (run_dir.checkpoint(stage.id) / "best").is_dir()
    assert not (run_dir.checkpoint(stage.id) / "last").exists()
    run.apply_retention(run_dir, built, "none", print)
    assert (run_dir.checkpoint(stage.id) / "best").is_dir()  # its dependant is not done
    _fake_cell(run_dir, dependant, "done")
    run.apply_retention(run_dir, built, "none", print)
    assert not run_dir.checkpoint(stage.id).exists()
    assert rundir.not_needed(run_dir, built, stage)
    assert rundir.state_of(run_dir, built, stage)[1].startswith("checkpoint removed")


def test_keep_checkpoints_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="keep_checkpoints.*'some'"):
        _plan(tmp_path, FAULT_EXP + "keep_checkpoints: some\n")


# --- crash safety end to end (slow) ----------------------------------------------------------

def _xtl(args: list[str], fault: str | None = None, **env_vars: str
         ) -> subprocess.CompletedProcess:
    return run_xtl(args, **env_vars, **({"XTL_FAULT": fault} if fault else {}))


def assert_same_checkpoints(expected: Path, out: Path) -> None:
    """Every checkpoint of run directory `out` byte-identical to `expected`'s (same checksums)."""
    names = sorted(p.relative_to(expected).as_posix()
                   for p in (expected / "checkpoints").glob("*/best"))
    assert len(names) == 3
    assert names == sorted(p.relative_to(out).as_posix() for p in (out / "checkpoints").glob("*/*"))
    for name in names:
        assert_same_checkpoint(expected / name, out / name)


def _cache(root: Path) -> dict[str, str]:
    """The environment of a run that shares the baseline's feature cache."""
    return {"XTL_CACHE": str(root / "cache")}


# The runner process itself dies (-9) at these, its kernel idle, each before the first cell is
# done: a crash at one is followed by a run that crashes at the next, from what the earlier ones
# left, and the last by a plain rerun: six cells run instead of fifteen for four crash-reruns.
RUNNER_POINTS = ("cell_start", "after_notebook", "html_render", "status_update:2")


@pytest.mark.slow
@pytest.mark.parametrize("points, retry", [
    (RUNNER_POINTS, False),
    # a kernel dies: its cell failed, and only --retry-failed runs it again
    (("metrics_write",), True), (("evaluate",), True), (("train_step:15",), True)],
    ids=lambda value: "+".join(value) if isinstance(value, tuple) else None)
def test_every_fault_point_then_rerun_gives_the_uninterrupted_results(baseline, tmp_path,
                                                                      points, retry):
    """The same results and byte-identical checkpoints; after each crash, every result on disk
    is already the uninterrupted run's."""
    root, expected = baseline
    env = _cache(root)
    _, _, built = _plan(tmp_path)
    stage = next(c for c in built.cells if c.kind == "stage")
    args = ["run", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "out")]
    for point in points:
        in_stage = point.startswith("train_step")  # only the stage's kernel dies, mid-training
        crashed = _xtl(args, fault=point, **env,
                       **({"XTL_FAULT_CELL": stage.id} if in_stage else {}))
        said = f"fault point {point}: {crashed.stdout}{crashed.stderr[-3000:]}"
        if point in ("metrics_write", "evaluate") or in_stage:  # a kernel dies: its cell failed
            assert crashed.returncode == 1 and "failed" in crashed.stdout, said
        else:
            assert crashed.returncode == -9, said
        if in_stage:  # the rerun continues from the resume state the killed kernel left
            resume = tmp_path / "out" / "checkpoints" / stage.id / "resume" / "resume.json"
            assert json.loads(resume.read_text())["step"] == 10, point
        differ = sorted(k for k, v in _results(tmp_path / "out").items() if expected.get(k) != v)
        assert not differ, f"fault point {point}: {differ} differ from the uninterrupted run"
    after = f"the rerun after fault point(s) {', '.join(points)}"
    again = _xtl(args + (["--retry-failed"] if retry else []), **env)
    assert again.returncode == 0, f"{after}: {again.stdout}{again.stderr[-3000:]}"
    assert _results(tmp_path / "out") == expected, f"{after}: results differ"
    assert_same_checkpoints(root / "out", tmp_path / "out")
    status = rundir.status_table(tmp_path / "out")  # in-process: `xtl status`'s table
    assert "3 done" in status, f"{after}: {status}"


@pytest.mark.slow
def test_real_kill_9_from_outside_then_resume(baseline, tmp_path):
    root, expected = baseline
    env = _cache(root)
    (tmp_path / "exp.yaml").write_text(FAULT_EXP)
    args = [sys.executable, "-m", "xtl.cli", "run", str(tmp_path / "exp.yaml"), "--out",
            str(tmp_path / "out")]
    proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=xtl_env(**env))
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until the second cell is running, then kill -9
        states = [json.loads(p.read_text()).get("state") for p in
                  (tmp_path / "out" / "cells").glob("*/status.json")] if (
            tmp_path / "out" / "cells").is_dir() else []
        if states.count("done") >= 1 and "running" in states:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, 9)
    proc.wait()
    again = _xtl(["run", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "out")], **env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "taking over a stale lock" in again.stdout
    assert _results(tmp_path / "out") == expected
    assert_same_checkpoints(root / "out", tmp_path / "out")


@pytest.mark.slow
def test_keep_none_then_adding_a_target_retrains_the_stage(tmp_path):
    # the stage and its target only: the baseline target would add three cells and prove nothing
    text = FAULT_EXP.replace("[none, synth-nli]", "[synth-nli]") + "keep_checkpoints: none\n"
    (tmp_path / "exp.yaml").write_text(text)
    args = ["run", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "out")]
    assert _xtl(args).returncode == 0
    assert not any((tmp_path / "out" / "checkpoints").glob("*/best"))
    again = _xtl(args)
    assert "2 already done" in again.stdout
    (tmp_path / "exp.yaml").write_text(text.replace("train_sizes: [100]", "train_sizes: [100, 50]"))
    planned = _xtl(["plan", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "out")])
    assert "[pending] stage-" in planned.stdout
    more = _xtl(args)  # the stage again (its checkpoint was dropped) and the new target
    assert "2 ran, 1 already done, 0 failed" in more.stdout, more.stdout
    assert len([k for k in _results(tmp_path / "out") if "/" not in k]) == 3
