"""Evaluation throughput: sentence embeddings per second, fp32 vs bf16 autocast, per model.

Usage: python bench/eval_throughput.py [--models tiny multilingual-e5-small] [--pairs N]
                                        [--rounds R]

Data: the real Tatoeba samples of the test mirror beside the checkout (`RAW`: deu, cmn, hin,
both sides of the first N pairs of each; synth-nli premises where it is absent). Each
setting embeds the whole set with `xtl.data.embeddings.embed` (length-sorted batches of 64, masked
mean, the model's retrieval recipe: e5 with "query: " and its last layer, tiny at 14/24 of
depth); settings are interleaved over rounds and the best round kept (the machine may be
shared). Also printed: how far bf16 moves the vectors (min cosine to fp32), whether it changes
Tatoeba top-1 hits, and exact cosine search speed at BUCC-like sizes.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from xtl.data import embeddings, search, sources, tasks
from xtl.data.readers import tatoeba
from xtl.model import zoo

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw" / "tatoeba" / "v1"
LANGUAGES = ("de", "zh", "hi")
RECIPES = {"multilingual-e5-small": {"prefix": "query: ", "layer": -1},
           "tiny": {"prefix": "", "layer": 14 / 24}}


def sentences(pairs: int) -> tuple[list[str], list[str], str]:
    """(foreign, English) sentences, pair i of each language at the same position."""
    foreign, english = [], []
    if RAW.is_dir():
        for lang in LANGUAGES:
            code = tatoeba.iso3(lang)
            foreign += [s.strip() for s in tatoeba.read_lines(
                RAW / f"tatoeba.{code}-eng.{code}")[:pairs]]
            english += [s.strip() for s in tatoeba.read_lines(
                RAW / f"tatoeba.{code}-eng.eng")[:pairs]]
        return foreign, english, f"real Tatoeba pairs ({', '.join(LANGUAGES)}) from {RAW}"
    task = tasks.get("synth-nli")
    for lang in LANGUAGES:
        foreign += sources.load(task, "validation", lang).rows["text_a"][:pairs]
        english += sources.load(task, "validation", "en").rows["text_a"][:pairs]
    return foreign, english, "synth-nli premises (no test mirror)"


def timed(model, tokenizer, texts: list[str], precision: str, recipe: dict
          ) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    vectors = embeddings.embed(model, tokenizer, texts, recipe["prefix"], "mean", recipe["layer"],
                               64, max_length=256, precision=precision)
    return len(texts) / (time.perf_counter() - start), vectors


def top1_hits(vectors: torch.Tensor, n: int) -> torch.Tensor:
    """en->xx hits of each language block (English rows query the foreign rows)."""
    foreign, english = vectors[:n], vectors[n:]
    out = []
    for start in range(0, n, n // len(LANGUAGES)):
        block = slice(start, start + n // len(LANGUAGES))
        out.append(search.knn(english[block], foreign[block], 1)[1][:, 0])
    return torch.cat(out)


def bench_model(name: str, pairs: int, rounds: int) -> None:
    location, source = zoo.materialize(name)
    tokenizer = AutoTokenizer.from_pretrained(str(location))
    model = AutoModel.from_pretrained(str(location)).eval()
    recipe = RECIPES[name]
    foreign, english, _ = sentences(pairs)
    texts = foreign + english
    tokens = sum(len(ids) for ids in tokenizer([recipe["prefix"] + t for t in texts])["input_ids"])
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"\n## {name} ({params:.1f} M parameters; {source})")
    print(f"{len(texts)} sentences, {tokens / len(texts):.1f} tokens each on average; layer "
          f"{recipe['layer']!r} -> hidden_states["
          f"{embeddings.layer_index(recipe['layer'], model.config.num_hidden_layers)}]")
    embeddings.embed(model, tokenizer, texts[:64], precision="bf16")  # warm-up
    speed, vectors = {"fp32": 0.0, "bf16": 0.0}, {}
    for _ in range(rounds):
        for precision in speed:
            rate, vectors[precision] = timed(model, tokenizer, texts, precision, recipe)
            speed[precision] = max(speed[precision], rate)
    print(f"{'precision':<10}{'sentences/s':>12}{'tokens/s':>10}  (best of {rounds} round(s))")
    for precision, rate in speed.items():
        print(f"{precision:<10}{rate:>12.1f}{rate * tokens / len(texts):>10.0f}")
    agree = (top1_hits(vectors["fp32"], len(foreign)) == top1_hits(vectors["bf16"],
                                                                      len(foreign)))
    cosine = (vectors["fp32"] * vectors["bf16"]).sum(1)
    print(f"bf16 / fp32: {speed['bf16'] / speed['fp32']:.2f}x; bf16 vectors vs fp32: min cosine "
          f"{cosine.min():.4f}, mean {cosine.mean():.5f}; same en->xx top-1 hit for "
          f"{agree.float().mean():.1%} of {len(agree)} queries")


def bench_search(queries: int, index: int, dim: int = 384) -> None:
    gen = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(queries, dim, generator=gen), dim=-1)
    x = torch.nn.functional.normalize(torch.randn(index, dim, generator=gen), dim=-1)
    start = time.perf_counter()
    search.knn(q, x, 4)
    seconds = time.perf_counter() - start
    print(f"\n## exact cosine search (torch, chunks {search.QUERY_CHUNK} x "
          f"{search.INDEX_CHUNK})\n{queries:,} queries x {index:,} rows x {dim} dims, k = 4: "
          f"{seconds:.2f} s ({queries / seconds:,.0f} queries/s); BUCC de test mines ~400k x "
          f"~400k both ways: ~{2 * 400_000 * 400_000 / (queries * index) * seconds / 60:.0f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "multilingual-e5-small"])
    parser.add_argument("--pairs", type=int, default=0,
                        help="pairs per language (default: 300 for tiny, 50 otherwise)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved rounds, best kept")
    args = parser.parse_args()
    print("$ " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, CPU bf16 kernels: "
          f"{torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    print(f"data: {sentences(1)[2]}; batches of 64, length-sorted")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    for name in args.models:
        bench_model(name, args.pairs or (300 if name == "tiny" else 50), args.rounds)
    bench_search(4096, 65536)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average after: "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
