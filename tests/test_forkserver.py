"""The kernel fork server (xtl.core.forkserver) and the kernels papermill gets from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from xtl.core import forkserver, kernels
from xtl.grid import run

pytestmark = pytest.mark.skipif(not kernels.FORKS, reason="kernels are forked on Linux only")

PROBE = """
import json, os, signal, sys
json.dump({"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0),
           "cwd": os.getcwd(), "argv": sys.argv[1:], "colour": os.environ.get("COLOUR"),
           "jpy": os.environ.get("JPY_PARENT_PID"), "name": __name__,
           "signals": [str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGPIPE,
                                                          signal.SIGTERM, signal.SIGCHLD)],
           "preloaded": "xtl.core.store" in sys.modules},
          open("probe.json", "w"))
print("to stdout")
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture
def server(tmp_path: Path):
    srv = forkserver.Server.start([sys.executable], dict(os.environ), ["xtl.core.store"])
    yield srv
    srv.stop()


def _spawn(srv: forkserver.Server, where: Path, module: str, *argv: str,
           **env: str) -> forkserver.Forked:
    out = open(where / "out.txt", "wb")
    with open(os.devnull, "rb") as stdin:
        child = srv.spawn(module, argv, {**os.environ, **env}, str(where),
                          [stdin.fileno(), out.fileno(), out.fileno()])
    out.close()
    return child


def test_a_forked_child_is_python_m_module_in_its_own_place(server, tmp_path: Path) -> None:
    (tmp_path / "probe_mod.py").write_text(PROBE)
    child = _spawn(server, tmp_path, "probe_mod", "3", "x", COLOUR="green")
    assert child.wait(timeout=60) == 3
    seen = json.loads((tmp_path / "probe.json").read_text())
    assert seen["pid"] == child.pid and seen["pgid"] == child.pid  # its own process group
    assert seen["ppid"] == server.process.pid == int(seen["jpy"])  # ipykernel's parent check
    assert seen["cwd"] == str(tmp_path) and seen["argv"] == ["3", "x"]
    assert seen["colour"] == "green" and seen["name"] == "__main__"
    assert seen["preloaded"]  # imported by the server before the fork
    fresh = subprocess.run([sys.executable, "-c", "import signal; print([str(signal.getsignal(s))"
                            " for s in (signal.SIGINT, signal.SIGPIPE, signal.SIGTERM, "
                            "signal.SIGCHLD)])"], capture_output=True, text=True, check=True)
    assert str(seen["signals"]) == fresh.stdout.strip()  # a fresh interpreter's handlers
    assert (tmp_path / "out.txt").read_text() == "to stdout\n"


def test_an_ignored_sigint_stays_ignored_as_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """A process started with `&` in a non-interactive shell has SIGINT ignored; a kernel it
    execs inherits that, and so must one forked by a server it started."""
    (tmp_path / "probe_mod.py").write_text(PROBE)
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        srv = forkserver.Server.start([sys.executable], dict(os.environ), ["xtl.core.store"])
    finally:
        signal.signal(signal.SIGINT, before)
    try:
        assert _spawn(srv, tmp_path, "probe_mod", "0").wait(timeout=60) == 0
    finally:
        srv.stop()
    seen = json.loads((tmp_path / "probe.json").read_text())
    assert seen["signals"][0] == str(signal.SIG_IGN)  # not default_int_handler


def test_an_exit_with_a_message_prints_it_and_exits_1(server, tmp_path: Path) -> None:
    (tmp_path / "quits.py").write_text("import sys\nsys.exit('no such grid')\n")
    child = _spawn(server, tmp_path, "quits")
    fresh = subprocess.run([sys.executable, "-m", "quits"], cwd=tmp_path, capture_output=True,
                           text=True)
    assert child.wait(timeout=60) == fresh.returncode == 1
    assert (tmp_path / "out.txt").read_text() == fresh.stderr == "no such grid\n"


