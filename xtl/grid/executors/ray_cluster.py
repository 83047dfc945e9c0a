"""The Ray executor: each cell is a Ray task with a resource request on an existing cluster.

Workers need xtl installed (the same environment) and the run directory on storage they all
see; the run's environment (mirror, caches, offline switches) travels with each task. Tasks are
never retried by Ray: a dead worker is reported as a failed cell and rerun on request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xtl.core.errors import ConfigError


def _run_cell_remote(run_cell: Callable[..., bool], root: str, cell_id: str,
                     env: dict[str, str]) -> bool:
    import ray

    where = f"ray node {ray.util.get_node_ip_address()}"
    return run_cell(root, cell_id, env | {"XTL_WHERE": where})


class RayJob:
    def __init__(self, ref: Any, where: str) -> None:
        self.ref, self.where = ref, where

    def finished(self) -> bool:
        import ray

        ready, _ = ray.wait([self.ref], timeout=0)
        return bool(ready)

    def died(self) -> str | None:
        import ray

        try:
            ray.get(self.ref)
        except ray.exceptions.RayError as err:  # worker crash, node loss, task error
            return f"{type(err).__name__}: {str(err).splitlines()[0]}"
        return None


class RayExecutor:
    capacity = None  # the cluster queues what it cannot place yet

    def __init__(self, spec: dict, root: str, gpus_per_cell: int, env: dict[str, str],
                 run_cell: Callable[..., bool]) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray executor needs Ray: pip install 'xtl[ray]'") from None
        self.root, self.env, self.run_cell = root, env, run_cell
        if not ray.is_initialized():
            if spec["address"] == "local":  # a private instance, sized for this machine
                memory = spec["object_store_mb"]
                ray.init(num_cpus=spec["num_cpus"], include_dashboard=False,
                         object_store_memory=memory * 2**20 if memory else None,
                         log_to_driver=False)
            else:
                ray.init(address=spec["address"], log_to_driver=False)
        # GPUs only where the cluster has them: a CPU-only cluster runs cells on CPUs
        gpus = gpus_per_cell if ray.cluster_resources().get("GPU", 0) else 0
        self.task = ray.remote(_run_cell_remote).options(
            num_cpus=spec["cpus_per_cell"], num_gpus=gpus, max_retries=0)
        self.owned = spec["address"] == "local"

    def submit(self, cell_ids: Sequence[str]) -> list[RayJob]:
        return [RayJob(self.task.remote(self.run_cell, self.root, cid, self.env), "ray")
                for cid in cell_ids]

    def close(self) -> None:
        import ray

        if self.owned:
            ray.shutdown()
