"""Executing a plan: each cell is a papermill run of its phase notebook, then an HTML report.

A cell is done when its status says so AND its outputs are complete (metrics.json present, a
stage's best checkpoint verified, a target's metrics covering the requested evaluation), so a
rerun continues where the last one stopped, whatever killed it. A failing cell keeps its partial
notebook and error; the grid goes on and its dependants are skipped, saying why.
"""

from __future__ import annotations

import _thread
import contextlib
import hashlib
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from xtl.core import kernels, tracking
from xtl.core.errors import ConfigError
from xtl.core.faults import fault
from xtl.core.progress import HEADLESS_ENV
from xtl.core.store import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from xtl.evaluation.transferability import TRANSFERABILITY
from xtl.grid import config, executors
from xtl.grid import plan as planning
from xtl.grid.check import require_hub
from xtl.grid.lock import RunLock, _alive
from xtl.grid.rundir import (
    RunDir,
    changed_cells,
    dependants,
    is_done,
    not_needed,
    now,
    outputs_complete,
)
from xtl.model import zoo

# A process that runs cells imports nbformat, which imports jsonschema, which imports its
# optional IRI format checker, rfc3987-syntax, which compiles ~35 Earley grammars at import:
# 1.3 s of CPU in every runner and worker, for a format no notebook schema uses (jsonschema
# issue #1428; BENCHMARKS.md "Per-cell overhead, round 3"). jsonschema skips a checker whose
# module is absent, as a module marked None in sys.modules is.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

# the phase and analysis notebooks: the package `xtl.notebooks` (the repository's notebooks/)
NOTEBOOKS = resources.files("xtl.notebooks")


def output_dir(exp: config.Experiment, out: str | Path | None) -> Path:
    """`--out` wins, then the file's `out`, then runs/<name> (relative to the working dir)."""
    chosen = Path(out or exp["out"] or Path("runs") / exp["name"]).expanduser().resolve()
    if chosen.exists() and not chosen.is_dir():
        raise ConfigError(f"output directory {str(chosen)!r} exists and is not a directory")
    here = Path.cwd().resolve()
    # a run writes cells/, checkpoints/, plan.json ...: never loose into the working directory
    # or one above it (an existing run directory may still be named from inside it)
    if (chosen == here or chosen in here.parents) and not (chosen / "plan.json").is_file():
        raise ConfigError(f"output directory {str(chosen)!r} is the working directory or one "
                          "above it; name a directory of its own (e.g. --out runs/NAME)")
    return chosen


def kernel_name() -> str:
    """A kernelspec bound to THIS interpreter, installed on first use (never a stale 'python3')."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    name = "xtl-" + hashlib.sha256(sys.executable.encode()).hexdigest()[:8]
    with contextlib.suppress(NoSuchKernel):
        if KernelSpecManager().get_kernel_spec(name).argv[0] == sys.executable:
            return name
    from ipykernel.kernelspec import install

    install(kernel_name=name, display_name=f"Python (xtl, {sys.prefix})", prefix=sys.prefix)
    return name


def notebook_parameters(cell: planning.Cell, run_dir: RunDir, plan: planning.Plan,
                        exp: config.Experiment) -> dict[str, Any]:
    """The literal parameters papermill injects (also written to params.yaml in the cell)."""
    ident = cell.identity
    recipe = cell.recipe or {}
    common = {
        "cell_id": cell.id, "model": cell.axes["model"], "seed": ident.get("seed"),
        # every resolved value (the identity leaves out post-v1 keys at their v1 behaviour)
        "hparams": planning.hparams_of(cell).to_dict(),
        "hparam_sources": {"*": recipe.get("sources", {}), **recipe.get("task_sources", {})},
        "init_checkpoint": str(run_dir.checkpoint(cell.parent) / "best") if cell.parent
        else None,
        "cell_dir": str(run_dir.cell(cell.id)), "checkpoint_dir": str(run_dir.checkpoint(cell.id)),
        "mirror": plan.mirror, "raw_dir": plan.raw_dir, "declared_tasks": exp.declared,
    }
    if cell.kind == "stage":
        names = [t if isinstance(t, str) else t["name"] for t in ident["tasks"]]
        return {**common, "tasks": names, "task_hparams": recipe.get("tasks", {})}
    if cell.kind == "retrieval":
        del common["seed"], common["checkpoint_dir"]
        return {**common, "task": cell.axes["target"], "eval_split": cell.evaluation["split"],
                "eval_languages": cell.evaluation["languages"]}
    train_task = ident["train_task"]
    if cell.kind == "transferability":
        del common["seed"], common["checkpoint_dir"]
        estimate = dict(ident["estimate"])
        return {**common, "task": cell.axes["target"],
                "train_task": train_task if isinstance(train_task, str) else train_task["name"],
                "eval_languages": cell.evaluation["languages"],
                "subsample_seed": estimate.pop("subsample_seed") or 0,
                "transferability": {k: estimate[k] for k in TRANSFERABILITY}}
    return {**common, "task": cell.axes["target"],
            "train_task": train_task if isinstance(train_task, str) else train_task["name"],
            "train_size": ident["train_size"], "subsample_seed": ident["subsample_seed"] or 0,
            "eval_split": cell.evaluation["split"], "eval_languages": cell.evaluation["languages"]}


def kernel_preload() -> tuple[str, ...]:
    """What the kernels' fork server imports once per process (core.kernels): the notebooks'
    imports and the presets' modelling code."""
    return kernels.notebook_imports(NOTEBOOKS) + zoo.MODELLING_MODULES