def test_signals_reach_the_child_and_its_exit_code_says_which(server, tmp_path: Path) -> None:
    (tmp_path / "sleeper.py").write_text("import time\ntime.sleep(120)\n")
    child = _spawn(server, tmp_path, "sleeper")
    assert child.poll() is None
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM and child.poll() == -signal.SIGTERM


def test_a_stopped_server_takes_its_children_with_it(server, tmp_path: Path) -> None:
    (tmp_path / "sleeper.py").write_text("import time\ntime.sleep(120)\n")
    child = _spawn(server, tmp_path, "sleeper")
    server.stop()
    assert child.wait(timeout=30) == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):
        os.kill(child.pid, 0)


def test_a_server_that_cannot_import_says_why() -> None:
    with pytest.raises(RuntimeError, match="no_such_module_xyz"):
        forkserver.Server.start([sys.executable], dict(os.environ), ["no_such_module_xyz"])


def test_the_per_kernel_variables_do_not_change_the_environment_key() -> None:
    env = {"A": "1", "XTL_CELL": "c1", "JPY_PARENT_PID": "5", "PYTEST_CURRENT_TEST": "t (setup)"}
    assert forkserver.env_key(env) == forkserver.env_key({**env, "XTL_CELL": "c2"})
    # pytest rewrites it around every test: runs in one test process share their server
    assert forkserver.env_key(env) == forkserver.env_key({**env, "PYTEST_CURRENT_TEST": "u"})
    assert forkserver.env_key(env) != forkserver.env_key({**env, "A": "2"})


CELL = """import os, sys
print(json.dumps({"ppid": os.getppid(), "cell": os.environ.get("XTL_CELL"),
                  "torch_before": torch_before}))"""


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import sys\ntorch_before = 'torch' in sys.modules"),
                nbformat.v4.new_code_cell("import json\n" + CELL)]
    nbformat.write(nb, path)
    return path


def _run(source: Path, out: Path, cell: str, preload: tuple[str, ...]) -> dict:
    os.environ["XTL_CELL"] = cell
    with open(out.with_suffix(".log"), "w") as log, \
            kernels.engine_options(log, preload) as options:
        pm.execute_notebook(str(source), str(out), kernel_name=run.kernel_name(),
                            progress_bar=False, cwd=str(out.parent), **options)
    text = nbformat.read(out, as_version=4).cells[1].outputs[0]["text"]
    return json.loads(text)


@pytest.mark.slow
def test_papermill_kernels_come_from_one_server_with_the_imports_done(tmp_path: Path,
                                                                      monkeypatch) -> None:
    monkeypatch.setenv("XTL_CELL", "")
    source = _notebook(tmp_path / "probe.ipynb")
    first = _run(source, tmp_path / "a.ipynb", "cell-a", ("torch",))
    second = _run(source, tmp_path / "b.ipynb", "cell-b", ("torch",))
    assert first["torch_before"] and second["torch_before"]  # imported before the first cell
    assert first["ppid"] == second["ppid"] != os.getpid()  # one server forked both
    assert (first["cell"], second["cell"]) == ("cell-a", "cell-b")
    kernels._stop_server()


