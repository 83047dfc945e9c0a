"""A dual encoder's in-batch negatives across processes: every process's candidate embeddings,
gathered with their gradient, so each query meets the whole global batch's candidates
(`xtl.data.tasks.dual_encoder.loss`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

Gathered = tuple[torch.Tensor, torch.Tensor, int]


class _AllGather(torch.autograd.Function):
    """Equal-sized row blocks of every process, concatenated in rank order; the backward
    all-reduces the gradient and keeps this process's block, so each block gets the sum of
    every process's gradient for it (DDP's mean then gives the whole batch's gradient)."""

    @staticmethod
    def forward(ctx: Any, block: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(block) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, block.contiguous())
        ctx.rows, ctx.rank = block.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_candidates(candidates: torch.Tensor, keys: torch.Tensor) -> Gathered:
    """Every process's candidate embeddings (with gradient) and keys, in rank order, and where
    this process's rows start; on one process (or without torch.distributed) its own.

    Shares may differ in size (an epoch's last batch), so blocks are padded to the largest and
    cut back after the gather. Every process must call this once per micro-batch (a
    collective), its stand-in too, with its rows passed as empty (0 rows)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return candidates, keys, 0
    world, n = dist.get_world_size(), candidates.shape[0]
    counts = [torch.zeros(1, dtype=torch.long, device=keys.device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([n], device=keys.device))
    sizes = [int(c) for c in counts]
    top = max(max(sizes), 1)  # all empty still gathers a (padding) row: shapes must agree

    def pad(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x.new_zeros((top - n, *x.shape[1:]))])

    every = _AllGather.apply(pad(candidates))
    every_keys = [torch.empty(top, dtype=keys.dtype, device=keys.device) for _ in range(world)]
    dist.all_gather(every_keys, pad(keys))
    rows = [r * top + i for r, size in enumerate(sizes) for i in range(size)]
    index = torch.tensor(rows, dtype=torch.long, device=keys.device)
    return every[index], torch.cat(every_keys)[index], sum(sizes[:dist.get_rank()])
