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
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jupyter_client.manager import AsyncKernelManager


class QuietKernelManager(AsyncKernelManager):
    """AsyncKernelManager that sends no SIGINT while shutting the kernel down."""

    async def _async_interrupt_kernel(self) -> None:
        if self.shutting_down:
            return
        await super()._async_interrupt_kernel()


@contextmanager
def engine_options() -> Iterator[dict[str, Any]]:
    """Keyword arguments for `papermill.execute_notebook` (passed on to nbclient)."""
    from traitlets.config import Config

    if os.name != "posix":  # no Unix domain sockets: keep TCP (and its warning)
        yield {"kernel_manager_class": QuietKernelManager}
        return
    # short: a Unix socket path holds about 107 bytes
    folder = tempfile.mkdtemp(prefix="xtl-k")
    try:
        yield {"kernel_manager_class": QuietKernelManager,
               "config": Config({"KernelManager": {"transport": "ipc",
                                                   "ip": os.path.join(folder, "k")}})}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