def execute_notebook(name: str, output: Path, parameters: dict[str, Any], kernel: str) -> None:
    """papermill with an explicit kernel; kernel output also goes to log.txt beside it."""
    import papermill as pm

    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output.parent / "params.yaml",
                      yaml.safe_dump(parameters, sort_keys=True, allow_unicode=True))
    os.environ[HEADLESS_ENV] = "1"
    source = NOTEBOOKS / f"{name}.ipynb"  # a file: the package is installed unzipped
    with open(output.parent / "log.txt", "w", encoding="utf-8") as log, \
            kernels.engine_options(log, kernel_preload()) as quiet:
        pm.execute_notebook(str(source), str(output), parameters=parameters,
                            kernel_name=kernel, progress_bar=False, stdout_file=log,
                            stderr_file=log, cwd=str(output.parent), **quiet)


def render_html(notebook: Path, dest: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    from xtl.grid.cell_report import readable

    exporter = HTMLExporter()
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(
        readable(nbformat.read(notebook, as_version=4)),
        resources={"metadata": {"name": notebook.stem, "path": str(notebook.parent)}})
    atomic_write_text(dest, body, fault_point="html_render")


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    seconds: float = 0.0


def prepare(exp_path: str | Path, out: str | Path | None = None, force: bool = False,
            require_local: bool = True) -> tuple[config.Experiment, planning.Plan, RunDir]:
    """Everything that can fail on bad input, before anything runs. `require_local=False`
    (`xtl plan`) plans without the models' weights and data (planning.unavailable lists them)."""
    exp = config.load(exp_path)
    plan = planning.build(exp, require_models=require_local)
    if require_local:
        planning.preflight(plan, exp)
    tracking.check(exp["report_to"])  # accelerate would drop a missing tracker silently
    run_dir = RunDir(output_dir(exp, out))
    changed = changed_cells(run_dir, plan)
    if changed and not force:
        raise ConfigError(
            f"the experiment file changed the parameters of {len(changed)} cell(s) already in "
            f"{run_dir.root}:\n  " + "\n  ".join(changed) + "\nuse --out DIR for a new run "
            "directory, or --force to add the new cells beside the old ones")
    return exp, plan, run_dir


def run(exp_path: str | Path, out: str | Path | None = None, retry_failed: bool = False,
        force: bool = False, log=print, fork_server: bool = False) -> Summary:
    """Plan, then execute every cell that is not done, in dependency order; then report.

    `fork_server`: fork the kernels' server from this process (kernels.fork_server_here),
    which saves the imports it has done already; only for a process that has computed
    nothing with torch so far (the `xtl run` command): a kernel forked from one whose OpenMP
    threads have run hangs."""
    started = time.perf_counter()
    exp, plan, run_dir = prepare(exp_path, out, force)
    require_hub(plan, exp)  # offline without a mirror: one clear error, not a retry per cell
    run_dir.root.mkdir(parents=True, exist_ok=True)
    # how many processes a cell trains with reaches the kernels through the environment
    os.environ["XTL_GPUS_PER_CELL"] = str(exp["gpus_per_cell"])
    os.environ["XTL_DISTRIBUTED"] = str(exp["distributed"])
    os.environ[HEADLESS_ENV] = "1"  # as execute_notebook sets it: the server's environment
    tracking.export(exp["report_to"], run_dir.root, exp["name"])
    kernel = kernel_name()
    if fork_server:  # before the run lock's heartbeat thread and the executor's GPU query
        kernels.fork_server_here(kernel, kernel_preload())
    # a heartbeat that finds the lock taken stops the cell running here (its kernel included)
    with RunLock(run_dir.root, log, on_lost=_thread.interrupt_main) as held:
        run_dir.guard = held.check
        atomic_write_bytes(run_dir.root / "experiment.yaml", Path(exp_path).read_bytes())
        atomic_write_json(run_dir.root / "plan.json", plan.to_json())
        by_id, number = plan.by_id(), _numbered(plan)

        def run_here(cell_id: str) -> None:
            execute_cell(run_dir, by_id[cell_id], plan, exp, kernel, log, number[cell_id])

        executor = executors.make(exp["executor"], str(run_dir.root), exp["gpus_per_cell"],
                                  executors.forwarded_env(), run_here, run_cell,
                                  kernel_preload())
        interrupted = False
        try:
            summary = _run_cells(run_dir, plan, exp, executor, retry_failed, log)
        except KeyboardInterrupt:
            if held.lost:  # the heartbeat stopped us: say why, write nothing more
                held.check()
            interrupted = True
            raise
        finally:
            executor.close()
            if interrupted:
                mark_interrupted(run_dir, plan)
        held.check()
        report(run_dir.root, kernel, log)
    summary.seconds = time.perf_counter() - started
    log(f"xtl run: {len(summary.done)} ran, {len(summary.skipped)} already done, "
        f"{len(summary.failed)} failed, {len(summary.blocked)} skipped in {summary.seconds:.1f}s;"
        f" open {run_dir.root / 'index.html'}")
    return summary


def _run_cells(run_dir: RunDir, plan: planning.Plan, exp: config.Experiment,
               executor: executors.Executor, retry_failed: bool, log, poll: float = 0.5
               ) -> Summary:
    """Submit each cell once its parent is done, as many at once as the executor takes."""
    summary, bad, waiting, number = Summary(), set(), [], _numbered(plan)
    running: dict[str, executors.Job] = {}
    for cell in plan.cells:
        job = _still_running(run_dir, cell, executor)
        if job is not None:  # submitted by an earlier `xtl run` that died: wait, never twice
            running[cell.id] = job
            log(f"{number[cell.id]}: still running as {job.where}; waiting for it")
            continue
        if is_done(run_dir, cell) or not_needed(run_dir, plan, cell):
            summary.skipped.append(cell.id)
            log(f"{number[cell.id]}: done already, skipped")
            continue
        status = run_dir.status(cell.id)
        if status.get("state") == "failed" and not retry_failed:
            bad.add(cell.id)
            summary.failed.append(cell.id)
            log(f"{number[cell.id]}: failed earlier ({status.get('error')}); --retry-failed "
                "reruns it")
            continue
        waiting.append(cell)
    while waiting or running:
        if run_dir.guard is not None:
            run_dir.guard()  # a paused run that lost its lock stops before submitting more
        unfinished = {c.id for c in waiting} | set(running)
        ready = []
        for cell in list(waiting):
            if cell.parent in bad:
                waiting.remove(cell)
                bad.add(cell.id)
                summary.blocked.append(cell.id)
                run_dir.set_status(cell.id, state="skipped", label=cell.label,
                                   reason=f"depends on {cell.parent}, which did not finish")
                log(f"{number[cell.id]}: skipped (it depends on {cell.parent}, which did not "
                    "finish)")
            elif cell.parent not in unfinished:
                ready.append(cell)
        free = len(ready) if executor.capacity is None else executor.capacity - len(running)
        ready = ready[:max(free, 0)]
        if ready:
            for cell in ready:
                waiting.remove(cell)
                if executor.capacity != 1:
                    log(f"{number[cell.id]}: submitted")
            for cell, job in zip(ready, executor.submit([c.id for c in ready]), strict=True):
                running[cell.id] = job
                if getattr(job, "record", None):  # what a later run needs to find the job
                    atomic_write_json(run_dir.cell(cell.id) / "job.json", job.record)
        stopped = [cid for cid, job in running.items() if job.finished()]
        for cid in stopped:
            # a cell run in this process said how it went; a worker's outcome is said here
            if _outcome(run_dir, plan.by_id()[cid], running.pop(cid), log, number[cid],
                        executor.capacity != 1):
                summary.done.append(cid)
                apply_retention(run_dir, plan, exp["keep_checkpoints"], log)
            else:
                bad.add(cid)
                summary.failed.append(cid)
        if running and not stopped and not ready:
            time.sleep(poll)
    return summary


def _still_running(run_dir: RunDir, cell: planning.Cell, executor: executors.Executor
                   ) -> executors.Job | None:
    """The live job of a cell an earlier driver submitted (SLURM jobs outlive their driver)."""
    path = run_dir.cell(cell.id) / "job.json"
    attach = getattr(executor, "attach", None)
    if attach is None or not path.is_file() or run_dir.status(cell.id).get("state") in (
            "done", "failed"):
        return None
    try:
        record = read_json(path)
        return attach(record) if isinstance(record, dict) else None
    except (ValueError, KeyError, TypeError):  # damaged or foreign job.json: not running
        return None


def _numbered(plan: planning.Plan) -> dict[str, str]:
    return {c.id: f"[{i}/{len(plan.cells)}] {c.kind:<6} {c.label}"
            for i, c in enumerate(plan.cells, 1)}


def _outcome(run_dir: RunDir, cell: planning.Cell, job: executors.Job, log, prefix: str,
             say: bool = False) -> bool:
    """Read a stopped job's result from the cell's status; a silent death becomes `failed`.
    `say`: log the outcome (a worker's own log lines went to its worker.log)."""
    status = run_dir.status(cell.id)
    if status.get("state") in ("done", "failed"):
        ok = status["state"] == "done" and is_done(run_dir, cell)
        if say and ok:
            log(f"{prefix}: done in {status.get('seconds') or 0:.1f}s on {job.where}")
        elif say:  # the cell's folder holds its log (and a local worker's worker.log)
            why = status.get("error") or ("it finished without its metrics.json"
                                          if status["state"] == "done" else "no error recorded")
            log(f"{prefix}: failed on {job.where}: {why}; see {run_dir.cell(cell.id)}")
        return ok
    why = job.died() or "the worker stopped without finishing the cell"
    run_dir.set_status(cell.id, state="failed", label=cell.label, where=job.where,
                       started=status.get("started"), finished=now(),
                       error=f"worker died: {why}")
    log(f"{prefix}: failed on {job.where}: worker died: {why}")
    return False


def execute_cell(run_dir: RunDir, cell: planning.Cell, plan: planning.Plan,
                 exp: config.Experiment, kernel: str, log, prefix: str) -> bool:
    """Run one cell; a failure keeps the partial notebook and the error, and returns False."""
    from papermill.exceptions import PapermillExecutionError

    cell_dir = run_dir.cell(cell.id)
    started, t0 = now(), time.perf_counter()
    where = os.environ.get("XTL_WHERE") or f"local ({socket.gethostname()})"
    os.environ["XTL_CELL"] = cell.id  # per-cell fault points (core.faults), workers and kernels
    run_dir.set_status(cell.id, state="running", label=cell.label, started=started, where=where)
    fault("cell_start")
    log(f"{prefix}: running ...")
    notebook = cell_dir / "notebook.ipynb"
    error = None
    try:
        execute_notebook(cell.notebook, notebook,
                         notebook_parameters(cell, run_dir, plan, exp), kernel)
    except KeyboardInterrupt:
        _interrupted(run_dir, cell, started, where)
        raise
    except PapermillExecutionError as err:
        if err.ename == "KeyboardInterrupt":  # Ctrl-C reached the kernel first
            _interrupted(run_dir, cell, started, where)
            raise KeyboardInterrupt from None
        error = f"{err.ename}: {err.evalue} (notebook cell {err.exec_count})"
    except Exception as err:  # a dead kernel or a papermill error: the grid goes on
        error = f"{type(err).__name__}: {err}"
    fault("after_notebook")
    if notebook.is_file():
        render_html(notebook, cell_dir / "report.html")
    seconds = round(time.perf_counter() - t0, 2)
    if error is None and not outputs_complete(run_dir, cell):
        error = "the notebook finished without writing complete metrics.json"
    state = "failed" if error else "done"
    run_dir.set_status(cell.id, state=state, label=cell.label, started=started,
                       finished=now(), seconds=seconds, error=error, where=where)
    log(f"{prefix}: {state} in {seconds:.1f}s" + (f": {error}" if error else ""))
    return error is None


def _interrupted(run_dir: RunDir, cell: planning.Cell, started: str, where: str) -> None:
    """Ctrl-C: the cell is left `interrupted` (pending for the next run), never `running`."""
    run_dir.set_status(cell.id, state="interrupted", label=cell.label, started=started,
                       finished=now(), where=where)


def mark_interrupted(run_dir: RunDir, plan: planning.Plan) -> None:
    """After Ctrl-C: every cell this host's run left `running` (its process is this one or
    gone) becomes `interrupted`, so `xtl status` shows none running and a rerun resumes it."""

    host = socket.gethostname()
    for cell in plan.cells:
        status = run_dir.status(cell.id)
        pid = status.get("pid")
        if status.get("state") != "running" or status.get("host") != host:
            continue
        if pid == os.getpid() or not isinstance(pid, int) or not _alive(pid):
            _interrupted(run_dir, cell, status.get("started", ""), status.get("where", ""))


def apply_retention(run_dir: RunDir, plan: planning.Plan, keep: str, log) -> None:
    """keep_checkpoints: 'all' keeps everything; 'best' drops `last` (and resume state) of done
    cells; 'none' also drops `best` once every dependant of the cell is done."""
    if keep == "all":
        return
    for cell in plan.cells:
        root = run_dir.checkpoint(cell.id)
        if not root.is_dir() or run_dir.status(cell.id).get("state") != "done":
            continue
        for extra in ("last", "resume"):
            shutil.rmtree(root / extra, ignore_errors=True)
        deps = dependants(plan, cell.id)
        if keep == "none" and all(is_done(run_dir, d) for d in deps):
            shutil.rmtree(root, ignore_errors=True)
            log(f"removed checkpoints of {cell.id} (keep_checkpoints: none)")


def report(root: Path, kernel: str | None = None, log=print) -> None:
    """Re-render the analysis notebook and the index page from what is in the run directory."""
    from xtl.grid.index import write_index  # lazy: pandas

    analysis = root / "analysis"
    try:
        execute_notebook("analysis", analysis / "analysis.ipynb", {"run_dir": str(root)},
                         kernel or kernel_name())
        render_html(analysis / "analysis.ipynb", analysis / "report.html")
    except Exception as err:  # the index still lists every cell
        log(f"analysis report failed: {type(err).__name__}: {err}")
    write_index(root)


def run_cell(root: str, cell_id: str, env: dict[str, str] | None = None) -> bool:
    """Execute one cell of the plan in `root` (what `python -m xtl.grid.worker`, a Ray task or a
    SLURM job runs); True when it finished with complete outputs."""
    os.environ.update(env or {})
    os.environ[HEADLESS_ENV] = "1"  # set before the fork server, as execute_notebook sets it
    kernels.fork_server_here(kernel := kernel_name(), kernel_preload())  # before any thread
    plan = planning.Plan.from_json(read_json(Path(root) / "plan.json"))
    cell = plan.by_id().get(cell_id)
    if cell is None:
        raise SystemExit(f"xtl.grid.worker: no cell {cell_id!r} in {root}/plan.json")
    exp = config.load(Path(root) / "experiment.yaml")
    return execute_cell(RunDir(Path(root)), cell, plan, exp, kernel, print,
                        f"{cell.kind} {cell.label}")
