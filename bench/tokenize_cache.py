"""Tokenisation throughput, cold (tokenise and write the cache) vs warm (read the cache).

Usage: python bench/tokenize_cache.py [--model tiny|multilingual-e5-small] [--rows N]
Runs in a fresh temporary XTL_CACHE; prints rows/s and the warm-over-cold speed-up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--rows", type=int, default=1200)
    args = parser.parse_args()
    cache = tempfile.mkdtemp(prefix="xtl-bench-cache-")
    models = os.environ.get("XTL_CACHE")
    os.environ["XTL_CACHE"] = cache
    try:
        from transformers import AutoTokenizer

        from xtl.core.hparams import Hparams
        from xtl.data import sources, tasks
        from xtl.data.features import features
        from xtl.model import zoo

        if models:  # reuse built/converted models, but not their feature cache
            os.environ["XTL_CACHE"] = models
        location, _ = zoo.materialize(args.model)
        os.environ["XTL_CACHE"] = cache
        tokenizer = AutoTokenizer.from_pretrained(str(location))
        task = tasks.get("synth-nli")
        hp = Hparams({"max_length": 128})
        splits = [sources.load(task, "train", lang, size=args.rows) for lang in task.languages]
        n = sum(len(s.rows) for s in splits)
        print(f"$ python bench/tokenize_cache.py --model {args.model} --rows {args.rows}")
        timings = {}
        for phase in ("cold", "warm"):
            start = time.perf_counter()
            for split in splits:
                features(task, split, tokenizer, hp, train=True)
            timings[phase] = time.perf_counter() - start
            print(f"{phase}: {n} rows in {timings[phase]:.2f} s = {n / timings[phase]:,.0f} rows/s")
        print(f"warm speed-up: {timings['cold'] / timings['warm']:.1f}x "
              f"({len(splits)} splits, python {sys.version.split()[0]})")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
