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
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from jupyter_client.manager import AsyncKernelManager


class QuietKernelManager(AsyncKernelManager):
    """AsyncKernelManager that sends no SIGINT while shutting the kernel down."""

    kernel_output: IO[str] | None = None  # the kernel process's stdout/stderr (None: inherited)

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
def engine_options(kernel_output: IO[str] | None = None) -> Iterator[dict[str, Any]]:
    """Keyword arguments for `papermill.execute_notebook` (passed on to nbclient);
    `kernel_output`: an open file for the kernel process's own output."""
    from traitlets.config import Config

    manager = type("QuietKernelManager", (QuietKernelManager,), {"kernel_output": kernel_output})

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