@pytest.mark.slow
def test_a_server_that_fails_leaves_kernels_starting_as_usual(tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.setenv("XTL_TEST_FORK_FAILS", str(time.time()))  # a server of its own
    source = _notebook(tmp_path / "probe.ipynb")
    seen = _run(source, tmp_path / "a.ipynb", "cell-a", ("no_such_module_xyz",))
    assert seen["ppid"] == os.getpid() and not seen["torch_before"]
    log = (tmp_path / "a.log").read_text()
    assert "kernels start without the fork server" in log and "no_such_module_xyz" in log


WORKER = """
import json, os, sys
from pathlib import Path
import nbformat, papermill as pm
from xtl.core import kernels
from xtl.grid import run

preload = ("torch",)
kernels.fork_server_here(run.kernel_name(), preload)
server = kernels._server
out = Path(sys.argv[1])
with open(out / "log.txt", "w") as log, kernels.engine_options(log, preload) as options:
    pm.execute_notebook(sys.argv[2], str(out / "run.ipynb"), kernel_name=run.kernel_name(),
                        progress_bar=False, cwd=str(out), **options)
seen = json.loads(nbformat.read(out / "run.ipynb", as_version=4).cells[1].outputs[0]["text"])
print(json.dumps({"server": server and server.pid, "forked_here": server and
                  server.process is None, "same": kernels._server is server,
                  "kernel_parent": seen["ppid"], "torch_before": seen["torch_before"]}))
"""


@pytest.mark.slow
def test_a_worker_forks_its_server_from_itself_and_its_kernels_from_that(tmp_path: Path) -> None:
    source = _notebook(tmp_path / "probe.ipynb")
    done = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["forked_here"] and seen["same"]  # no second server was started
    assert seen["kernel_parent"] == seen["server"] and seen["torch_before"]


def test_wait_with_a_timeout_gives_up_as_popen_does(server, tmp_path: Path) -> None:
    (tmp_path / "sleeper.py").write_text("import time\ntime.sleep(120)\n")
    child = _spawn(server, tmp_path, "sleeper")
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.2)
    child.kill()
    assert child.wait(timeout=30) == -signal.SIGKILL


