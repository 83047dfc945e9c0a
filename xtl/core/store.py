"""Crash-safe file writes and checksums: a reader never sees a half-written file."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from xtl.core.faults import fault


def current_umask() -> int:
    """The process umask (read without changing it where Linux exposes it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(mask)
    return mask


def umask_mode(directory: bool = False) -> int:
    """The mode open()/mkdir() would give a new file (0666) or directory (0777) under the umask:
    temp files are created owner-only (0600/0700), and colleagues on shared storage must be able
    to read what is renamed into place."""
    return (0o777 if directory else 0o666) & ~current_umask()


def atomic_write_bytes(path: Path, data: bytes, fault_point: str | None = None) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`.

    `fault_point` names the place for crash tests (`XTL_FAULT`): death between write and rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if fault_point:
            fault(fault_point)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, fault_point: str | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fault_point)


def atomic_write_json(path: Path, obj: Any, fault_point: str | None = None) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write_text(path, text, fault_point)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_json_object(path: Path) -> dict | None:
    """A JSON object from `path`; None when the file is not JSON, not UTF-8 or not an object
    (a marker file truncated or overwritten: the caller says what that means)."""
    try:
        doc = read_json(path)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: Path, exclude: tuple[str, ...] = ()) -> str:
    """One checksum over every file under `root` (relative names and contents, sorted)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in exclude:
            continue
        digest.update(rel.encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where xtl keeps built and converted models, features and text: `XTL_CACHE`, else
    ~/.cache/xtl."""
    return Path(os.environ.get("XTL_CACHE", Path.home() / ".cache" / "xtl")).expanduser()
