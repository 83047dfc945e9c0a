"""Where cells run: one interface over the local machine, a Ray cluster and SLURM (submitit).

The runner (`xtl.grid.run`) owns the order: it submits a cell once its parent stage is done and
reads the cell's outcome from its status file, which the cell itself writes (`xtl.grid.worker`).
An executor only starts a cell somewhere and says when it has stopped, and why if it died
without a word (killed worker, preempted job). So every executor shares the run directory's
crash safety: a dead worker leaves a cell that `xtl run --retry-failed` runs again.

The experiment's `executor` is a kind (`local`, `ray`, `slurm`) or a map `{kind: ..., option:
value}`; the options of each kind are below, with their defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

from xtl.core.errors import ConfigError, unknown
from xtl.grid.executors.local import make_local
from xtl.grid.executors.ray_cluster import RayExecutor
from xtl.grid.executors.slurm import SlurmExecutor

OPTIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    # gpus: "auto" (every visible GPU), a count, or a list of device ids; one cell per
    # `gpus_per_cell` of them at a time; none -> `cpu_cells` cells at once on the CPU, each
    # with an even share of the cores (1: one at a time in this process)
    "local": {"gpus": "auto", "cpu_cells": 1},
    # address: "auto" joins the cluster `ray start` made; "local" starts a private instance
    # (num_cpus / object_store_mb size it); cpus_per_cell: CPUs requested per cell
    "ray": {"address": "auto", "cpus_per_cell": 1, "num_cpus": None, "object_store_mb": None},
    # one job per cell (array: true groups the cells that become ready together into a job
    # array); cluster: "slurm", or "local" to run the same jobs as local processes (tests)
    "slurm": {"partition": None, "time_min": 240, "cpus_per_cell": 8, "mem_gb": None,
              "sbatch": {}, "array": False, "array_parallelism": 64, "cluster": "slurm"},
})
# what reaches a worker from the environment of `xtl run` (mirror, caches, offline switches)
FORWARDED_ENV = ("XTL_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "OMP_", "MKL_")


def parse(value: Any, source: str) -> dict[str, Any]:
    """The executor setting, validated, as {kind, every option}."""
    spec = {"kind": value} if isinstance(value, str) else value
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(f"{source}: executor must be one of {sorted(OPTIONS)} or a map with a "
                          f"'kind' key, got {value!r}")
    kind = spec["kind"]
    if not isinstance(kind, str) or kind not in OPTIONS:
        raise unknown(f"executor in {source}", kind, OPTIONS)
    for key in spec:
        if key != "kind" and key not in OPTIONS[kind]:
            raise unknown(f"option of the {kind} executor in {source}", key, OPTIONS[kind])
    resolved = {"kind": kind, **OPTIONS[kind], **spec}
    _check(resolved, source)
    return resolved


def _check(spec: dict[str, Any], source: str) -> None:
    def bad(key: str, expected: str) -> ConfigError:
        return ConfigError(f"{source}: executor {spec['kind']}: {key} must be {expected}, got "
                           f"{spec[key]!r}")

    positive = ("cpus_per_cell", "cpu_cells", "time_min", "array_parallelism", "num_cpus",
                "object_store_mb", "mem_gb")
    for key in positive:
        if key in spec and spec[key] is not None and (
                not isinstance(spec[key], int) or isinstance(spec[key], bool) or spec[key] < 1):
            raise bad(key, "an integer >= 1")
    gpus = spec.get("gpus")
    if "gpus" in spec and not (gpus == "auto" or (isinstance(gpus, int) and gpus >= 0) or (
            isinstance(gpus, list) and all(isinstance(g, int) and g >= 0 for g in gpus))):
        raise bad("gpus", "'auto', a count or a list of device ids")
    if spec["kind"] == "slurm":
        if not isinstance(spec["sbatch"], dict):
            raise bad("sbatch", "a map of extra sbatch options (e.g. {constraint: a100})")
        if spec["cluster"] not in ("slurm", "local"):
            raise bad("cluster", "'slurm' or 'local'")


class Job(Protocol):
    """One submitted cell. A job that outlives its driver (SLURM) also has `record`: a dict
    saved as the cell's job.json, from which its executor's `attach` finds it again."""

    where: str

    def finished(self) -> bool: ...

    def died(self) -> str | None:
        """Why the worker stopped without finishing the cell (None: it finished normally)."""


class Executor(Protocol):
    """Optionally `attach(record) -> Job | None`: a job an earlier driver submitted, if alive."""

    capacity: int | None  # cells at once; None: as many as the cluster schedules

    def submit(self, cell_ids: Sequence[str]) -> list[Job]: ...

    def close(self) -> None: ...


def forwarded_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a worker needs, taken from this process, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
    return env | dict(extra or {})


def make(spec: dict[str, Any], root: str, gpus_per_cell: int, env: dict[str, str],
         run_here: Any, run_cell: Any, preload: Sequence[str] = ()) -> Executor:
    """The executor for a validated spec. `run_here(cell_id) -> None` runs a cell in this
    process (the local executor without GPUs uses it: no worker start-up per cell);
    `run_cell(root, cell_id, env) -> bool` is what a Ray task or SLURM job calls
    (`xtl.grid.run.run_cell`, passed in so that no executor imports the runner); `preload`:
    what local workers' fork servers import (`xtl.grid.run.kernel_preload`)."""
    if spec["kind"] == "local":
        return make_local(spec, root, gpus_per_cell, env, run_here, preload)
    if spec["kind"] == "ray":
        return RayExecutor(spec, root, gpus_per_cell, env, run_cell)

    return SlurmExecutor(spec, root, gpus_per_cell, env, run_cell)
