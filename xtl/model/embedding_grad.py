"""The word embeddings' gradient written into one buffer that lives across training steps.

torch's embedding backward allocates a dense zero gradient of the whole matrix at every step
(e5-small: 250k x 384 = 96 M values, 384 MB) and `optimizer.zero_grad()` frees it again; on a
CPU each fresh allocation is new pages from the kernel, which cost about ten times the writes
(BENCHMARKS.md, "The kit's CPU training levers"). `ReusedGradEmbedding` computes
the same gradient (the rows of each looked-up id summed, the padding row zero) into a buffer it
keeps: autograd stores that buffer as the weight's `.grad` (nothing else holds it), and once
the optimizer step has set `.grad` back to None the next step zeroes and reuses it. When a
gradient is still there (several micro-batches accumulate into one step) the lookup returns a
fresh tensor, as torch's own backward does, and autograd adds it.

One process only: DDP and FSDP manage the gradients' memory themselves.
"""

from __future__ import annotations

import torch
from torch import nn


class _Lookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ids: torch.Tensor, weight: torch.Tensor,
                owner: ReusedGradEmbedding) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.owner = owner
        return nn.functional.embedding(ids, weight, owner.padding_idx)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor, None]:
        (ids,) = ctx.saved_tensors
        return None, ctx.owner.weight_gradient(ids, grad), None


class ReusedGradEmbedding(nn.Embedding):
    """`nn.Embedding` (the same weight Parameter) whose gradient reuses one buffer."""

    @classmethod
    def replacing(cls, old: nn.Embedding) -> ReusedGradEmbedding:
        new = cls(old.num_embeddings, old.embedding_dim, old.padding_idx, _weight=old.weight,
                  _freeze=not old.weight.requires_grad)
        new.weight = old.weight  # the same Parameter: optimizer groups and tied heads keep it
        new._buffer: torch.Tensor | None = None
        return new.train(old.training)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and self.weight.requires_grad):
            return super().forward(ids)
        return _Lookup.apply(ids, self.weight, self)

    def weight_gradient(self, ids: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if weight.grad is not None:  # accumulating: autograd adds a separate tensor
            out = torch.zeros_like(weight)
        else:
            buffer = self._buffer
            if buffer is None or buffer.shape != weight.shape or buffer.dtype != weight.dtype:
                buffer = self._buffer = torch.empty_like(weight)
            # A new tensor object over the buffer, referenced by nobody else: autograd keeps it
            # as `.grad` instead of copying it.
            out = buffer.zero_().view(weight.shape)
        out.index_add_(0, ids.reshape(-1), grad.reshape(-1, weight.shape[1]).to(weight.dtype))
        if self.padding_idx is not None:
            out[self.padding_idx] = 0  # torch's backward leaves the padding row out
        return out

    def release(self) -> None:
        """Free the buffer (after training: evaluation needs no gradient)."""
        self._buffer = None


def install(model: nn.Module) -> list[ReusedGradEmbedding]:
    """Swap each trainable plain `nn.Embedding` in `model` (options that change the gradient:
    `max_norm`, `scale_grad_by_freq`, `sparse`, keep torch's)."""
    swapped = []
    for module in list(model.modules()):
        for name, child in module.named_children():
            if (type(child) is nn.Embedding and child.weight.requires_grad
                    and child.max_norm is None and not child.scale_grad_by_freq
                    and not child.sparse):
                new = ReusedGradEmbedding.replacing(child)
                setattr(module, name, new)
                swapped.append(new)
    return swapped
