"""Nearest neighbours by inner product (cosine on L2-normalised embeddings), exact.

Search is exact inner product in torch, streaming the index in `INDEX_CHUNK`-row chunks
(each read and moved to the device once; a memory-mapped pool from `load_embeddings` never
has to fit in memory) against the queries in `QUERY_CHUNK`s, with a running top-k (memory:
one `QUERY_CHUNK x INDEX_CHUNK` block of similarities); or faiss (`IndexFlatIP`) where it is
importable and the search runs on the CPU; ties go to the lower index in torch.
"""

from __future__ import annotations

from typing import Any

import torch

from xtl.core.errors import ConfigError, DataError

QUERY_CHUNK = 1024
INDEX_CHUNK = 32768


def faiss_available() -> bool:
    try:
        import faiss
    except ImportError:
        return False
    return hasattr(faiss, "IndexFlatIP")  # not a stray directory named faiss


def search_backend(requested: str = "auto", device: torch.device | str | None = None) -> str:
    """"auto" -> faiss for a CPU search where it is importable, else torch (on a GPU, torch's
    matrix products beat faiss-cpu)."""
    if requested == "auto":
        on_cpu = torch.device(device or "cpu").type == "cpu"
        return "faiss" if on_cpu and faiss_available() else "torch"
    if requested not in ("torch", "faiss"):
        raise ConfigError(f"search backend must be 'auto', 'torch' or 'faiss', got {requested!r}")
    return requested


def knn(queries: Any, index: Any, k: int, *, backend: str = "torch",
        device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most similar `index` rows of each query by inner product (cosine for normalised
    rows), best first: ([n, k] similarities, [n, k] row numbers), both on the CPU.

    `queries` and `index` are tensors or numpy arrays; a memory-mapped `index`
    (`load_embeddings`) is read one chunk at a time, so it never has to fit in memory.
    """
    k = min(k, len(index))
    if k < 1 or len(queries) == 0:
        raise DataError(f"knn: {len(queries)} queries against {len(index)} index rows")
    if search_backend(backend) == "faiss":
        return _knn_faiss(queries, index, k)
    return _knn_torch(queries, index, k, torch.device(device or "cpu"))


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    import numpy as np

    # a copy: a memory-mapped chunk is read-only, which torch tensors cannot be
    return torch.from_numpy(np.array(x, dtype=np.float32))


def _top(block: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    # max(dim) returns the FIRST maximum, so k = 1 ties go to the lower index
    if k == 1:
        values, rows = block.max(dim=1, keepdim=True)
        return values, rows
    return block.topk(min(k, block.shape[1]), dim=1)


def _knn_torch(queries: Any, index: Any, k: int, device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact search, streaming the index: each `INDEX_CHUNK` rows go to the device once and
    meet every query `QUERY_CHUNK` at a time; a running top-k per query is merged with each
    chunk's. Memory: the queries, one index chunk, one QUERY_CHUNK x INDEX_CHUNK block."""
    q_all = _as_tensor(queries).to(device, torch.float32)
    best_s = best_r = None
    for i0 in range(0, len(index), INDEX_CHUNK):
        block = _as_tensor(index[i0:i0 + INDEX_CHUNK]).to(device, torch.float32)
        parts = [_top(q_all[q0:q0 + QUERY_CHUNK] @ block.T, k)
                 for q0 in range(0, len(q_all), QUERY_CHUNK)]
        s, r = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]) + i0
        if best_s is not None:  # merge; a stable sort keeps earlier (lower) rows first on ties
            s, r = torch.cat([best_s, s], 1), torch.cat([best_r, r], 1)
            keep = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k]
            s, r = s.gather(1, keep), r.gather(1, keep)
        best_s, best_r = s, r
    return best_s.cpu(), best_r.cpu()


def _knn_faiss(queries: Any, index: Any, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    import faiss
    import numpy as np

    flat = faiss.IndexFlatIP(index.shape[1])
    flat.add(np.ascontiguousarray(_as_tensor(index).float().numpy()))
    sims, rows = flat.search(np.ascontiguousarray(_as_tensor(queries).float().numpy()), k)
    return torch.from_numpy(sims), torch.from_numpy(rows).long()


