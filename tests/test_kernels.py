"""Headless kernels (xtl.core.kernels): no TCP-without-encryption warning, no interrupt at
shutdown."""

from __future__ import annotations

import asyncio
import os

import nbformat
import pytest

from xtl.core import kernels
from xtl.grid import run


def test_shutdown_sends_no_interrupt_but_a_timeout_still_can():
    km = kernels.QuietKernelManager()
    km.shutting_down = True
    asyncio.run(km._async_interrupt_kernel())  # a no-op: never reaches the (absent) kernel
    km.shutting_down = False
    with pytest.raises(RuntimeError, match="No kernel is running"):
        asyncio.run(km._async_interrupt_kernel())  # otherwise jupyter_client's own interrupt


def test_options_use_local_sockets_in_a_private_folder():
    with kernels.engine_options() as options:
        ip = options["config"]["KernelManager"]["ip"]
        assert options["config"]["KernelManager"]["transport"] == "ipc"
        assert len(ip) + 3 < 100  # <ip>-<port number> fits a Unix socket path
        folder = ip.rsplit("/", 1)[0]
    assert issubclass(options["kernel_manager_class"], kernels.QuietKernelManager)
    assert not os.path.exists(folder)


def test_a_headless_run_prints_no_kernel_warnings(tmp_path, capfd):
    import papermill as pm

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    nbformat.write(nb, tmp_path / "in.ipynb")
    with kernels.engine_options() as quiet:
        out = pm.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                                  kernel_name=run.kernel_name(), progress_bar=False,
                                  execution_timeout=120, **quiet)
    assert out.cells[0].outputs[0]["text"] == "42\n"
    err = capfd.readouterr().err  # the kernel process writes its log to this process's stderr
    assert "without encryption" not in err and "KeyboardInterrupt" not in err
    assert "IPKernelApp" not in err
