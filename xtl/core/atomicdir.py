"""Directories replaced as a whole: a reader finds the complete old copy or the complete new one.

The new contents are built in a temp sibling (`.<name>.tmp-*`), fsynced, then swapped in with
two renames (`dest` -> `.<name>.old`, temp -> `dest`). A crash between the renames leaves the
old copy complete beside the missing `dest`; `recover` puts it back, and every reader and
writer calls it first. Temp siblings left by a crash are removed by the next write.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from xtl.core.store import umask_mode

T = TypeVar("T")


def _old(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.old")


def recover(dest: Path) -> None:
    """Finish or undo a swap that a crash interrupted between its two renames."""
    dest, old = Path(dest), _old(Path(dest))
    if not old.exists():
        return
    if dest.exists():
        shutil.rmtree(old)  # the new copy was already in place: only the cleanup was missed
    else:
        old.rename(dest)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def replace_dir(dest: Path, fill: Callable[[Path], T]) -> T:
    """Write `dest` anew: `fill(tmp)` writes the contents into a temp dir, then it is swapped in."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    recover(dest)
    for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        tmp.chmod(umask_mode(directory=True))  # mkdtemp's 0700 would hide it from colleagues
        value = fill(tmp)
        _fsync_tree(tmp)
        old = _old(dest)
        if dest.exists():
            dest.rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
        return value
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_dir(dest: Path) -> None:
    """Delete `dest`, any interrupted swap of it and its temp siblings."""
    dest = Path(dest)
    recover(dest)
    shutil.rmtree(dest, ignore_errors=True)
    for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
