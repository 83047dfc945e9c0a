"""One writer per run directory: a lock file naming its holder, owned through a token.

`<out>/.xtl.lock` holds {host, pid, started, token, heartbeat_unix}; it is created whole (a temp
file hard-linked into place, so no reader ever sees it half-written) and never rewritten: the
holder's heartbeat is the file's modification time. A second `xtl run` refuses and says who
holds it. A lock is stale, and taken over with a message, when its pid is dead on this host, or
its heartbeat is older than `STALE_AFTER` seconds (a holder on another host that died, or a
paused one), or its contents are not a lock's (judged by age alone).

Take-over is atomic: only the process that creates `<lock>.takeover` exclusively may remove a
stale lock, and it re-reads the lock under that guard, so of two processes that judge the same
lock stale at once exactly one wins. Ownership is checked: a holder whose process was paused past
`STALE_AFTER` may have lost the lock to another run; `check()` (called before the runner writes)
and the heartbeat find the token no longer theirs, and the run stops with `LockLostError`
instead of writing beside the new holder. On shared network storage the exclusive create and the
hard link are atomic on NFSv3+ and most cluster file systems; a holder on another host is only
judged by its heartbeat.
"""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from xtl.core.errors import XtlError

HEARTBEAT_EVERY = 30.0
STALE_AFTER = 600.0
# A take-over guard older than this was left by a process that died inside the take-over
# (which takes milliseconds): it is removed.
GUARD_STALE_AFTER = 30.0
# A lock file whose contents are not a lock's (never written so by xtl, which creates it whole)
# is stale once it is this old.
GARBLED_STALE_AFTER = 30.0
LOCK_NAME = ".xtl.lock"


class LockedError(XtlError):
    """Another process is running this run directory."""


class LockLostError(XtlError):
    """This process held the lock, and another run has since taken it over."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_holder(text: str) -> dict | None:
    """The lock's record if `text` is one ({host: str, pid: int > 0, ...}), else None."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("host"), str):
        return None
    pid = doc.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    beat = doc.get("heartbeat_unix", 0)
    if not isinstance(beat, (int, float)) or isinstance(beat, bool) or not math.isfinite(beat):
        return None
    if not isinstance(doc.get("token", ""), str):
        return None
    return doc


def _touch(path: Path) -> None:
    """The heartbeat: the lock file's mtime (its record is never rewritten)."""
    os.utime(path)


