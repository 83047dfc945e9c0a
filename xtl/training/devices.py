"""Where and how a fit runs: the device, the precision, the processes (DDP or FSDP ranks) and
the accelerator that ties them together; what the ranks exchange to agree on decisions.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import (
    DataLoaderConfiguration,
    DistributedDataParallelKwargs,
    FullyShardedDataParallelPlugin,
    InitProcessGroupKwargs,
    broadcast_object_list,
)

from xtl.core.errors import ConfigError, ModelError, unknown
from xtl.data import mlm
from xtl.data.tasks import Task
from xtl.model.models import XtlModel

PROCESSES_ENV = "XTL_GPUS_PER_CELL"  # the runner's `gpus_per_cell`, for the notebook kernels
STRATEGY_ENV = "XTL_DISTRIBUTED"  # the runner's `distributed`: ddp (default) | fsdp
STRATEGIES = ("ddp", "fsdp")


def resolve_device(requested: str = "auto") -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a device that exists here, else `ConfigError`."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    if requested == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", requested)
    if match is None:
        raise unknown("device", requested, ("auto", "cpu", "cuda", "cuda:N"))
    if not torch.cuda.is_available():
        raise ConfigError(f"device {requested!r}: CUDA is not available here (torch "
                          f"{torch.__version__}, CUDA build {torch.version.cuda}); use 'cpu' or "
                          "'auto'")
    index = int(match.group(1)) if match.group(1) else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device {requested!r}: only {torch.cuda.device_count()} CUDA "
                          f"device(s) here (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index)


def resolve_precision(requested: str, device: torch.device | str | None = None) -> str:
    """'auto': bf16 where the device has it (CUDA or AVX-512/AMX CPUs), fp16 on older GPUs.

    `device` None means the default device ('auto'). An explicit request the device cannot
    honour is an error, not a silent fp32 run.
    """
    device = resolve_device("auto") if device is None else torch.device(device)
    cuda = device.type == "cuda"
    bf16_ok = (torch.cuda.is_bf16_supported() if cuda
               else torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if requested == "auto":
        return "bf16" if bf16_ok else ("fp16" if cuda else "fp32")
    if requested == "fp16" and not cuda:
        raise ConfigError("precision 'fp16' needs a CUDA device (fp16 with a GradScaler); on "
                          "CPU use 'bf16' or 'fp32'")
    if requested == "bf16" and cuda and not bf16_ok:
        raise ConfigError(f"precision 'bf16' is not supported by {torch.cuda.get_device_name()}; "
                          "use 'fp16' or 'auto'")
    if requested not in ("bf16", "fp16", "fp32"):
        raise unknown("precision", requested, ("auto", "bf16", "fp16", "fp32"))
    return requested


def check_fsdp(model: XtlModel, tasks: list[Task], device: torch.device) -> None:
    """FSDP shards over CUDA devices; what it cannot do here is refused before any work."""
    if device.type != "cuda":
        raise ConfigError("distributed: fsdp needs CUDA devices (accelerate runs CPU processes "
                          "as DDP); use ddp")
    if any(t.format == mlm.FORMAT for t in tasks):
        raise ConfigError("distributed: fsdp cannot train an MLM task: its head reads the word "
                          "embeddings outside their shard unit; use ddp")
    if not getattr(model.encoder, "_no_split_modules", None):
        raise ModelError(f"{type(model.encoder).__name__} names no layer classes "
                         "(_no_split_modules) to shard FSDP units on; use ddp")


def world_size() -> int:
    """Processes of this training run: >1 under torchrun / accelerate launch."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def strategy() -> str:
    """'ddp', or 'fsdp' (parameters, gradients and optimizer state sharded across ranks)."""
    value = os.environ.get(STRATEGY_ENV, "ddp")
    if value not in STRATEGIES:
        raise unknown(f"{STRATEGY_ENV} (the distributed strategy)", value, STRATEGIES)
    return value


def make_accelerator(precision: str, device: torch.device,
                     shard_layers: list[str] | None = None,
                     log_with: list[Any] | None = None) -> Accelerator:
    """One process, or a DDP rank; with `shard_layers` (class names) an FSDP2 rank;
    `log_with`: experiment trackers (xtl.core.tracking)."""
    # accelerate keeps one global state per process; a notebook or test may fit twice.
    AcceleratorState._reset_state(reset_partial_state=True)
    mixed = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[precision]
    if shard_layers:
        # Each transformer layer (and the embeddings) is one shard unit; full (gathered) state
        # dicts for checkpoints, which the main process writes.
        plugin = FullyShardedDataParallelPlugin(
            fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
            transformer_cls_names_to_wrap=shard_layers, state_dict_type="FULL_STATE_DICT",
            cpu_ram_efficient_loading=False, reshard_after_forward=True)
        return Accelerator(mixed_precision=mixed, fsdp_plugin=plugin, log_with=log_with,
                           kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(hours=3))],
                           dataloader_config=DataLoaderConfiguration(split_batches=True))
    if world_size() == 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)  # accelerate trains on the current CUDA device
        return Accelerator(mixed_precision=mixed, cpu=device.type == "cpu", log_with=log_with)
    # DDP: each rank on its local GPU (accelerate's choice). Unused parameters are the norm
    # here: a step runs one task's head, and no head reads the encoder's pooler. Ranks wait
    # for each other around dev evaluations: allow long ones.
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=True),
                InitProcessGroupKwargs(timeout=timedelta(hours=3))]
    # split_batches: batch_size is the GLOBAL batch, split across ranks, so the scheduler steps
    # once per optimizer step (accelerate's default steps it once per rank).
    return Accelerator(mixed_precision=mixed, cpu=device.type == "cpu", kwargs_handlers=handlers,
                       dataloader_config=DataLoaderConfiguration(split_batches=True),
                       log_with=log_with)


def from_main(accelerator: Accelerator, value: Any) -> Any:
    """The main process's `value` on every process: decisions must agree across ranks."""
    if accelerator.num_processes == 1:
        return value
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]

