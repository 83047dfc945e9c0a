"""Exact top-k search over a large candidate pool: chunked streaming vs the naive full matrix.

Usage: python bench/retrieval_search.py [--candidates 100000] [--queries 2000] [--dim 384]
                                        [--k 20] [--rounds 3]

Data: random unit vectors (seed 0), `--dim` 384 = multilingual-e5-small's width (encoding 100k
real candidates with e5-small on this CPU would take hours). Three arms, each in a FRESH
process so that its peak memory is its own (ru_maxrss minus the resident size just before the
search):
- naive: `queries @ pool.T` in one [queries x candidates] float32 matrix, then `topk`;
- chunked: `xtl.data.search.knn` (the dual-encoder and Tatoeba/BUCC search): the pool streamed
  INDEX_CHUNK rows at a time, queries QUERY_CHUNK at a time, a running top-k merged;
- chunked, cached pool: the same over the pool saved with `save_embeddings` and memory-mapped
  with `load_embeddings` (what a pool too large for RAM would use; pages read from the file
  count in the resident size too).
Each arm keeps its best of `--rounds` timings; the chunked results are checked against the
naive ones (same top-k similarities; same ids except exact float ties).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from xtl.data import embeddings, search


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _data(candidates: int, queries: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    pool = torch.nn.functional.normalize(torch.randn(candidates, dim, generator=gen), dim=-1)
    q = torch.nn.functional.normalize(torch.randn(queries, dim, generator=gen), dim=-1)
    return q, pool


def _arm(arm: str, args: argparse.Namespace, cached: str, out: mp.Queue) -> None:
    queries, pool = _data(args.candidates, args.queries, args.dim)
    index = embeddings.load_embeddings(cached) if arm == "chunked, cached pool" else pool
    if arm == "chunked, cached pool":
        del pool
    before = _rss_mib()
    best, result = float("inf"), None
    for _ in range(args.rounds):
        start = time.perf_counter()
        if arm == "naive":
            result = (queries @ index.T).topk(args.k, dim=1)
            result = (result.values, result.indices)
        else:
            result = search.knn(queries, index, args.k)
        best = min(best, time.perf_counter() - start)
    # numpy, not tensors: torch would pass tensors through shared-memory handles
    out.put({"arm": arm, "seconds": best, "peak_mib": _peak_mib() - before,
             "values": result[0].numpy(), "rows": result[1].numpy()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{args.queries:,} queries x {args.candidates:,} candidates x {args.dim} dims, "
          f"top {args.k}; INDEX_CHUNK {search.INDEX_CHUNK}, QUERY_CHUNK "
          f"{search.QUERY_CHUNK}")
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        cached = str(embeddings.save_embeddings(Path(tmp) / "pool.npy",
                                                _data(args.candidates, 1, args.dim)[1]))
        results = {}
        for arm in ("naive", "chunked", "chunked, cached pool"):
            queue = ctx.Queue()
            proc = ctx.Process(target=_arm, args=(arm, args, cached, queue))
            proc.start()
            results[arm] = queue.get()
            proc.join()
    naive = results["naive"]
    print("\n| arm | search time | queries/s | similarities/s | peak extra memory |")
    print("|---|---|---|---|---|")
    for arm, r in results.items():
        rate = args.queries / r["seconds"]
        print(f"| {arm} | {r['seconds']:.2f} s | {rate:,.0f} | "
              f"{rate * args.candidates / 1e9:.2f} G | {r['peak_mib']:,.0f} MiB |")
    full = args.queries * args.candidates * 4 / 2**20
    block = min(args.queries, search.QUERY_CHUNK) * min(args.candidates,
                                                           search.INDEX_CHUNK) * 4 / 2**20
    print(f"\n(the naive similarity matrix alone is {full:,.0f} MiB; one chunked block is "
          f"{block:,.0f} MiB)")
    for arm in ("chunked", "chunked, cached pool"):
        r = results[arm]
        same_values = bool(abs(r["values"] - naive["values"]).max() < 1e-5)
        same_rows = float((r["rows"] == naive["rows"]).mean())
        print(f"{arm}: top-{args.k} similarities equal to naive: {same_values}; "
              f"same ids {100 * same_rows:.3f} %")


if __name__ == "__main__":
    main()
