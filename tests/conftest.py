"""Shared fixtures: an isolated xtl cache, the offline Hub switch, and the optional test mirror
of real data samples (SHARED, beside the checkout) when present."""

from __future__ import annotations

import json
import os
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
    yield


@pytest.fixture
def hub_mirror() -> Path:
    """The real Hub-layout samples of the test mirror (HUB; skip where absent: a fresh clone)."""
    if not HUB.is_dir():
        pytest.skip("../shared/data/hub is not present (fresh clone)")
    return HUB


@pytest.fixture
def formats() -> Iterator[dict]:
    """The format registry, restored after the test (which may register toy formats)."""
    from xtl import tasks

    saved = dict(tasks.FORMATS)
    yield tasks.FORMATS
    tasks.FORMATS.clear()
    tasks.FORMATS.update(saved)


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    from xtl import zoo

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
