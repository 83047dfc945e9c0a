"""Whether the Hugging Face Hub can be used from this machine, and what to do when it cannot.

Without a connection, `datasets` and `huggingface_hub` retry for 20-40 s (minutes when packets
are dropped) and end in a traceback that names no remedy. xtl asks first: an offline switch in
the environment, else a 1 s TCP connection to the Hub endpoint (or the HTTPS proxy), and refuses
at once with the commands that fill a mirror (docs/contracts.md, "Offline machines").
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from xtl.core.errors import DataError

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
PROBE_TIMEOUT_S = 1.0
_probed: dict[tuple[str, int], bool] = {}


def offline_switch() -> str | None:
    """The environment variable that turns the Hub off (`HF_HUB_OFFLINE=1`, ...), if one does."""
    for var in OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return var
    return None


def _endpoint() -> tuple[str, int]:
    """Where a Hub request first connects: the HTTPS proxy if one is set, else the endpoint."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def unavailable() -> str | None:
    """Why the Hub cannot be used from here, or None when it can (probed once per process)."""
    var = offline_switch()
    if var:
        return f"{var} is set"
    host, port = _endpoint()
    if (host, port) not in _probed:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
            _probed[(host, port)] = True
        except OSError:
            _probed[(host, port)] = False
    if not _probed[(host, port)]:
        return f"no connection to {host}:{port} within {PROBE_TIMEOUT_S:g} s"
    return None


def dataset_advice(repos: list[str]) -> str:
    """How to get Hub datasets onto a machine without the Hub, with commands that exist."""
    example = repos[0] if repos else "OWNER/REPO"
    return ("Point `mirror:` in the experiment file (or XTL_HUB_MIRROR) at a directory in the "
            "Hub's Parquet layout, filled on a machine with Hub access by "
            "`xtl data download EXPERIMENT.yaml --to MIRROR` (every split the experiment reads), "
            f"or one repository at a time: `hf download {example} --repo-type dataset "
            f"--local-dir MIRROR/{example}` (`hf auth login` first for a gated dataset); then "
            "copy MIRROR here.")


def dataset_cached(repo: str) -> bool:
    """Whether the `datasets` cache holds any prepared copy of `repo` (what `load_dataset` falls
    back to with the offline switch set); per repository, so it may still lack a config."""
    import datasets
    from datasets.naming import camelcase_to_snakecase

    *namespace, name = repo.split("/")
    root = Path(datasets.config.HF_DATASETS_CACHE).expanduser() / "___".join(
        [*namespace, camelcase_to_snakecase(name)])
    return root.is_dir() and any(p.is_dir() for p in root.glob("*/*/*"))


def require_datasets(needs: list[tuple[str, str]]) -> None:
    """Raise a DataError at once when splits (`(name for the user, Hub repo)`) must come from a
    Hub that is not usable here. With the offline switch set, repositories in the `datasets`
    cache are left to `load_dataset`, which reads them from there without the network."""
    why = unavailable()
    if why is None:
        return
    switch = offline_switch()
    missing = [(name, repo) for name, repo in needs if not (switch and dataset_cached(repo))]
    if not missing:
        return
    names = [name for name, _ in missing]
    shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    tip = "" if switch else (" (Datasets already in the `datasets` cache load from it when "
                             "HF_HUB_OFFLINE=1 is set.)")
    raise DataError(f"no mirror is set and the Hugging Face Hub is not usable here ({why}), "
                    f"but {shown} must come from it. "
                    f"{dataset_advice(sorted({repo for _, repo in missing}))}{tip}")
