"""Dropout with cheaper random masks on the CPU: the same distribution, from a faster generator.

On a CPU, torch draws each dropout mask element with its own Bernoulli sample from its Mersenne
Twister; for e5-small that is 16-18 % of a training step's operator time (BENCHMARKS.md, "The
kit's loop vs transformers.Trainer"). Here the bits come from numpy's SFC64 generator (Chris
Doty-Humphrey's Small Fast Chaotic generator), two 32-bit uniforms per 64-bit word, each
compared with a threshold: an element is dropped with probability p to within 2^-32, and the
kept ones are scaled by 1 / (1 - p), as `torch.nn.functional.dropout` does. The masks differ
from torch's own (another random stream), not their distribution.

`install(model)` swaps every `nn.Dropout` for `CpuDropout` and routes attention through
`attention` (dropout on the attention probabilities, as BERT and XLM-R apply it). Both fall back
to torch's own dropout and to transformers' SDPA attention off the CPU (a GPU draws masks in the
fused kernels) and whenever nothing is dropped (evaluation), so evaluation is unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

ATTENTION = "xtl_cpu_dropout"  # the attention implementation's registered name
_WORD = 2**32


class _KeepScale(torch.autograd.Function):
    """x * keep / (1 - p) forward and backward, in one fused kernel each way."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.ops.aten.native_dropout_backward(x, keep, scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return torch.ops.aten.native_dropout_backward(grad, keep, ctx.scale), None, None


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """A boolean CPU mask, each element True with probability 1 - p (to within 2^-32).

    The bits come from an SFC64 generator seeded by one draw from torch's default generator,
    so the masks follow `torch.manual_seed` and the saved random state of a resumed run.
    """
    n = math.prod(shape)
    seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))
    words = np.random.SFC64(seed).random_raw((n + 1) // 2).view(np.int32)[:n]
    return torch.from_numpy(words).view(shape) >= round(p * _WORD) - 2**31


def cpu_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`torch.nn.functional.dropout(x, p, training)`, with the cheaper masks on the CPU."""
    if not training or p == 0.0 or x.device.type != "cpu":
        return nn.functional.dropout(x, p, training)
    if p == 1.0:
        return x * 0.0
    return _KeepScale.apply(x, keep_mask(x.shape, p), 1.0 / (1.0 - p))


class CpuDropout(nn.Dropout):
    """`nn.Dropout` (same `p`, same state dict: none) drawing its masks with `keep_mask`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cpu_dropout(x, self.p, self.training)


def attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, scaling: float | None = None,
              dropout: float = 0.0, **kwargs) -> tuple[torch.Tensor, None]:
    """Scaled dot-product attention with `dropout` on the probabilities (SDPA's math path).

    The mask is transformers' SDPA mask (boolean, True = attend, or None: no padding), built
    for this implementation by the mask function registered in `install`.
    """
    if dropout == 0.0 or query.device.type != "cpu":
        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      scaling=scaling, dropout=dropout, **kwargs)
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    # Scaling the queries, not the scores: fewer values when sequences are longer than a head.
    scores = torch.matmul(query * scaling, key.transpose(2, 3))
    if attention_mask is not None:
        # An additive bias (batch x 1 x queries x keys, a head's share of the scores): adding it
        # needs nothing in the backward pass, where masking the scores would run once more.
        bias = torch.zeros(attention_mask.shape, dtype=scores.dtype)
        scores = scores + bias.masked_fill_(~attention_mask, torch.finfo(scores.dtype).min)
    probs = cpu_dropout(scores.softmax(dim=-1), dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def install(model: nn.Module) -> int:
    """Use `CpuDropout` and `attention` throughout `model`; returns the dropouts swapped."""
    AttentionInterface.register(ATTENTION, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)
    swapped = 0
    for module in model.modules():
        for name, child in module.named_children():
            if type(child) is nn.Dropout:
                setattr(module, name, CpuDropout(child.p, child.inplace).train(child.training))
                swapped += 1
        config = getattr(module, "config", None)
        if getattr(config, "_attn_implementation", None) in ("sdpa", "eager"):
            config._attn_implementation = ATTENTION
    return swapped
