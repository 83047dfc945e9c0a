"""One writer per run directory: a lock file naming its holder, with a heartbeat.

`<out>/.xtl.lock` holds {host, pid, started, heartbeat}. A second `xtl run` refuses and says who
holds it. A lock is stale, and taken over with a message, when its pid is dead on this host or
its heartbeat is older than `STALE_AFTER` seconds (a holder on another host that died).
On shared network storage the exclusive create is atomic on NFSv3+ and most cluster file
systems; a holder on another host is only judged by its heartbeat.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from xtl.errors import XtlError
from xtl.store import atomic_write_json

HEARTBEAT_EVERY = 30.0
STALE_AFTER = 600.0
LOCK_NAME = ".xtl.lock"


class LockedError(XtlError):
    """Another process is running this run directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunLock:
    def __init__(self, root: Path, log=print):
        self.path = Path(root) / LOCK_NAME
        self.log = log
        self.record = {"host": socket.gethostname(), "pid": os.getpid(), "started": _now()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def stale_reason(self, holder: dict) -> str | None:
        age = time.time() - float(holder.get("heartbeat_unix", 0))
        if holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", 0))):
            return f"its process {holder.get('pid')} on this host is dead"
        if age > STALE_AFTER:
            return f"its heartbeat is {age:.0f} s old (stale after {STALE_AFTER:.0f} s)"
        return None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read()
                reason = self.stale_reason(holder)
                if reason is None:
                    raise LockedError(
                        f"{self.path.parent} is being run by pid {holder.get('pid')} on "
                        f"{holder.get('host')} since {holder.get('started')}; wait for it, or "
                        f"use another --out") from None
                self.log(f"taking over a stale lock of pid {holder.get('pid')} on "
                         f"{holder.get('host')}: {reason}")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self._payload(), f)
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
            return
        raise LockedError(f"could not take the lock {self.path}")

    def _payload(self) -> dict:
        return {**self.record, "heartbeat": _now(), "heartbeat_unix": time.time()}

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # half-written by a dying holder: treated as stale below

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY):
            try:
                atomic_write_json(self.path, self._payload())
            except OSError as err:  # a full disk: beat again next time, never stop beating
                self.log(f"lock heartbeat not written ({err}); retrying in {HEARTBEAT_EVERY:.0f} s")

    def release(self) -> None:
        self._stop.set()
        if self._read().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
