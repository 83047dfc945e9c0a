"""Executors: the dependency-respecting scheduler, and the same grid on every executor.

The fast tier drives the scheduler with a fake executor (no notebooks). The slow tier runs the
tiny grid of test_runner through worker processes (one per fake GPU), a private Ray instance
and submitit's local executor, compares every metric and prediction with the in-process run
(conftest's `baseline`, one thread like every run here),
and kills one worker mid-cell to show the grid stays resumable.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import FAULT_EXP, run_xtl
from conftest import results as _results
from test_runner import _fake_cell, _plan

from xtl.core import forkserver
from xtl.core.errors import ConfigError
from xtl.core.store import atomic_write_json
from xtl.grid import config, executors, run, rundir
from xtl.grid.executors.local import InProcess, Workers, cpu_slots, gpu_groups, make_local

# --- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    ("slurmm", "unknown executor .*'slurmm' .*did you mean 'slurm'"),
    ({"kind": "ray", "adress": "x"}, "option of the ray executor .*'adress'.*'address'"),
    ({"kind": "slurm", "time_min": 0}, "time_min must be an integer >= 1, got 0"),
    ({"kind": "slurm", "sbatch": "--exclusive"}, "sbatch must be a map"),
    ({"kind": "local", "gpus": "all"}, "gpus must be 'auto', a count or a list"),
    ({"kind": "local", "cpu_cells": 0}, "cpu_cells must be an integer >= 1, got 0"),
    ({"kind": "local", "cpu_cells": "2"}, "cpu_cells must be an integer >= 1, got '2'"),
    ({"partition": "gpu"}, "a map with a 'kind' key"),
    ({"kind": ["ray"]}, "unknown executor .*\\['ray'\\]"),
])
def test_bad_executor_settings_are_named(value, message):
    with pytest.raises(ConfigError, match=message):
        executors.parse(value, "exp.yaml")


def test_executor_defaults_and_gpu_groups():
    assert executors.parse("slurm", "x")["time_min"] == 240
    assert executors.parse({"kind": "ray", "address": "local"}, "x")["cpus_per_cell"] == 1
    assert gpu_groups([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3]]  # the fifth GPU stays idle
    assert gpu_groups(0, 1) == []
    with pytest.raises(ConfigError, match="gpus_per_cell is 4 but .* only 2 GPU"):
        gpu_groups([0, 1], 4)


def test_cpu_cells_share_the_cores_between_worker_processes():
    spec = executors.parse({"kind": "local", "gpus": 0, "cpu_cells": 2}, "x")
    pool = make_local(spec, "/run", 1, {}, lambda cell_id: None)
    assert isinstance(pool, Workers) and pool.capacity == 2
    assert [s.where for s in pool.slots] == ["local cpu 0", "local cpu 1"]
    # each cell gets its share of the cores, never zero; no GPU leaks into a CPU slot
    assert [s.env["OMP_NUM_THREADS"] for s in cpu_slots(2, 8)] == ["4", "4"]
    assert cpu_slots(3, 2)[0].env == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                      "CUDA_VISIBLE_DEVICES": ""}
    # the default: one cell at a time, in this process
    assert isinstance(make_local(executors.parse({"kind": "local", "gpus": 0}, "x"), "/run", 1,
                                 {}, lambda cell_id: None), InProcess)


def test_forwarded_env_carries_the_mirror_and_offline_switches(monkeypatch):
    monkeypatch.setenv("XTL_HUB_MIRROR", "/m")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("UNRELATED_SECRET", "x")
    env = executors.forwarded_env({"A": "b"})
    assert env["XTL_HUB_MIRROR"] == "/m" and env["HF_HUB_OFFLINE"] == "1" and env["A"] == "b"
    assert "UNRELATED_SECRET" not in env


# --- the scheduler with a fake executor --------------------------------------------------------

PROBE = """
import json, os, signal, sys

