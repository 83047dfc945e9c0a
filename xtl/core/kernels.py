"""The kernel a headless notebook run gets: local sockets, and no interrupt at shutdown.

Two lines ipykernel prints to the terminal read as a security problem and a failure:
- `Kernel is running over TCP without encryption`: ipykernel warns whenever the transport is
  TCP without CurveZMQ keys. The kernel and papermill are on one machine, so the kernel talks
  over Unix domain sockets (`transport = "ipc"`) in a private temporary directory: no port is
  opened at all.
- `KeyboardInterrupt caught in kernel.`: jupyter_client's shutdown first interrupts the kernel
  (SIGINT), which races papermill's last `kernel_info` request. When papermill shuts a kernel
  down every cell has finished (a cell timeout interrupts on its own), so the manager below
  skips that interrupt; a kernel that does not stop is still killed after the shutdown wait.
The kernel process's own stdout/stderr (ipykernel's log, e.g. its traceback when `xtl run` is
stopped with Ctrl-C and the kernel loses its sockets) go to the cell's log.txt, not the terminal.

On Linux the kernel is forked from a server that has already imported the notebooks' modules
(xtl.core.forkserver): one server per process and environment, reused by every later cell.
A server that cannot start is reported in the cell's log, and the kernel starts as usual.
"""

from __future__ import annotations

import ast
import atexit
import functools
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner

from xtl.core import forkserver

FORKS = forkserver.FORKS
_server: forkserver.Server | None = None  # this process's fork server (one environment)
_failed: set[tuple] = set()  # environments whose server did not start: not retried


def _stop_server() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


atexit.register(_stop_server)


@functools.cache
def notebook_imports(folder: Any) -> tuple[str, ...]:
    """The modules the notebooks in `folder` (a path or importlib Traversable) import, for the
    fork server to import once."""
    names: set[str] = set()
    for notebook in folder.iterdir():
        if not notebook.name.endswith(".ipynb"):
            continue
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            try:
                tree = ast.parse("".join(cell["source"]))
            except SyntaxError:  # IPython magics: such a cell's imports are simply not preloaded
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module)  # and its names, which may be modules (or not)
                    names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return tuple(sorted(names))


def _fileno(stream: Any, default: int) -> int:
    return default if stream is None else stream if isinstance(stream, int) else stream.fileno()


def _module_at(cmd: Sequence[str]) -> int | None:
    """Where `-m ipykernel_launcher` stands in a kernel command (None: another kernel)."""
    return next((i for i in range(1, len(cmd) - 1)
                 if list(cmd[i:i + 2]) == ["-m", "ipykernel_launcher"]), None)


def fork_server_here(kernel_name: str, preload: Sequence[str]) -> None:
    """For a process that will run kernels of `kernel_name` (the runner, a worker): fork the
    fork server from this process, so that what it has imported already (torch, datasets,
    xtl) is not imported a second time; the server imports the rest of `preload` while this
    process goes on. Call it before this process starts a thread, computes with torch or
    touches CUDA (see `forkserver.Server.fork`). Where that cannot be done (not Linux, another
    kernel, threads already running) the first kernel starts a server as usual."""
    global _server
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:  # papermill says so when it starts the first kernel
        return
    at = _module_at(spec.argv)
    if not FORKS or at is None or _server is not None:
        return
    import threading

    if threading.active_count() > 1:
        return
    # what jupyter_client gives a Python kernel: our environment, the spec's, without
    # PYTHONEXECUTABLE
    env = {**os.environ, **spec.env}
    env.pop("PYTHONEXECUTABLE", None)
    try:
        _server = forkserver.Server.fork(spec.argv[:at], env, ["ipykernel.kernelapp", *preload])
    except (OSError, RuntimeError) as err:  # the kernels start as usual
        print(f"xtl: no fork server forked from this process: {err}", file=sys.stderr,
              flush=True)


class ForkProvisioner(LocalProvisioner):  # type: ignore[misc]
    """LocalProvisioner whose `python -m ipykernel_launcher` is forked from the fork server."""

    preload: Sequence[str] = ()

    def _forked(self, cmd: list[str], kw: dict[str, Any]) -> forkserver.Forked | None:
        global _server
        at = _module_at(cmd)  # [python, its options..., -m, ipykernel_launcher, options...]
        if not FORKS or at is None:
            return None
        env = dict(kw.get("env") or os.environ)
        key = (tuple(cmd[:at]), forkserver.env_key(env))
        if _server is None or _server.key != key or not _server.alive():
            _stop_server()
            if key in _failed:
                return None
            try:
                _server = forkserver.Server.start(cmd[:at], env,
                                                  ["ipykernel.kernelapp", *self.preload])
            except (OSError, RuntimeError) as err:
                _failed.add(key)
                print(f"xtl: kernels start without the fork server: {err}",
                      file=kw.get("stderr") or sys.stderr, flush=True)
                return None
        try:
            with open(os.devnull, "rb") as stdin:
                return _server.spawn("ipykernel_launcher", cmd[at + 2:], env,
                                     str(kw.get("cwd") or os.getcwd()),
                                     [stdin.fileno(), _fileno(kw.get("stdout"), 1),
                                      _fileno(kw.get("stderr"), 2)])
        except RuntimeError as err:  # a forked server whose imports failed
            _stop_server()
            _failed.add(key)
            print(f"xtl: kernels start without the fork server: {err}",
                  file=kw.get("stderr") or sys.stderr, flush=True)
            return None

    async def launch_kernel(self, cmd: list[str], **kw: Any) -> Any:
        child = self._forked(cmd, kw)
        if child is None:
            return await super().launch_kernel(cmd, **kw)
        self.process = child
        self.pid = self.pgid = child.pid  # the child calls setsid(): its own process group
        self.cwd = kw.get("cwd", Path.cwd())
        return self.connection_info


class QuietKernelManager(AsyncKernelManager):
    """AsyncKernelManager that sends no SIGINT while shutting the kernel down, and forks its
    kernels from the fork server (modules `preload` already imported)."""

    kernel_output: IO[str] | None = None  # the kernel process's stdout/stderr (None: inherited)
    preload: Sequence[str] = ()

    async def _async_pre_start_kernel(self, **kw: Any) -> Any:
        if self.provisioner is None:  # as the base class would, with our provisioner
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
            cls = type("ForkProvisioner", (ForkProvisioner,), {"preload": tuple(self.preload)})
            self.provisioner = cls(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec,
                                   parent=self)
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if self.kernel_output is not None:
            kw.setdefault("stdout", self.kernel_output)
            kw.setdefault("stderr", self.kernel_output)
        await super()._async_launch_kernel(kernel_cmd, **kw)

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:
            return
        await super()._async_interrupt_kernel()


@contextmanager
def engine_options(kernel_output: IO[str] | None = None,
                   preload: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
    """Keyword arguments for `papermill.execute_notebook` (passed on to nbclient);
    `kernel_output`: an open file for the kernel process's own output; `preload`: modules the
    fork server imports for every kernel."""
    from traitlets.config import Config

    manager = type("QuietKernelManager", (QuietKernelManager,),
                   {"kernel_output": kernel_output, "preload": tuple(preload)})

    if os.name != "posix":  # no Unix domain sockets: keep TCP (and its warning)
        yield {"kernel_manager_class": manager}
        return
    # short: a Unix socket path holds about 107 bytes
    folder = tempfile.mkdtemp(prefix="xtl-k")
    try:
        yield {"kernel_manager_class": manager,
               "config": Config({"KernelManager": {"transport": "ipc",
                                                   "ip": os.path.join(folder, "k")}})}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
