"""Kernels forked from a process that has already imported torch, transformers and xtl.

Every cell runs in a fresh Jupyter kernel (docs/contracts.md); a fresh interpreter spends
seconds of CPU importing the same modules before the cell's first line of work
(BENCHMARKS.md, "Runner overhead per cell"). A fork server imports them once, then forks one
child per kernel: the child is a new process (its own pid, session, environment, working
directory, stdio and random seeds) that starts `python -m <module>` as the interpreter would,
but with those modules already in memory.

Server side: `python -m xtl.core.forkserver SOCKET MODULE...` imports the modules, listens on
the Unix socket, prints `ready`, and serves one request per connection: a JSON line
{"module", "argv", "env", "cwd"} with three file descriptors (stdin, stdout, stderr); it
answers {"pid": N} and, when the child exits, {"exit": code} (Popen's returncode: negative
for a signal). It holds no thread and never computes, so a fork inherits no thread pool.
It stops when its lifeline (its stdin: a pipe from the client) closes, SIGKILLing the
children still running: a client that dies takes its kernels with it.

Client side: `Server.start(python, env, modules)` (a new interpreter), or
`Server.fork(python, env, modules)` for a process that has imported part of what the kernels
import (torch, datasets, xtl: the runner, a worker) and has started no thread and computed
nothing yet: the server is forked from it and imports the rest itself, while the process goes
on. Then
`server.spawn(...)` returns a `Forked` object with the part of `subprocess.Popen` that
jupyter_client's local provisioner uses (pid, poll, wait, send_signal, kill, terminate).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Processes are forked on Linux only: on macOS the system frameworks are not fork-safe once
# initialised (CPython's multiprocessing starts processes by spawn there since 3.8).
FORKS = sys.platform.startswith("linux")
READY = b"ready\n"
# variables that change per kernel (or, PYTEST_CURRENT_TEST, per test phase: pytest rewrites it
# around every test, and no import reads it); everything else the imports may have read
PER_KERNEL_ENV = ("JPY_PARENT_PID", "JPY_SESSION_NAME", "XTL_CELL", "PYTEST_CURRENT_TEST")


def env_key(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """What a server's imports may have read: its environment less the per-kernel variables.
    A kernel whose key differs gets a server of its own."""
    return tuple(sorted((k, v) for k, v in env.items() if k not in PER_KERNEL_ENV))


# ------------------------------------------------------------------ server (its own process)

# What each child's handlers are set to: a fresh interpreter's. A server started as its own
# interpreter (`Server.start`) takes the ones it started with, before any import: a SIGINT
# ignored by whoever started it (a `&` in a non-interactive shell) stays ignored, as it would
# across an exec. A server forked from a process that has set its own (`Server.fork`, from
# `xtl run`) keeps these defaults.
_FRESH_HANDLERS: dict[int, Any] = {signal.SIGINT: signal.default_int_handler,
                                   signal.SIGCHLD: signal.SIG_DFL, signal.SIGTERM: signal.SIG_DFL}


def _child(request: dict[str, Any], fds: list[int], closing: list[socket.socket]) -> None:
    """In the forked child: become `python -m module argv...` in the requested place."""
    import atexit
    import random
    import runpy

    code = 1
    try:
        for sock in closing:
            sock.close()
        os.setsid()  # its own process group, as jupyter_client starts kernels
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        # a fresh interpreter's handlers (SIGPIPE stays ignored, as CPython sets it)
        for sig, handler in _FRESH_HANDLERS.items():
            signal.signal(sig, handler)
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["JPY_PARENT_PID"] = str(os.getppid())  # ipykernel exits when it changes
        os.chdir(request["cwd"])
        sys.path[0] = request["cwd"]  # `python -m` puts the working directory first
        random.seed()  # a fresh interpreter's seeds, not the server's copied state
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        sys.argv = [request["module"], *request["argv"]]
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if not isinstance(stop.code, int) and stop.code is not None:
                print(stop.code, file=sys.stderr)  # as the interpreter does: sys.exit("why")
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    except BaseException:  # noqa: BLE001 - the child must never return into the server loop
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass  # the client went away; the child's exit is still reaped


def preload(modules: Sequence[str]) -> None:
    """Import `modules` into this process, as a kernel would import them."""
    import importlib

    # what ipykernel sets before a kernel imports matplotlib: pyplot reads it at import
    unset = "MPLBACKEND" not in os.environ
    if unset:
        os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        for name in modules:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as err:
                # `from a import b`, b not a module: a.b is tried as well, and may not exist
                if err.name != name or name.rpartition(".")[0] not in sys.modules:
                    raise
    finally:
        if unset:
            del os.environ["MPLBACKEND"]


def _listen(path: str) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    return listener


def _loop(listener: socket.socket, lifeline: int) -> None:
    """Fork a child per request until `lifeline` (a pipe's read end) closes."""
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    sel.register(lifeline, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    while True:
        for key, _ in sel.select(timeout=0.05):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                msg, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
                while not msg.endswith(b"\n"):
                    msg += conn.recv(1 << 16)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    sel.close()
                    os.close(lifeline)
                    _child(json.loads(msg), fds, [listener, conn, *children.values()])
                for fd in fds:
                    os.close(fd)
                children[pid] = conn
                _send(conn, {"pid": pid})
            elif not os.read(lifeline, 4096):  # the client is gone
                for pid in children:  # its group (its subprocesses), and itself in case it
                    for kill in (os.killpg, os.kill):  # has not called setsid() yet
                        try:
                            kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
                for pid in children:  # reaped before the server goes: no zombie is left
                    os.waitpid(pid, 0)
                return
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                conn.close()


def serve(path: str, modules: Sequence[str]) -> None:
    """The server process: import `modules`, say `ready`, serve until stdin closes."""
    _FRESH_HANDLERS.update({sig: signal.getsignal(sig) for sig in _FRESH_HANDLERS})
    preload(modules)
    listener = _listen(path)
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    _loop(listener, sys.stdin.fileno())
    # Its children are reaped and it holds no other state: tearing down the interpreter (torch,
    # transformers) would keep the client waiting in `stop` for a second or more.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# ------------------------------------------------------------------ client (the kernel manager)

class Forked:
    """A forked child as jupyter_client's provisioner sees a Popen."""

    stdin = stdout = stderr = None

    def __init__(self, conn: socket.socket, pid: int) -> None:
        self._conn = conn
        self.pid = pid
        self.returncode: int | None = None
        self._buffer = b""

    def _read(self, timeout: float | None) -> None:
        """Read the exit line if it is there within `timeout` s (0: only what has arrived;
        None: wait for it)."""
        self._conn.settimeout(timeout)
        while self.returncode is None and b"\n" not in self._buffer:
            try:
                chunk = self._conn.recv(4096)
            except (BlockingIOError, TimeoutError):
                return
            if not chunk:  # the server died: the child dies with it (see `serve`)
                self.returncode = -signal.SIGKILL
                break
            self._buffer += chunk
        if self.returncode is None and b"\n" in self._buffer:
            self.returncode = int(json.loads(self._buffer.split(b"\n", 1)[0])["exit"])
        if self.returncode is not None:
            self._conn.close()

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._read(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(f"forked pid {self.pid}", timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class Server:
    """A running fork server, and its lifeline: the write end of the pipe it watches."""

    def __init__(self, pid: int, lifeline: int, folder: str, key: tuple,
                 process: subprocess.Popen[bytes] | None = None) -> None:
        # key: (the interpreter command, the environment key): what the imports depended on
        self.pid, self.lifeline, self.folder, self.key = pid, lifeline, folder, key
        self.process = process  # None: forked from this process (`Server.fork`)
        self.spawned = False  # whether a child was asked for
        self.path = os.path.join(folder, "s")

    @classmethod
    def start(cls, python: Sequence[str], env: dict[str, str], modules: Sequence[str]) -> Server:
        """Start a server with `python` (the interpreter and its options) and wait until its
        imports are done; RuntimeError (with the server's own error output) when it does not
        get there."""
        folder = tempfile.mkdtemp(prefix="xtl-f")  # short: a Unix socket path holds ~107 bytes
        log = open(os.path.join(folder, "log"), "wb")  # noqa: SIM115 - the server owns it
        server_env = {k: v for k, v in env.items() if k not in PER_KERNEL_ENV}
        process = subprocess.Popen(
            [*python, "-m", "xtl.core.forkserver", os.path.join(folder, "s"), *modules],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=server_env,
            start_new_session=True)  # a Ctrl-C in the terminal is for the kernels, not for it
        log.close()
        assert process.stdin is not None and process.stdout is not None
        ready = process.stdout.readline()
        process.stdout.close()
        if ready != READY:
            process.wait()
            error = Path(folder, "log").read_text(errors="replace").strip()
            raise RuntimeError(f"the kernel fork server did not start: {error[-2000:]}")
        return cls(process.pid, process.stdin.fileno(), folder,
                   (tuple(python), env_key(env)), process)

    @classmethod
    def fork(cls, python: Sequence[str], env: dict[str, str], modules: Sequence[str]) -> Server:
        """Fork the server from this process, for kernels started with `python` and `env`
        (this process's environment: what its imports have read); the server then imports
        `modules` itself and serves, without keeping this process waiting: a kernel asked
        for meanwhile is forked once the imports are done.

        Only for a process that has started no thread (RuntimeError otherwise: a fork copies
        the calling thread only, and a lock another one held would stay locked) and has
        computed nothing with torch yet: OpenMP's worker threads do not survive a fork either,
        and a kernel forked after them hangs in its first parallel operation."""
        import threading

        if threading.active_count() > 1:
            raise RuntimeError("this process runs threads: the fork server needs its own")
        folder = tempfile.mkdtemp(prefix="xtl-f")
        listener = _listen(os.path.join(folder, "s"))
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(write_end)
                os.setsid()  # a Ctrl-C in the terminal is for the kernels, not for it
                try:
                    preload(modules)
                except BaseException as err:  # the client reads why when it asks for a kernel
                    Path(folder, "log").write_text(f"{type(err).__name__}: {err}")
                    raise
                _loop(listener, read_end)
                code = 0
            finally:
                os._exit(code)
        os.close(read_end)
        listener.close()
        return cls(pid, write_end, folder, (tuple(python), env_key(env)))

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            return os.waitpid(self.pid, os.WNOHANG) == (0, 0)
        except ChildProcessError:
            return False

    def spawn(self, module: str, argv: Sequence[str], env: dict[str, str], cwd: str,
              stdio: Sequence[int]) -> Forked:
        """Fork `python -m module argv...` with this environment, directory and stdio fds."""
        self.spawned = True
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        request = {"module": module, "argv": list(argv), "env": env, "cwd": cwd}
        data = json.dumps(request).encode() + b"\n"
        received = b""
        try:
            conn.connect(self.path)
            sent = socket.send_fds(conn, [data], list(stdio))
            conn.sendall(data[sent:])
            while b"\n" not in received:
                chunk = conn.recv(4096)
                if not chunk:
                    raise ConnectionResetError("it closed the connection")
                received += chunk
        except OSError as err:
            conn.close()
            why = Path(self.folder, "log")
            raise RuntimeError("the kernel fork server stopped: " + (
                why.read_text(errors="replace").strip()[-2000:] if why.is_file() else str(err)
            )) from None
        line, rest = received.split(b"\n", 1)
        child = Forked(conn, int(json.loads(line)["pid"]))
        child._buffer = rest  # the exit line, if the child was that quick
        return child

    def stop(self) -> None:
        """Close the lifeline; the server SIGKILLs what it still runs and exits."""
        import shutil

        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        elif self.lifeline >= 0:
            os.close(self.lifeline)
            self.lifeline = -1  # stopped: a second stop must not close an fd reused since
            if not self.spawned and self.alive():  # no kernel to stop: no wait for imports
                os.kill(self.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.01)
            if self.alive():
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        shutil.rmtree(self.folder, ignore_errors=True)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