@pytest.mark.slow
def test_where_kernels_are_not_forked_they_start_as_before(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(kernels, "FORKS", False)  # macOS, Windows
    monkeypatch.setenv("XTL_CELL", "")
    seen = _run(_notebook(tmp_path / "probe.ipynb"), tmp_path / "a.ipynb", "cell-a", ("torch",))
    assert seen["ppid"] == os.getpid() and not seen["torch_before"]


# records every call into torch.cuda (in `calls`) from here on
SPY_ON_CUDA = """
import torch

calls = []


def spy(name, real):
    def called(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)
    return called


for name in ("is_available", "device_count", "init", "_lazy_init", "current_device",
             "is_bf16_supported", "get_device_capability", "get_device_properties"):
    setattr(torch.cuda, name, spy(name, getattr(torch.cuda, name)))
"""

CUDA_SPY = "import json\n" + SPY_ON_CUDA + """
from xtl.core import forkserver  # noqa: E402
from xtl.grid import run  # noqa: E402

forkserver.preload(["ipykernel.kernelapp", "xtl.grid.run", *run.kernel_preload()])
after_imports = list(calls)
torch.cuda.is_available()  # the spy sees a call
print(json.dumps([after_imports, calls]))
"""


def test_the_servers_imports_leave_cuda_alone() -> None:
    """A process forked after CUDA is initialised cannot use CUDA: what the kernel and worker
    fork servers import must not call into torch.cuda (on a GPU machine the children do)."""
    done = subprocess.run([sys.executable, "-c", CUDA_SPY], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [[], ["is_available"]]


FORKED = """
import json, os, sys
from pathlib import Path
from xtl.core import forkserver

here = sys.argv[1]
Path(here, "slow_mod.py").write_text("import time\\ntime.sleep(120)\\n")
sys.path.insert(0, here)
slow = forkserver.Server.fork([sys.executable], dict(os.environ), ["slow_mod"])
slow.stop()  # no kernel was asked for: it does not wait for the imports
gone = not slow.alive()
bad = forkserver.Server.fork([sys.executable], dict(os.environ), ["no_such_module_xyz"])
try:
    bad.spawn("probe", [], dict(os.environ), here, [0, 1, 2])
    why = None
except RuntimeError as err:
    why = str(err)
bad.stop()
print(json.dumps({"gone": gone, "why": why}))
"""


def test_a_server_forked_from_a_process_imports_after_the_fork(tmp_path: Path) -> None:
    """Its imports run in the server, not in the process that forked it: stopping a server
    that forked no kernel does not wait for them (else: 120 s, past the timeout), and one
    whose imports failed says why when a kernel is asked for."""
    done = subprocess.run([sys.executable, "-c", FORKED, str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["gone"]
    assert seen["why"].startswith("the kernel fork server stopped: ModuleNotFoundError")
    assert "no_such_module_xyz" in seen["why"]


FORKED_HANDLERS = """
import os, signal, sys
from xtl.core import forkserver

signal.signal(signal.SIGINT, lambda *_: None)  # as `xtl run` sets its own
signal.signal(signal.SIGTERM, signal.SIG_IGN)
server = forkserver.Server.fork([sys.executable], dict(os.environ), ["xtl.core.store"])
child = server.spawn("probe_mod", ["0"], dict(os.environ), sys.argv[1], [0, 1, 2])
assert child.wait(timeout=60) == 0
server.stop()
"""


def test_a_server_forked_from_xtl_run_gives_its_children_fresh_handlers(tmp_path: Path) -> None:
    """Not the handlers of the process it was forked from."""
    (tmp_path / "probe_mod.py").write_text(PROBE)
    done = subprocess.run([sys.executable, "-c", FORKED_HANDLERS, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads((tmp_path / "probe.json").read_text())
    assert seen["signals"] == [str(signal.default_int_handler), str(signal.SIG_IGN),
                               str(signal.SIG_DFL), str(signal.SIG_DFL)]


AT_FORK = "import json, sys, threading\n" + SPY_ON_CUDA + """
from xtl.core import kernels  # noqa: E402
from xtl.grid import run  # noqa: E402


def at_fork(kernel, preload):
    print(json.dumps({"cuda": calls, "threads": threading.active_count()}))
    raise SystemExit(0)


kernels.fork_server_here = at_fork
run.run(sys.argv[1], sys.argv[2], log=lambda line: None, fork_server=True)
"""


@pytest.mark.parametrize("grid", ["fault_grid", "demo"])
def test_the_runner_forks_its_kernel_server_before_threads_and_cuda(tmp_path: Path, tiny_dir,
                                                                    grid: str) -> None:
    """`xtl run` forks its kernels' server from itself (kernels.fork_server_here): by then it
    must have started no thread and not touched torch.cuda (a forked child could not use
    CUDA), whatever the grid."""
    exp = (Path(__file__).parent / "fault_grid.yaml" if grid == "fault_grid"
           else Path(__file__).parents[1] / "parameters" / "demo.yaml")
    done = subprocess.run([sys.executable, "-c", AT_FORK, str(exp), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["cuda"] == [] and seen["threads"] == 1


def test_only_the_xtl_command_forks_its_kernel_server_from_itself() -> None:
    """A test or a notebook calling `cli.main` may have run torch's OpenMP threads already."""
    from xtl import cli

    assert not cli._own_process()  # pytest is this process's program
    script = "import sys\nfrom xtl.cli import main, _own_process\nprint(_own_process())\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)  # what the `xtl` console script does
    assert done.stdout.strip() == "True", done.stderr[-2000:]


BROKEN_FORK = WORKER.replace('preload = ("torch",)', 'preload = ("no_such_module_xyz",)')


@pytest.mark.slow
def test_a_forked_server_whose_imports_fail_leaves_kernels_starting_as_usual(
        tmp_path: Path) -> None:
    source = _notebook(tmp_path / "probe.ipynb")
    done = subprocess.run([sys.executable, "-c", BROKEN_FORK, str(tmp_path), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["forked_here"] and not seen["same"]  # it was given up
    assert seen["kernel_parent"] != seen["server"] and not seen["torch_before"]
    log = (tmp_path / "log.txt").read_text()
    assert "kernels start without the fork server" in log and "no_such_module_xyz" in log