if __name__ == "__main__":  # the fork server imports it too
    root, cell = sys.argv[1:]
    seen = {"ppid": os.getppid(), "where": os.environ["XTL_WHERE"],
            "threads": os.environ["OMP_NUM_THREADS"], "preloaded": "wave" in sys.modules}
    with open(os.path.join(root, "cells", cell, "probe.json"), "w") as out:
        json.dump(seen, out)
    print("probe ran", cell, flush=True)
    if cell == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(3 if cell == "fails" else 0)
"""


def _probe_workers(tmp_path: Path, monkeypatch) -> Workers:
    """A pool of two CPU slots whose worker module is PROBE (and whose servers import `wave`)."""
    from xtl.grid.executors import local

    (tmp_path / "probe_pkg").mkdir()
    (tmp_path / "probe_pkg" / "__init__.py").write_text("")
    (tmp_path / "probe_pkg" / "worker.py").write_text(PROBE)  # in a package, as the worker is
    monkeypatch.setattr(local, "WORKER", "probe_pkg.worker")
    monkeypatch.setattr(local, "WORKER_IMPORTS", "json")
    return Workers(str(tmp_path), cpu_slots(2, 2), {"PYTHONPATH": str(tmp_path)}, ["wave"])


def _outcome(tmp_path: Path, job, cell: str) -> tuple[dict, str | None]:
    job.proc.wait(timeout=60)
    return json.loads((tmp_path / "cells" / cell / "probe.json").read_text()), job.died()


@pytest.mark.skipif(not forkserver.FORKS, reason="workers are forked on Linux only")
def test_workers_are_forked_from_one_server_per_slot(tmp_path, monkeypatch):
    """A slot's workers come from its fork server (imports done once, the slot's environment);
    exit codes and deaths reach the runner as from a plain process."""
    pool = _probe_workers(tmp_path, monkeypatch)
    try:
        first, second = pool.submit(["a", "b"])
        (seen_a, died_a), (seen_b, died_b) = (_outcome(tmp_path, first, "a"),
                                              _outcome(tmp_path, second, "b"))
        assert died_a is died_b is None
        assert seen_a["where"] == "local cpu 0" and seen_b["where"] == "local cpu 1"
        assert seen_a["threads"] == seen_b["threads"] == "1" and seen_a["preloaded"]
        servers = {slot: server.pid for slot, server in pool.servers.items()}
        assert seen_a["ppid"] == servers[0] != seen_b["ppid"] == servers[1] != os.getpid()
        (again,) = pool.submit(["fails"])  # slot 0 again: the same server
        seen, died = _outcome(tmp_path, again, "fails")
        assert seen["ppid"] == servers[0] and died == "worker process exited with 3"
        (killed,) = pool.submit(["killed"])
        assert _outcome(tmp_path, killed, "killed")[1] == \
            "worker process exited with -9 (signal 9)"
        log = (tmp_path / "cells" / "killed" / "worker.log").read_text()
        assert "probe ran killed" in log and "Warning" not in log  # runpy's, among others
    finally:
        pool.close()
    assert pool.servers == {} and not any(os.path.exists(f"/proc/{pid}")
                                          for pid in servers.values())


def test_a_slot_whose_server_fails_starts_plain_workers(tmp_path, monkeypatch):
    def broken(*_args):
        raise RuntimeError("no imports today")

    monkeypatch.setattr(forkserver.Server, "start", broken)
    pool = _probe_workers(tmp_path, monkeypatch)
    try:
        (job,) = pool.submit(["a"])
        seen, died = _outcome(tmp_path, job, "a")
        assert died is None and seen["ppid"] == os.getpid() and not seen["preloaded"]
        log = (tmp_path / "cells" / "a" / "worker.log").read_text()
        assert ("workers start without a fork server: no imports today" in log) == \
            forkserver.FORKS
    finally:
        pool.close()


class FakeJob:
    def __init__(self, polls: int, finish) -> None:
        self.polls, self.finish, self.where = polls, finish, "fake"

    def finished(self) -> bool:
        self.polls -= 1
        if self.polls <= 0 and self.finish:
            self.finish(), setattr(self, "finish", None)
        return self.polls <= 0

    def died(self) -> str | None:
        return "killed by the test"


class FakeExecutor:
    """Cells finish after `polls` polls; `outcomes` says how (done, failed or a silent death)."""

    def __init__(self, run_dir, built, capacity, outcomes=None, polls=2) -> None:
        self.run_dir, self.by_id, self.capacity = run_dir, built.by_id(), capacity
        self.outcomes, self.polls, self.batches = outcomes or {}, polls, []

    def submit(self, cell_ids):
        self.batches.append(list(cell_ids))
        jobs = []
        for cid in cell_ids:
            cell, outcome = self.by_id[cid], self.outcomes.get(cid, "done")
            self.run_dir.set_status(cid, state="running", label=cell.label)

            def finish(cell=cell, outcome=outcome):
                if outcome == "done":
                    _fake_cell(self.run_dir, cell, "done")
                elif outcome == "failed":
                    self.run_dir.set_status(cell.id, state="failed", error="ValueError: x")
            jobs.append(FakeJob(self.polls, finish))
        return jobs

    def close(self) -> None:
        pass


def _schedule(tmp_path, monkeypatch, capacity, outcomes=None, text=FAULT_EXP):
    _, exp, built = _plan(tmp_path, text)
    run_dir = rundir.RunDir(tmp_path / "out")
    atomic_write_json(run_dir.root / "plan.json", built.to_json())
    monkeypatch.setattr(rundir, "checkpoint_ok", lambda run_dir, cell: True)
    ids = {c.label.split(" | ")[1]: c.id for c in built.cells}
    fake = FakeExecutor(run_dir, built, capacity,
                        {ids[k]: v for k, v in (outcomes or {}).items()})
    lines = []
    summary = run._run_cells(run_dir, built, exp, fake, False, lines.append, poll=0)
    return summary, fake, ids, run_dir, lines


def test_parallel_cells_start_together_and_a_target_waits_for_its_stage(tmp_path, monkeypatch):
    summary, fake, ids, _, _ = _schedule(tmp_path, monkeypatch, capacity=2)
    stage, base, after = ids["synth-nli"], ids["none -> synth-nli"], ids["synth-nli -> synth-nli"]
    assert fake.batches == [[stage, base], [after]]
    assert sorted(summary.done) == sorted([stage, base, after]) and not summary.failed


def test_unbounded_executor_gets_every_ready_cell_at_once(tmp_path, monkeypatch):
    text = FAULT_EXP.replace("[none, synth-nli]", "[none, synth-nli, {chain: [synth-nli, mnli]}]")
    _, fake, ids, _, _ = _schedule(tmp_path, monkeypatch, capacity=None, text=text)
    assert len(fake.batches[0]) == 2  # the first stage and the baseline target; nothing else
    assert [len(b) for b in fake.batches] == [2, 2, 1]  # then target + chained stage, then its


def test_a_failed_stage_skips_its_dependants_and_the_rest_finishes(tmp_path, monkeypatch):
    summary, _, ids, run_dir, lines = _schedule(tmp_path, monkeypatch, capacity=2,
                                                outcomes={"synth-nli": "failed"})
    after = ids["synth-nli -> synth-nli"]
    assert summary.failed == [ids["synth-nli"]] and summary.blocked == [after]
    assert summary.done == [ids["none -> synth-nli"]]
    assert run_dir.status(after)["reason"] == f"depends on {ids['synth-nli']}, which did not finish"
    # a worker's outcome is said by the driver (the worker's own lines went to worker.log)
    said = {line.split(": ", 1)[1] for line in lines if ": done in" in line or ": failed" in line}
    assert said == {"done in 0.0s on fake", "failed on fake: ValueError: x; see "
                    f"{run_dir.cell(ids['synth-nli'])}"}, lines


def test_a_worker_that_dies_silently_is_a_failed_cell(tmp_path, monkeypatch):
    summary, _, ids, run_dir, lines = _schedule(tmp_path, monkeypatch, capacity=1,
                                                outcomes={"none -> synth-nli": "died"})
    base = ids["none -> synth-nli"]
    assert summary.failed == [base]
    status = run_dir.status(base)
    assert status["state"] == "failed" and status["where"] == "fake"
    assert status["error"] == "worker died: killed by the test"
    assert any("failed on fake: worker died" in line for line in lines)


def test_a_job_an_earlier_driver_submitted_is_waited_for_not_resubmitted(tmp_path, monkeypatch):
    _, exp, built = _plan(tmp_path)
    run_dir = rundir.RunDir(tmp_path / "out")
    monkeypatch.setattr(rundir, "checkpoint_ok", lambda run_dir, cell: True)
    stage = built.cells[0]
    run_dir.set_status(stage.id, state="running", label=stage.label)
    atomic_write_json(run_dir.cell(stage.id) / "job.json", {"executor": "slurm", "job_id": "7"})
    fake = FakeExecutor(run_dir, built, capacity=None)
    fake.attach = lambda record: FakeJob(2, lambda: _fake_cell(run_dir, stage, "done"))
    summary = run._run_cells(run_dir, built, exp, fake, False, print, poll=0)
    assert all(stage.id not in batch for batch in fake.batches)
    assert stage.id in summary.done and len(summary.done) == 3


# --- the same grid on every executor (slow) ----------------------------------------------------

def _xtl(args: list[str], **env: str) -> subprocess.CompletedProcess:
    # one thread everywhere (conftest.ONE_THREAD): Ray gives its workers one, and results must
    # match bit for bit
    return run_xtl(args, timeout=900, **env)


def _grid(root: Path, executor: str = "") -> list[str]:
    (root / "exp.yaml").write_text(FAULT_EXP + executor)
    return ["run", str(root / "exp.yaml"), "--out", str(root / "out")]


RAY = "executor: {kind: ray, address: local, num_cpus: 2, object_store_mb: 100}\n"
SLURM_LOCAL = "executor: {kind: slurm, cluster: local, array: true, cpus_per_cell: 1}\n"
TWO_GPUS = "executor: {kind: local, gpus: [0, 1]}\n"


@pytest.mark.slow
# (`cpu_cells` workers are the same `Workers` pool as the GPU slots, with another environment:
# test_cpu_cells_share_the_cores_between_worker_processes; the demo runs on them)
@pytest.mark.parametrize("executor, where", [(TWO_GPUS, "local gpu"), (RAY, "ray node"),
                                             (SLURM_LOCAL, "slurm job")])
def test_a_killed_worker_then_retry_gives_the_in_process_results(baseline, tmp_path, executor,
                                                                  where):
    """The stage's worker dies after its notebook ran (outputs written, status not): the cell is
    failed, its target skipped, the baseline target done; --retry-failed completes the grid
    with exactly the in-process results."""
    pytest.importorskip({RAY: "ray", SLURM_LOCAL: "submitit"}.get(executor, "xtl"))
    args = _grid(tmp_path, executor)
    exp = config.load(tmp_path / "exp.yaml")
    stage = next(c for c in run.planning.build(exp).cells if c.kind == "stage")
    crashed = _xtl(args, XTL_FAULT="after_notebook", XTL_FAULT_CELL=stage.id)
    assert crashed.returncode == 1, crashed.stdout + crashed.stderr
    assert "worker died" in crashed.stdout and "1 ran, 0 already done, 1 failed, 1 skipped" \
        in crashed.stdout, crashed.stdout
    state = json.loads((tmp_path / "out" / "cells" / stage.id / "status.json").read_text())
    assert state["state"] == "failed" and state["error"].startswith("worker died")
    again = _xtl(args + ["--retry-failed"])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 ran, 1 already done" in again.stdout
    assert _results(tmp_path / "out") == baseline[1]
    status = rundir.status_table(tmp_path / "out")  # in-process: `xtl status`'s table
    assert "3 done" in status and status.count(where) == 3, status
