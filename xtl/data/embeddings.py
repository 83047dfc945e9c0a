"""Sentence embeddings from an encoder as it is: which hidden layer, how it is pooled, batched
and tokenised in chunks, and a cache that keeps a candidate pool's vectors while the weights
do not change.

The representation (Hu et al. 2020, section 2; XTREME's `third_party/utils_retrieve.py`):
`hidden_states[i]` of the encoder (0 = the embedding layer, n = the last of
  n blocks). `layer` is an index (negative counts from the end: -1 = last) or a FRACTION of
  depth, i = round(f * n): the tasks' recipe 14/24 is jiant's `hidden_states[14]` of XLM-R
  Large and block 7 of a 12-layer model (XTREME's base-model layer). Pooling: masked mean over
  every non-pad token, `<s>` and `</s>` included (jiant's MeanPoolerHead), or the first token
  ("cls"); then L2-normalised, so the inner product is the cosine.

Dual-encoder targets (xtl/data/tasks/dual_encoder.py: LAReQA, Mewsli-X) embed with a second
segment per text (`pairs`), tokenised chunk by chunk, and `POOL_CACHE`, which keeps one
candidate pool's embeddings for as long as the encoder's weights do not change, so the
languages of a cell share one encoding of the pool.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from xtl.core.errors import ConfigError, DataError
from xtl.core.precision import autocast
from xtl.core.progress import bar as progress_bar

Layer = int | float
TOKENIZE_CHUNK = 8192


def layer_index(layer: Layer, num_layers: int) -> int:
    """Index into `hidden_states` (num_layers + 1 entries; 0 = embeddings) for a `layer`
    hyperparameter: an int index (negative from the end) or a float fraction of depth."""
    if isinstance(layer, bool) or not isinstance(layer, (int, float)):
        raise ConfigError(f"layer must be an int index or a float fraction, got {layer!r}")
    if isinstance(layer, float):
        if not 0.0 <= layer <= 1.0:
            raise ConfigError(f"layer {layer} is a float, so a fraction of depth: it must be in "
                              f"[0, 1] (an index is an int, e.g. 14)")
        return math.floor(layer * num_layers + 0.5)  # round half up, unlike round()
    if not -(num_layers + 1) <= layer <= num_layers:
        raise ConfigError(f"layer {layer} is outside this encoder's hidden states: 0 (embeddings)"
                          f" to {num_layers} (last), or -1 to -{num_layers + 1}")
    return layer % (num_layers + 1)


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """[batch, tokens, dim] -> [batch, dim]; padding never enters a mean."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def encoder_depth(encoder: Any) -> int:
    return int(encoder.config.num_hidden_layers)


def encode_texts(tokenizer: Any, texts: Sequence[str], pairs: Sequence[str | None] | None = None,
                 prefix: str = "", max_length: int | None = None) -> dict[str, list]:
    """Token ids of `texts`, each with its second segment from `pairs` where one is given
    (None: a single segment). Pairs are truncated longest-first, so a short first segment (a
    question, a mention, a sentence) survives and its long context is cut."""
    limit = {"max_length": max_length} if max_length else {}
    texts = [prefix + t for t in texts]
    if pairs is None or all(p is None for p in pairs):
        return dict(tokenizer(texts, truncation=True, **limit))
    if len(pairs) != len(texts):
        raise DataError(f"{len(texts)} texts but {len(pairs)} second segments")
    with_pair = [i for i, p in enumerate(pairs) if p is not None]
    if len(with_pair) == len(texts):
        return dict(tokenizer(texts, list(pairs), truncation="longest_first", **limit))
    alone = [i for i, p in enumerate(pairs) if p is None]
    parts = [(with_pair, tokenizer([texts[i] for i in with_pair], [pairs[i] for i in with_pair],
                                   truncation="longest_first", **limit)),
             (alone, tokenizer([texts[i] for i in alone], truncation=True, **limit))]
    out: dict[str, list] = {key: [None] * len(texts) for key in parts[0][1]}
    for rows, enc in parts:
        for key in out:
            for i, value in zip(rows, enc[key], strict=True):
                out[key][i] = value
    return out