class RunLock:
    def __init__(self, root: Path, log=print, on_lost=None):
        self.path = Path(root) / LOCK_NAME
        self.guard = self.path.with_name(LOCK_NAME + ".takeover")
        self.log = log
        self.token = uuid.uuid4().hex
        self.record = {"host": socket.gethostname(), "pid": os.getpid(), "started": _now(),
                       "token": self.token}
        self.lost: str | None = None  # why the lock is no longer ours
        self.on_lost = on_lost  # called by the heartbeat when it finds the lock taken
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- judging a lock file --------------------------------------------------------------

    def _read(self) -> tuple[dict | None, float | None, str]:
        """(holder record or None, the file's mtime or None when absent, raw text)."""
        try:
            stat = self.path.stat()
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None, None, ""
        except OSError as err:
            raise XtlError(f"cannot read the lock file {self.path}: {err}") from None
        text = raw.decode("utf-8", errors="replace")
        return parse_holder(text), stat.st_mtime, text

    def stale_reason(self, holder: dict | None, mtime: float | None = None,
                     text: str = "") -> str | None:
        """Why the lock file is stale, or None while its holder may be alive."""
        if holder is not None and "token" not in holder:  # written by xtl before the token
            last = float(holder.get("heartbeat_unix", 0))
        else:
            last = mtime or 0.0
        age = time.time() - last
        if holder is None:
            shown = text[:80] + ("..." if len(text) > 80 else "")
            if age > GARBLED_STALE_AFTER:
                return (f"its contents are not an xtl lock ({shown!r}) and it is {age:.0f} s "
                        "old")
            return None
        if holder.get("host") == socket.gethostname() and not _alive(int(holder["pid"])):
            return f"its process {holder['pid']} on this host is dead"
        if age > STALE_AFTER:
            return f"its heartbeat is {age:.0f} s old (stale after {STALE_AFTER:.0f} s)"
        if age < -STALE_AFTER:  # never stale otherwise: a clock far ahead, or a forged time
            return f"its heartbeat lies {-age:.0f} s in the future"
        return None

    # --- taking it ------------------------------------------------------------------------

    def _create(self) -> bool:
        """Create the lock with its whole record, atomically; False if a lock exists."""
        data = json.dumps({**self.record, "heartbeat_unix": time.time()}).encode()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f"{LOCK_NAME}.", suffix=".new")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, self.path)
                return True
            except FileExistsError:
                return False
            except OSError:  # a file system without hard links: exclusive create, then write
                try:
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                return True
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _take_over(self, judged: str) -> bool:
        """Remove the stale lock whose raw text was `judged`, under the take-over guard.
        True when it was removed here (the caller then races a fresh create as anyone)."""
        try:
            fd = os.open(self.guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - self.guard.stat().st_mtime > GUARD_STALE_AFTER:
                    self.guard.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            return False
        os.close(fd)
        try:
            holder, mtime, text = self._read()
            # the same file, still stale: nobody took it over between our look and the guard
            if mtime is not None and text == judged and self.stale_reason(holder, mtime, text):
                self.path.unlink(missing_ok=True)
                return True
            return False
        finally:
            self.guard.unlink(missing_ok=True)

    def acquire(self, attempts: int = 50) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            if self._create():
                self._thread = threading.Thread(target=self._beat, daemon=True)
                self._thread.start()
                return
            holder, mtime, text = self._read()
            if mtime is None:
                continue  # released between our create and our read: try again
            reason = self.stale_reason(holder, mtime, text)
            if reason is None:
                if holder is None:  # not a lock's contents, but young: judged when older
                    raise LockedError(
                        f"the lock file {self.path} has unexpected contents "
                        f"({text[:80]!r}) and was written {time.time() - mtime:.0f} s ago; "
                        f"it is judged stale {GARBLED_STALE_AFTER:.0f} s after that. Try again "
                        "then, or use another --out")
                raise LockedError(
                    f"{self.path.parent} is being run by pid {holder.get('pid')} on "
                    f"{holder.get('host')} since {holder.get('started')}; wait for it, or "
                    f"use another --out")
            who = (f"pid {holder.get('pid')} on {holder.get('host')}" if holder
                   else f"of unknown holder ({self.path})")
            if self._take_over(text):
                self.log(f"taking over a stale lock {who}: {reason}")
            else:
                time.sleep(0.05)  # another process is taking it over: look again
        raise LockedError(f"could not take the lock {self.path}: other processes keep taking "
                          "it; try again")

    # --- holding it -----------------------------------------------------------------------

    def check(self) -> None:
        """Raise `LockLostError` unless the lock file is still this process's."""
        if self.lost is None:
            holder, mtime, _ = self._read()
            if mtime is None and self._create():  # deleted by hand: nobody else holds it
                self.log(f"the lock file {self.path} was removed while this run held it; "
                         "written again")
                return
            if mtime is None:
                holder, mtime, _ = self._read()
            if holder is None or holder.get("token") != self.token:
                self.lost = (f"pid {holder.get('pid')} on {holder.get('host')} since "
                             f"{holder.get('started')}" if holder else
                             "nobody (the lock file was removed or replaced)")
        if self.lost is not None:
            self._stop.set()
            raise LockLostError(
                f"this run lost the lock on {self.path.parent} to {self.lost} (this process "
                f"was probably paused for more than {STALE_AFTER:.0f} s); it stops here "
                "without writing more. The other run continues; check it with `xtl status`")

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY):
            try:
                self.check()
            except LockLostError as err:
                self.log(f"xtl: {err}")
                if self.on_lost is not None:
                    self.on_lost()
                return
            except XtlError as err:
                self.log(f"lock not readable ({err}); retrying in {HEARTBEAT_EVERY:.0f} s")
                continue
            try:
                _touch(self.path)
            except OSError as err:  # a full disk or a hiccup: beat again next time
                self.log(f"lock heartbeat not written ({err}); retrying in {HEARTBEAT_EVERY:.0f} s")

    def release(self) -> None:
        self._stop.set()
        try:
            holder, _, _ = self._read()
        except XtlError:
            return
        if holder is not None and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
