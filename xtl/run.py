"""Executing a plan: each cell is a papermill run of its phase notebook, then an HTML report.

A cell is done when its status says so and its outputs are complete (metrics.json present, a
stage's best checkpoint verified, a target's metrics covering the requested evaluation); done
cells are skipped, so a rerun continues where the last one stopped.
"""

from __future__ import annotations

import hashlib
import html
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

import xtl
from xtl import config
from xtl import plan as planning
from xtl.errors import ConfigError, ModelError
from xtl.models import verify_checkpoint
from xtl.progress import HEADLESS_ENV
from xtl.store import atomic_write_json, atomic_write_text, read_json

NOTEBOOKS = Path(xtl.__file__).resolve().parents[1] / "notebooks"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def output_dir(exp: config.Experiment, out: str | Path | None) -> Path:
    """`--out` wins, then the file's `out`, then runs/<name> (relative to the working dir)."""
    chosen = Path(out or exp["out"] or Path("runs") / exp["name"]).expanduser().resolve()
    if chosen.exists() and not chosen.is_dir():
        raise ConfigError(f"output directory {str(chosen)!r} exists and is not a directory")
    return chosen


def kernel_name() -> str:
    """A kernelspec bound to THIS interpreter, installed on first use (never a stale 'python3')."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    name = "xtl-" + hashlib.sha256(sys.executable.encode()).hexdigest()[:8]
    try:
        if KernelSpecManager().get_kernel_spec(name).argv[0] == sys.executable:
            return name
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=name, display_name=f"Python (xtl, {sys.prefix})", prefix=sys.prefix)
    return name


@dataclass
class RunDir:
    root: Path

    def cell(self, cell_id: str) -> Path:
        return self.root / "cells" / cell_id

    def checkpoint(self, cell_id: str) -> Path:
        return self.root / "checkpoints" / cell_id

    def status(self, cell_id: str) -> dict:
        path = self.cell(cell_id) / "status.json"
        return read_json(path) if path.is_file() else {"state": "pending"}

    def set_status(self, cell_id: str, **status: Any) -> None:
        atomic_write_json(self.cell(cell_id) / "status.json",
                          {"cell": cell_id, "host": socket.gethostname(), "pid": os.getpid(),
                           **status})


def is_done(run_dir: RunDir, cell: planning.Cell) -> bool:
    """Done = status done AND complete outputs (never trust the status file alone)."""
    if run_dir.status(cell.id).get("state") != "done":
        return False
    metrics = run_dir.cell(cell.id) / "metrics.json"
    if not metrics.is_file():
        return False
    if cell.kind == "stage":
        try:
            return verify_checkpoint(run_dir.checkpoint(cell.id) / "best").get("cell") == cell.id
        except ModelError:
            return False
    have = {(r["language"], r["split"]) for r in read_json(metrics)["records"]}
    want = {(lang, cell.evaluation["split"]) for lang in cell.evaluation["languages"]}
    return want <= have


def notebook_parameters(cell: planning.Cell, run_dir: RunDir, plan: planning.Plan,
                        exp: config.Experiment) -> dict[str, Any]:
    """The literal parameters papermill injects (also written to params.yaml in the cell)."""
    ident = cell.identity
    common = {
        "cell_id": cell.id, "model": cell.axes["model"], "seed": ident["seed"],
        "hparams": ident["hparams"],
        "init_checkpoint": str(run_dir.checkpoint(cell.parent) / "best") if cell.parent
        else None,
        "cell_dir": str(run_dir.cell(cell.id)), "checkpoint_dir": str(run_dir.checkpoint(cell.id)),
        "mirror": plan.mirror, "declared_tasks": exp.declared,
    }
    if cell.kind == "stage":
        names = [t if isinstance(t, str) else t["name"] for t in ident["tasks"]]
        return {**common, "tasks": names}
    train_task = ident["train_task"]
    return {**common, "task": cell.axes["target"],
            "train_task": train_task if isinstance(train_task, str) else train_task["name"],
            "train_size": ident["train_size"], "subsample_seed": ident["subsample_seed"] or 0,
            "eval_split": cell.evaluation["split"], "eval_languages": cell.evaluation["languages"]}


def execute_notebook(name: str, output: Path, parameters: dict[str, Any], kernel: str) -> None:
    """papermill with an explicit kernel; kernel output also goes to log.txt beside it."""
    import papermill as pm

    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output.parent / "params.yaml",
                      yaml.safe_dump(parameters, sort_keys=True, allow_unicode=True))
    os.environ[HEADLESS_ENV] = "1"
    with open(output.parent / "log.txt", "w", encoding="utf-8") as log:
        pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(output), parameters=parameters,
                            kernel_name=kernel, progress_bar=False, stdout_file=log,
                            stderr_file=log, cwd=str(output.parent))


def render_html(notebook: Path, dest: Path) -> None:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_filename(str(notebook))
    atomic_write_text(dest, body)


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run(exp_path: str | Path, out: str | Path | None = None, log=print) -> Summary:
    """Plan, then execute every cell that is not done, in dependency order; then report."""
    started = time.perf_counter()
    exp = config.load(exp_path)
    plan = planning.build(exp)
    planning.preflight(plan, exp)
    run_dir = RunDir(output_dir(exp, out))
    run_dir.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir.root / "experiment.yaml", Path(exp_path).read_text())
    atomic_write_json(run_dir.root / "plan.json", plan.to_json())
    kernel = kernel_name()
    summary, bad = Summary(), set()
    log(f"xtl run: {len(plan.cells)} cells -> {run_dir.root}")
    for i, cell in enumerate(plan.cells, 1):
        prefix = f"[{i}/{len(plan.cells)}] {cell.kind:<6} {cell.label}"
        if is_done(run_dir, cell):
            summary.skipped.append(cell.id)
            log(f"{prefix}: done already, skipped")
            continue
        if cell.parent in bad:
            bad.add(cell.id)
            summary.blocked.append(cell.id)
            run_dir.set_status(cell.id, state="skipped", reason=f"depends on {cell.parent}, "
                               "which did not finish", label=cell.label, updated=_now())
            log(f"{prefix}: skipped (its intermediate cell {cell.parent} did not finish)")
            continue
        if execute_cell(run_dir, cell, plan, exp, kernel, log, prefix):
            summary.done.append(cell.id)
        else:
            bad.add(cell.id)
            summary.failed.append(cell.id)
    report(run_dir.root, kernel, log)
    summary.seconds = time.perf_counter() - started
    log(f"xtl run: {len(summary.done)} ran, {len(summary.skipped)} already done, "
        f"{len(summary.failed)} failed, {len(summary.blocked)} skipped in {summary.seconds:.1f}s;"
        f" open {run_dir.root / 'index.html'}")
    return summary


def execute_cell(run_dir: RunDir, cell: planning.Cell, plan: planning.Plan,
                 exp: config.Experiment, kernel: str, log, prefix: str) -> bool:
    """Run one cell; a failure keeps the partial notebook and the error, and returns False."""
    from papermill.exceptions import PapermillExecutionError

    cell_dir = run_dir.cell(cell.id)
    started, t0 = _now(), time.perf_counter()
    run_dir.set_status(cell.id, state="running", label=cell.label, started=started)
    log(f"{prefix}: running ...")
    notebook = cell_dir / "notebook.ipynb"
    error = None
    try:
        execute_notebook(cell.notebook, notebook,
                         notebook_parameters(cell, run_dir, plan, exp), kernel)
    except PapermillExecutionError as err:
        error = f"{err.ename}: {err.evalue} (notebook cell {err.exec_count})"
    except Exception as err:  # a dead kernel or a papermill error: the grid goes on
        error = f"{type(err).__name__}: {err}"
    if notebook.is_file():
        render_html(notebook, cell_dir / "report.html")
    seconds = round(time.perf_counter() - t0, 2)
    if error is None and not (cell_dir / "metrics.json").is_file():
        error = "the notebook finished without writing metrics.json"
    state = "failed" if error else "done"
    run_dir.set_status(cell.id, state=state, label=cell.label, started=started,
                       finished=_now(), seconds=seconds, error=error)
    log(f"{prefix}: {state} in {seconds:.1f}s" + (f": {error}" if error else ""))
    return error is None


def report(root: Path, kernel: str | None = None, log=print) -> None:
    """Re-render the analysis notebook and the index page from what is in the run directory."""
    analysis = root / "analysis"
    try:
        execute_notebook("analysis", analysis / "analysis.ipynb", {"run_dir": str(root)},
                         kernel or kernel_name())
        render_html(analysis / "analysis.ipynb", analysis / "report.html")
    except Exception as err:  # the index still lists every cell
        log(f"analysis report failed: {type(err).__name__}: {err}")
    write_index(root)


def _headline(metrics_path: Path) -> str:
    if not metrics_path.is_file():
        return ""
    records = read_json(metrics_path)["records"]
    if not records:
        return ""
    metric = records[0]["metric"]
    values = [r["value"] for r in records if r["metric"] == metric]
    return f"{metric} {sum(values) / len(values):.1f} (mean of {len(values)})"


def write_index(root: Path) -> None:
    """index.html: the analysis on top, then every cell with status, headline score and link."""
    plan = read_json(root / "plan.json")
    rows = []
    for cell in plan["cells"]:
        cell_dir = root / "cells" / cell["id"]
        status = read_json(cell_dir / "status.json") if (cell_dir / "status.json").is_file() \
            else {"state": "pending"}
        link = (f'<a href="cells/{cell["id"]}/report.html">report</a>'
                if (cell_dir / "report.html").is_file() else "")
        note = status.get("error") or status.get("reason") or ""
        rows.append(f"<tr><td><code>{cell['id']}</code></td><td>{html.escape(cell['label'])}"
                    f"</td><td class='{status['state']}'>{status['state']}</td>"
                    f"<td>{_headline(cell_dir / 'metrics.json')}</td><td>{link}</td>"
                    f"<td>{html.escape(str(note))}</td></tr>")
    analysis = ('<p><a href="analysis/report.html">Analysis report</a></p>'
                if (root / "analysis" / "report.html").is_file() else
                "<p>No analysis report yet.</p>")
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>xtl: {html.escape(plan['experiment'])}</title><style>
body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}} .done{{color:green}} .failed{{color:red}}
.skipped{{color:#a60}}</style></head><body>
<h1>xtl experiment {html.escape(plan['experiment'])}</h1>{analysis}
<table><tr><th>cell</th><th>what</th><th>status</th><th>headline</th><th>report</th>
<th>note</th></tr>{''.join(rows)}</table>
<p>Generated {_now()} by xtl {xtl.__version__}.</p></body></html>"""
    atomic_write_text(root / "index.html", page)
