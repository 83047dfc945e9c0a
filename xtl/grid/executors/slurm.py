"""The SLURM executor, through submitit: one job per cell, or job arrays.

The run directory (and the environment xtl is installed in) must be on storage the compute
nodes share. submitit keeps each job's logs under <run dir>/slurm/<job id>/. A job that SLURM
kills (preemption, time limit, node failure) leaves its cell `running`; the runner reports it
with the job's state and reruns it only with --retry-failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from xtl.core.errors import ConfigError


def _run_cell_job(run_cell: Callable[..., bool], root: str, cell_id: str,
                  env: dict[str, str]) -> bool:
    import submitit

    job = submitit.JobEnvironment()
    return run_cell(root, cell_id, env | {"XTL_WHERE": f"slurm job {job.job_id} on {job.hostname}"})


ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING",
          "SUSPENDED")


class SlurmJob:
    def __init__(self, job: Any) -> None:
        self.job = job
        self.where = f"slurm job {job.job_id}"
        self.record = {"executor": "slurm", "job_id": str(job.job_id)}

    def finished(self) -> bool:
        return self.job.done()

    def died(self) -> str | None:
        try:
            self.job.result()
        except Exception as err:  # submitit raises for failed, killed and preempted jobs
            return (f"job {self.job.job_id} ({self.job.state}): "
                    f"{type(err).__name__}: {str(err).splitlines()[0]}")
        return None


class SlurmExecutor:
    capacity = None  # SLURM queues what it cannot start yet

    def __init__(self, spec: dict, root: str, gpus_per_cell: int, env: dict[str, str],
                 run_cell: Callable[..., bool]) -> None:
        try:
            import submitit
        except ImportError:
            raise ConfigError("the slurm executor needs submitit: pip install 'xtl[slurm]'"
                              ) from None
        self.root, self.env, self.array = root, env, spec["array"]
        self.run_cell = run_cell
        self.cluster = spec["cluster"]
        try:
            self.executor = submitit.AutoExecutor(folder=Path(root) / "slurm" / "%j",
                                                  cluster=spec["cluster"])
        except RuntimeError as err:  # no srun/sbatch on this machine
            raise ConfigError(f"the slurm executor cannot reach SLURM from here ({err}); run "
                              "`xtl run` on a login node, or set cluster: local") from None
        params: dict[str, Any] = {
            "name": "xtl", "timeout_min": spec["time_min"], "gpus_per_node": gpus_per_cell,
            "cpus_per_task": spec["cpus_per_cell"], "tasks_per_node": 1, "nodes": 1,
            "slurm_array_parallelism": spec["array_parallelism"],
        }
        if spec["partition"]:
            params["slurm_partition"] = spec["partition"]
        if spec["mem_gb"]:
            params["mem_gb"] = spec["mem_gb"]
        if spec["sbatch"]:
            params["slurm_additional_parameters"] = dict(spec["sbatch"])
        self.executor.update_parameters(**params)

    def submit(self, cell_ids: Sequence[str]) -> list[SlurmJob]:
        if self.array and len(cell_ids) > 1:
            with self.executor.batch():  # one sbatch --array for the cells ready together
                jobs = [self.executor.submit(_run_cell_job, self.run_cell, self.root, cid, self.env)
                        for cid in cell_ids]
        else:
            jobs = [self.executor.submit(_run_cell_job, self.run_cell, self.root, cid, self.env)
                    for cid in cell_ids]
        return [SlurmJob(job) for job in jobs]

    def attach(self, record: dict) -> SlurmJob | None:
        """The job an earlier driver submitted, if SLURM still has it queued or running."""
        import submitit

        if record.get("executor") != "slurm" or self.cluster != "slurm":
            return None
        job = submitit.SlurmJob(folder=self.executor.folder, job_id=record["job_id"])
        return SlurmJob(job) if job.state in ACTIVE else None

    def close(self) -> None:
        pass
