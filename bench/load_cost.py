"""What loading data costs a cell besides reading it: the target notebook's calls (those of
bench/runner_overhead.py's `direct`) twice in one process, with the time spent inside
`datasets`' fingerprint hashing summed; and the target notebook's import cell in a fresh
process. Compare two trees by running it with each on PYTHONPATH.

Usage: python bench/load_cost.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datasets import fingerprint

sys.path.insert(0, str(Path(__file__).parent))
from runner_overhead import direct  # noqa: E402

IMPORT_CELL = ("from IPython.display import display\n"
               "from xtl.cells import phases\n"
               "from xtl.core import chance\n"
               "from xtl.data import tasks\n"
               "from xtl.evaluation import metrics, plots, shortcuts\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    hashing = [0.0]
    original = fingerprint.Hasher.hash.__func__

    def timed(cls, value):
        start = time.perf_counter()
        try:
            return original(cls, value)
        finally:
            hashing[0] += time.perf_counter() - start

    fingerprint.Hasher.hash = classmethod(timed)
    for i in range(args.repeats):
        hashing[0] = 0.0
        start = time.perf_counter()
        direct(Path(tempfile.mkdtemp(prefix="xtl-load-")))
        print(f"direct call {i + 1}: {time.perf_counter() - start:6.2f} s "
              f"(hashing {hashing[0]:.2f} s)")
    for i in range(args.repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORT_CELL], check=True)
        print(f"import cell {i + 1}: {time.perf_counter() - start:6.2f} s")


if __name__ == "__main__":
    main()
