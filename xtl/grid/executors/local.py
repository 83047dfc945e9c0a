"""The local executor: one cell at a time in this process, one cell per GPU group, or several
cells at once on the CPU cores.

Without GPUs a cell runs in the `xtl run` process itself (a kernel is started per cell anyway;
a worker process would only add its start-up). With N GPUs, cells run in parallel worker
processes (`python -m xtl.grid.worker`), each seeing only its own `gpus_per_cell` devices through
CUDA_VISIBLE_DEVICES. Without GPUs and with `cpu_cells: K`, K worker processes share the cores,
each cell with cores // K torch threads: small models scale poorly over threads and a cell's
kernel start, imports and report are single-threaded, so K cells at once finish a grid sooner
(BENCHMARKS.md "Cells in parallel on the CPU"). Numbers depend on the thread count, so a
grid's results are reproducible for a given `cpu_cells` and machine, not across them.

On Linux each slot's workers are forked from a fork server of their own (`xtl.core.forkserver`,
started with the slot's environment at its first cell), which has imported what the worker
and its kernels import: a worker then starts in milliseconds instead of seconds of
imports (BENCHMARKS.md, "Kernels from a fork server"). Where the server cannot start, the slot's
workers start as plain processes, and the worker log says why.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from xtl.core import forkserver
from xtl.core.errors import ConfigError

WORKER = "xtl.grid.worker"
# What the worker imports: the server must not import the module it runs as __main__ (runpy
# warns that it found it in sys.modules).
WORKER_IMPORTS = "xtl.grid.run"


class DoneJob:
    """A cell that already ran in this process."""

    def __init__(self, where: str) -> None:
        self.where = where

    def finished(self) -> bool:
        return True

    def died(self) -> str | None:
        return None


class InProcess:
    capacity = 1

    def __init__(self, run_here: Callable[[str], None]) -> None:
        self.run_here = run_here

    def submit(self, cell_ids: Sequence[str]) -> list[DoneJob]:
        jobs = []
        for cell_id in cell_ids:
            self.run_here(cell_id)
            jobs.append(DoneJob("local"))
        return jobs

    def close(self) -> None:
        pass


class ProcessJob:
    def __init__(self, proc: subprocess.Popen | forkserver.Forked, where: str,
                 slot: int) -> None:
        self.proc, self.where, self.slot = proc, where, slot

    def finished(self) -> bool:
        return self.proc.poll() is not None

    def died(self) -> str | None:
        code = self.proc.returncode
        if code == 0:
            return None
        return f"worker process exited with {code}" + (f" (signal {-code})" if code < 0 else "")


class Slot:
    """Where one worker process runs: its name and the environment that confines it."""

    def __init__(self, where: str, env: dict[str, str]) -> None:
        self.where, self.env = where, env


def gpu_slots(groups: list[list[int]]) -> list[Slot]:
    """One slot per group of `gpus_per_cell` devices, seen through CUDA_VISIBLE_DEVICES."""
    slots = []
    for group in groups:
        devices = ",".join(map(str, group))
        slots.append(Slot(f"local gpu {devices}", {"CUDA_VISIBLE_DEVICES": devices}))
    return slots


def cpu_slots(cells: int, cores: int) -> list[Slot]:
    """`cells` slots sharing `cores`: each cell's torch (and BLAS) threads are its share."""
    threads = str(max(1, cores // cells))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "CUDA_VISIBLE_DEVICES": ""}
    return [Slot(f"local cpu {i}", env) for i in range(cells)]


def usable_cores() -> int:
    """The cores this process may run on (a container or taskset may allow fewer than exist)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Workers:
    """One worker process per slot, as many cells at once as there are slots; `preload`: the
    modules each slot's fork server imports for its workers (their kernels' imports)."""

    def __init__(self, root: str, slots: list[Slot], env: dict[str, str],
                 preload: Sequence[str] = ()) -> None:
        self.root, self.slots, self.env = root, slots, env
        self.capacity = len(slots)
        self.jobs: list[ProcessJob] = []
        self.preload = [WORKER_IMPORTS, *preload]
        self.servers: dict[int, forkserver.Server | None] = {}  # None: it failed to start

    def _free_slot(self) -> int:
        busy = {j.slot for j in self.jobs if not j.finished()}
        return next(i for i in range(len(self.slots)) if i not in busy)

    def _server(self, slot: int, env: dict[str, str], log: Any) -> forkserver.Server | None:
        """The slot's fork server, started at its first cell (None: workers start plain)."""
        server = self.servers.get(slot)
        if slot in self.servers and server is None:
            return None
        key = ((sys.executable,), forkserver.env_key(env))
        if server is not None and (server.key != key or not server.alive()):
            server.stop()
            server = None
        if server is None:
            try:
                server = forkserver.Server.start([sys.executable], env, self.preload)
            except (OSError, RuntimeError) as err:
                log.write(f"xtl: workers start without a fork server: {err}\n".encode())
                log.flush()
            self.servers[slot] = server
        return server

    def submit(self, cell_ids: Sequence[str]) -> list[ProcessJob]:
        started = []
        for cell_id in cell_ids:
            slot = self._free_slot()
            where = self.slots[slot].where
            log = Path(self.root) / "cells" / cell_id / "worker.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            env = os.environ | self.env | self.slots[slot].env | {"XTL_WHERE": where}
            argv = [self.root, cell_id]
            with open(log, "ab") as out, open(os.devnull, "rb") as stdin:
                server = self._server(slot, env, out) if forkserver.FORKS else None
                if server is not None:
                    proc: subprocess.Popen | forkserver.Forked = server.spawn(
                        WORKER, argv, env, os.getcwd(),
                        [stdin.fileno(), out.fileno(), out.fileno()])
                else:
                    proc = subprocess.Popen([sys.executable, "-m", WORKER, *argv], env=env,
                                            stdout=out, stderr=subprocess.STDOUT,
                                            preexec_fn=_die_with_parent)
            job = ProcessJob(proc, where, slot)
            self.jobs.append(job)
            started.append(job)
        return started

    def close(self) -> None:
        for job in self.jobs:  # only reached when the runner itself is stopping
            if not job.finished():
                job.proc.terminate()
                job.proc.wait()
        for server in self.servers.values():  # its workers have all ended
            if server is not None:
                server.stop()
        self.servers.clear()


def _die_with_parent() -> None:
    """A worker must not outlive `xtl run` (a rerun would start its cell twice): on Linux the
    kernel kills it when the parent dies, even by kill -9."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def visible_gpus() -> list[int]:
    """Device ids of the GPUs this process can use (torch's count; none without CUDA)."""
    import torch

    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def gpu_groups(gpus: Any, gpus_per_cell: int) -> list[list[int]]:
    """Split the configured GPUs into groups of `gpus_per_cell` (leftovers stay idle)."""
    ids = visible_gpus() if gpus == "auto" else list(range(gpus)) if isinstance(gpus, int) \
        else list(gpus)
    if ids and len(ids) < gpus_per_cell:
        raise ConfigError(f"gpus_per_cell is {gpus_per_cell} but the local executor has only "
                          f"{len(ids)} GPU(s): {ids}")
    return [ids[i:i + gpus_per_cell] for i in range(0, len(ids) - gpus_per_cell + 1,
                                                     gpus_per_cell)]


def make_local(spec: dict, root: str, gpus_per_cell: int, env: dict[str, str],
               run_here: Callable[[str], None], preload: Sequence[str] = ()
               ) -> InProcess | Workers:
    groups = gpu_groups(spec["gpus"], gpus_per_cell)
    if len(groups) > 1:
        return Workers(root, gpu_slots(groups), env, preload)
    if not groups and spec["cpu_cells"] > 1:
        return Workers(root, cpu_slots(spec["cpu_cells"], usable_cores()), env, preload)
    # one group (or one CPU cell) gains nothing from a worker process: the cell runs here
    return InProcess(run_here)