@torch.inference_mode()
def embed(encoder: Any, tokenizer: Any, texts: Sequence[str], prefix: str = "",
          pooling: str = "mean", layer: Layer = -1, batch_size: int = 64, *,
          max_length: int | None = None, precision: str = "fp32",
          pairs: Sequence[str | None] | None = None, desc: str | None = None) -> torch.Tensor:
    """L2-normalised float32 embeddings of `texts` (rows in input order, on the CPU); `pairs`
    gives each text a second segment (a context) where not None.

    Texts are tokenised `TOKENIZE_CHUNK` at a time (a million candidates never sit in memory as
    token lists), and batches hold texts of similar length (longest first within a chunk), so
    little compute goes to padding; the encoder runs in eval mode under `precision`'s autocast
    on its own device. `desc` shows a progress bar.
    """
    n_layers = encoder_depth(encoder)
    index = layer_index(layer, n_layers)
    if not texts:
        return torch.empty(0, encoder.config.hidden_size)
    device = next(encoder.parameters()).device
    out = torch.empty(len(texts), encoder.config.hidden_size)
    was_training = encoder.training
    encoder.eval()
    bar = progress_bar(total=len(texts), desc=desc, unit="text") if desc else None
    try:
        for c0 in range(0, len(texts), TOKENIZE_CHUNK):
            c1 = min(c0 + TOKENIZE_CHUNK, len(texts))
            enc = encode_texts(tokenizer, texts[c0:c1], None if pairs is None else pairs[c0:c1],
                               prefix, max_length)
            order = sorted(range(c1 - c0), key=lambda i: -len(enc["input_ids"][i]))
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                batch = tokenizer.pad({k: [v[i] for i in rows] for k, v in enc.items()},
                                      return_tensors="pt")
                batch = {k: v.to(device) for k, v in batch.items()}
                with autocast(precision, device):
                    states = encoder(**batch, output_hidden_states=index != n_layers)
                hidden = (states.last_hidden_state if index == n_layers
                          else states.hidden_states[index])
                vectors = pool(hidden.float(), batch["attention_mask"], pooling)
                out[[c0 + r for r in rows]] = torch.nn.functional.normalize(vectors,
                                                                            dim=-1).cpu()
                if bar is not None:
                    bar.update(len(rows))
    finally:
        encoder.train(was_training)
        if bar is not None:
            bar.close()
    return out


def weights_token(module: torch.nn.Module) -> tuple:
    """Changes whenever the module's weights may have changed: every parameter's storage and
    in-place version counter (optimizer steps, load_state_dict), plus a float64 checksum (the
    belt to those braces: a write through `.data` bumps no counter)."""
    params = list(module.parameters())
    marks = tuple((p.data_ptr(), p._version) for p in params)
    with torch.no_grad():
        total = float(sum(p.detach().double().sum() for p in params)) if params else 0.0
    return marks, total


@dataclass
class _Slot:
    key: Any
    owner: Any  # weakref to the encoder
    token: tuple
    vectors: torch.Tensor


class EmbeddingCache:
    """A candidate pool's embeddings, encoded once per encoder state and pool and reused by
    every query set until either changes: LAReQA's 11 languages and Mewsli-X's share one
    multilingual pool. One slot, so memory holds at most one pool (plus the one being built
    after the old is dropped)."""

    def __init__(self) -> None:
        self._slot: _Slot | None = None
        self.hits = self.misses = 0

    def get(self, encoder: torch.nn.Module, key: Any, compute: Callable[[], torch.Tensor]
            ) -> torch.Tensor:
        token = weights_token(encoder)
        slot = self._slot
        if slot is not None and slot.key == key and slot.owner() is encoder and \
                slot.token == token:
            self.hits += 1
            return slot.vectors
        self._slot = None  # drop the old pool before encoding the new one
        self.misses += 1
        vectors = compute()
        self._slot = _Slot(key, weakref.ref(encoder), token, vectors)
        return vectors

    def clear(self) -> None:
        self._slot = None


POOL_CACHE = EmbeddingCache()


def save_embeddings(path: str | Path, vectors: torch.Tensor) -> Path:
    """Embeddings as a .npy file, for `load_embeddings` to memory-map (a pool too large to
    keep in RAM is searched chunk by chunk from disk)."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors.float().contiguous().numpy())
    return path


def load_embeddings(path: str | Path, mmap: bool = True) -> Any:
    """A saved embedding matrix; memory-mapped (read lazily by `knn`'s chunks) by default."""
    import numpy as np

    return np.load(Path(path), mmap_mode="r" if mmap else None)


