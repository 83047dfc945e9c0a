"""Shared fixtures: an isolated xtl cache, the offline Hub switch, the optional test mirror of
real data samples (SHARED, beside the checkout) when present, and the one uninterrupted run of
the crash-test grid that the runner, robustness and executor tests compare with."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before any test module imports `datasets` or `huggingface_hub`, which read these at import:
# no test may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
HUB = SHARED / "data" / "hub"


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory):
    """No test touches ~/.cache/xtl or the network; XTL_HUB_MIRROR from the caller is ignored."""
    os.environ.setdefault("XTL_CACHE", str(tmp_path_factory.mktemp("xtl-cache")))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.pop("XTL_HUB_MIRROR", None)
    _share_the_cores_between_workers()
    yield


def _share_the_cores_between_workers() -> None:
    """Under pytest-xdist (`make test`: two workers), each worker and the processes it starts
    get their share of the cores: OpenMP threads spinning on another worker's core slow both."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        return
    import torch

    from xtl.grid.executors.local import usable_cores  # the cores this process may run on

    threads = max(1, usable_cores() // workers)
    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


@pytest.fixture
def hub_mirror() -> Path:
    """The real Hub-layout samples of the test mirror (HUB; skip where absent: a fresh clone)."""
    if not HUB.is_dir():
        pytest.skip("../shared/data/hub is not present (fresh clone)")
    return HUB


@pytest.fixture
def formats() -> Iterator[dict]:
    """The format registry, restored after the test (which may register toy formats)."""
    from xtl.data import tasks

    saved = dict(tasks.FORMATS)
    yield tasks.FORMATS
    tasks.FORMATS.clear()
    tasks.FORMATS.update(saved)


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    from xtl.model import zoo

    path, _ = zoo.materialize("tiny")
    return Path(path)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one intra-op thread is as fast, and immune to a busy machine's spinning."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_hub(root: Path, repo: str, config: str, split: str, rows: dict, features) -> None:
    """One Parquet file in the Hub's layout, with the Hub's features in its metadata."""
    import datasets

    folder = root / repo / config
    folder.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(rows, features=features).to_parquet(
        str(folder / f"{split}-00000-of-00001.parquet"))


def assert_same_checkpoint(a: Path, b: Path) -> None:
    """Byte-identical checkpoint files and the same checksum; checkpoint.json may differ only in
    when it was written and where its parent lies (another run directory's)."""
    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file()}

    fa, fb = files(a), files(b)
    assert fa.keys() == fb.keys()
    differ = sorted(name for name in fa if name != "checkpoint.json" and fa[name] != fb[name])
    assert not differ, f"{a} and {b} differ in {differ}"
    records = [json.loads(f["checkpoint.json"]) for f in (fa, fb)]
    for record in records:
        record.pop("created")
        (record.get("parent") or {}).pop("path", None)
    assert records[0] == records[1]


# The smallest grid with a stage and a target: bad-input and reliability tests vary it.
TINY_GRID = """\
xtl: 1
models: [tiny]
intermediate: [none, synth-nli]
targets: [synth-nli]
train_sizes: [100]
eval_languages: [de]
"""


# --- the crash-test grid and its uninterrupted run (slow tests) -------------------------------

# A stage, its target and a baseline target: the crash, ENOSPC, concurrency and executor tests
# run it end to end and compare with one uninterrupted run (`baseline`).
# (bench/fault_grid.py times it too)
FAULT_EXP = (Path(__file__).parent / "fault_grid.yaml").read_text()

# One intra-op thread in every `xtl run` of that grid, whatever the executor (Ray gives its
# workers one): results and checkpoints are then bit-identical across all of them, so one
# uninterrupted run serves every comparison.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def results(out: Path) -> dict:
    """Every cell's metric values and per-example predictions (logits to 5 decimals)."""
    found = {}
    for metrics in sorted((out / "cells").glob("*/metrics.json")):
        doc = json.loads(metrics.read_text())
        found[metrics.parent.name] = sorted((r["language"], r["split"], r["metric"], r["value"])
                                            for r in doc["records"])
        for path in sorted((metrics.parent / "predictions").glob("*.jsonl")):
            found[f"{metrics.parent.name}/{path.name}"] = path.read_text()
    return found


def xtl_env(**env_vars: str) -> dict[str, str]:
    """This process's environment without fault switches, one thread, plus `env_vars`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTL_FAULT")}
    return env | ONE_THREAD | env_vars


def run_xtl(args: list[str], timeout: int = 600, **env_vars: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xtl.cli", *args], env=xtl_env(**env_vars),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def baseline(tmp_path_factory, tiny_dir) -> tuple[Path, dict]:
    """The uninterrupted in-process run of FAULT_EXP (its run directory's parent and
    `results`), with a cold feature cache (root / "cache"): later runs given that cache find
    it warm. One run per test session, shared by the test modules and, under xdist, by the
    workers: the first to need it makes it while the others wait on a file lock."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "baseline"
    with open(shared / "baseline.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (root / "made").is_file():
            shutil.rmtree(root, ignore_errors=True)  # a worker's failed attempt
            (root / "cache").mkdir(parents=True)
            # the built model, not its features
            (root / "cache" / "models").symlink_to(tiny_dir.parent)
            (root / "exp.yaml").write_text(FAULT_EXP)
            proc = run_xtl(["run", str(root / "exp.yaml"), "--out", str(root / "out")],
                           XTL_CACHE=str(root / "cache"))
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert (root / "cache" / "features").is_dir()
            (root / "made").touch()
    found = results(root / "out")
    assert len([k for k in found if "/" not in k]) == 3
    return root, found
