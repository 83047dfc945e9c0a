"""Sentence embeddings from an encoder: masked mean (or first-token) pooling of one layer.

The evaluation issue grows this into BUCC mining and Tatoeba search; the pooling is fixed here
so every caller embeds sentences the same way.
"""

from __future__ import annotations

from typing import Any

import torch


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """[batch, tokens, dim] -> [batch, dim]; padding never enters a mean."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


@torch.inference_mode()
def embed(encoder: Any, tokenizer: Any, texts: list[str], prefix: str = "",
          pooling: str = "mean", layer: int = -1, batch_size: int = 64) -> torch.Tensor:
    """L2-normalised sentence embeddings of `texts` (rows in input order)."""
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer([prefix + t for t in texts[start:start + batch_size]], padding=True,
                        truncation=True, return_tensors="pt")
        states = encoder(**enc, output_hidden_states=layer != -1)
        hidden = states.last_hidden_state if layer == -1 else states.hidden_states[layer]
        out.append(torch.nn.functional.normalize(pool(hidden, enc["attention_mask"], pooling),
                                                 dim=-1))
    return torch.cat(out)
