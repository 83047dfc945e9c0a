"""Shared fixtures: an isolated xtl cache, the offline Hub switch, and ../shared when present."""

from __future__ import annotations

import os
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
    """The real Hub-layout samples in ../shared/data/hub (skip where absent: a fresh clone)."""
    if not HUB.is_dir():
        pytest.skip("../shared/data/hub is not present (fresh clone)")
    return HUB


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
