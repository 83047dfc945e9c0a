"""`xtl run FILE --smoke [N]`: every cell of an experiment file on N rows and a few steps.

The real loaders, heads, metrics, notebooks and analysis run; only the sizes shrink
(xtl.core.smokecaps). The run goes to its own directory (`<out>-smoke`, marked by smoke.json and a
SMOKE banner on its index), with the model and data locations optionally replaced; a cell whose
data is missing is reported as such without running. docs/smoke.md describes it.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xtl.core.errors import ConfigError, DataError
from xtl.core.smokecaps import DEFAULT_STEPS, MARKER, SMOKE_ENV, Caps, is_smoke
from xtl.core.store import atomic_write_json, atomic_write_text, read_json
from xtl.data import sources
from xtl.grid import config, executors
from xtl.grid import plan as planning
from xtl.grid import run as running
from xtl.grid.executors.local import gpu_groups, usable_cores
from xtl.grid.lock import LOCK_NAME, RunLock
from xtl.grid.rundir import RunDir, is_done, not_needed

STATES = ("passed", "missing", "failed", "skipped", "not run")
# A smoke cell is mostly kernel start-up and imports on one core, so without a GPU as many run
# at once as there are cores, up to this many (BENCHMARKS.md, "Cells in parallel on the CPU").
MAX_CPU_CELLS = 4


@dataclass
class Outcome:
    cell: str
    kind: str
    label: str
    state: str  # STATES: passed | missing | failed | skipped | not run (interrupted)
    reason: str = ""


@dataclass
class SmokeResult:
    root: Path
    caps: Caps
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, state: str) -> int:
        return sum(o.state == state for o in self.outcomes)

    @property
    def crashed(self) -> bool:
        """A cell failed for another reason than data missing from the mirror."""
        return self.count("failed") > 0


def smoke_document(exp_path: str | Path, model: str | None, mirror: str | None,
                   raw_dir: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The experiment file as the smoke run uses it, and what was substituted in it."""
    doc = yaml.safe_load(Path(exp_path).read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ConfigError(f"{exp_path}: expected a YAML mapping (an experiment file)")
    doc.setdefault("name", Path(exp_path).stem)
    subs: dict[str, Any] = {}
    for key, value in (("models", [model] if model else None),
                       ("mirror", _directory(mirror, "--mirror")),
                       ("raw_dir", _directory(raw_dir, "--raw-dir"))):
        if value is not None and value != doc.get(key):
            subs[key] = {"from": doc.get(key), "to": value}
            doc[key] = value
    executor = parallel_executor(doc.get("executor", "local"))
    if executor is not None:
        subs["executor"] = {"from": doc.get("executor"), "to": executor}
        doc["executor"] = executor
    # checkpoints are dropped as soon as no cell needs them: a smoke grid is many models
    doc["keep_checkpoints"] = "none"
    return doc, subs


def parallel_executor(value: Any) -> dict[str, Any] | None:
    """The local executor with `cpu_cells` = the usable cores (at most MAX_CPU_CELLS), or None
    to keep the file's: another executor, an explicit cpu_cells, a GPU, or a single core."""
    spec = {"kind": value} if isinstance(value, str) else value
    if not isinstance(spec, dict) or spec.get("kind") != "local" or "cpu_cells" in spec:
        return None
    cells = min(usable_cores(), MAX_CPU_CELLS)
    if cells < 2 or gpu_groups(spec.get("gpus", "auto"), 1):
        return None
    return {**spec, "cpu_cells": cells}


def _directory(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"{option} {value!r} is not a directory")
    return str(path)


def smoke_dir(exp: config.Experiment, out: str | Path | None) -> Path:
    """`--out` as given, else the real run directory's name + '-smoke' (never the real one)."""
    if out:
        return running.output_dir(exp, out)
    real = running.output_dir(exp, None)
    return real.with_name(real.name + "-smoke")


def _claim(root: Path) -> None:
    """An earlier smoke run here is replaced; a real run directory is never touched."""
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).is_file():
            raise ConfigError(f"{root} holds something that is not a smoke run (no {MARKER}); "
                              "a smoke run never writes into a real run directory: use --out")
        for child in root.iterdir():
            if child.name != LOCK_NAME:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    root.mkdir(parents=True, exist_ok=True)


def missing_data(cell: planning.Cell, exp: config.Experiment, mirror: Path | None,
                 raw: Path | None) -> tuple[str | None, str]:
    """(why the cell cannot run, a note) from the splits it reads that are not in the mirror /
    raw directory. The training splits must all be there; evaluation languages that are not
    are dropped from the cell (the note names them), unless none is left."""
    needed = planning.cell_splits(cell, exp)
    trained = {"stage": len(needed), "target": 2}.get(cell.kind, 0)  # cell_splits' order

    def absent(part: list) -> tuple[list[str], str, str]:
        langs, first, name = [], "", ""
        for task, split, lang in part:
            try:
                sources.check_available(task, split, lang, mirror, raw)
            except DataError as err:
                langs.append(lang)
                first = first or _one_line(str(err), 160)
                name = name or f"{task.name}/{split}"
        return langs, name, first

    langs, name, first = absent(needed[:trained])
    if langs:
        task, split = name.split("/")
        return f"missing split {task}/{langs[0]}/{split}: {first}", ""
    evaluated = needed[trained:]
    langs, name, first = absent(evaluated)
    if not langs:
        return None, ""
    if len(langs) == len(evaluated):
        return f"missing split {name} in every language ({', '.join(langs)}): {first}", ""
    cell.evaluation = {**cell.evaluation,
                       "languages": [lang for _, _, lang in evaluated if lang not in langs]}
    return None, (f"evaluated {len(evaluated) - len(langs)} of {len(evaluated)} languages; "
                  f"missing split {name} in {', '.join(langs)}")


def _one_line(text: str, width: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[:width - 3] + "..."


def run(exp_path: str | Path, out: str | Path | None = None, rows: int | None = None,
        steps: int | None = None, model: str | None = None, mirror: str | None = None,
        raw_dir: str | None = None, log=print) -> SmokeResult:
    """Smoke-run every cell of `exp_path`; print and return one outcome per cell."""
    from xtl.core.smokecaps import DEFAULT_ROWS

    rows = DEFAULT_ROWS if rows is None else rows
    steps = DEFAULT_STEPS if steps is None else steps
    if rows < 1 or steps < 1:
        raise ConfigError(f"--smoke {rows} / --steps {steps}: expected integers >= 1")
    started = time.perf_counter()
    doc, subs = smoke_document(exp_path, model, mirror, raw_dir)
    exp = config.parse(doc, source=f"{exp_path} (smoke)")
    exp.path = Path(exp_path)
    root = smoke_dir(exp, out)
    # the substituted locations win over the environment's (XTL_HUB_MIRROR, XTL_RAW_DIR)
    saved = {k: os.environ.get(k) for k in (sources.MIRROR_ENV, sources.RAW_ENV, SMOKE_ENV)}
    for key, env in (("mirror", sources.MIRROR_ENV), ("raw_dir", sources.RAW_ENV)):
        if key in subs:
            os.environ[env] = subs[key]["to"]
    caps = Caps(rows, steps, subs)
    try:
        plan = planning.build(exp)  # the (substituted) model must be here: it is trained
        _claim(root)
        os.environ[SMOKE_ENV] = caps.to_env()
        result = _execute(exp_path, doc, exp, plan, RunDir(root), caps, log)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    result.seconds = time.perf_counter() - started
    atomic_write_text(root / "smoke.md", table(result, exp_path, markdown=True))
    log(table(result, exp_path))
    return result


def _execute(exp_path: str | Path, doc: dict, exp: config.Experiment, plan: planning.Plan,
             run_dir: RunDir, caps: Caps, log) -> SmokeResult:
    root = run_dir.root
    mirror = Path(plan.mirror) if plan.mirror else None
    raw = Path(plan.raw_dir) if plan.raw_dir else None
    with RunLock(root, log):
        atomic_write_json(root / MARKER, {"smoke": True, "file": str(Path(exp_path).resolve()),
                                          "rows": caps.rows, "steps": caps.steps,
                                          "substitutions": caps.substitutions})
        atomic_write_text(root / "experiment.yaml", yaml.safe_dump(doc, sort_keys=False))
        missing: dict[str, str] = {}
        notes: dict[str, str] = {}
        for cell in plan.cells:  # before plan.json: a cell may lose absent eval languages
            why, notes[cell.id] = missing_data(cell, exp, mirror, raw)
            if why is not None:
                missing[cell.id] = why
                run_dir.set_status(cell.id, state="failed", label=cell.label, error=why)
        atomic_write_json(root / "plan.json", plan.to_json())
        atomic_write_json(root / MARKER, {**read_json(root / MARKER), "missing": missing,
                                          "notes": {k: v for k, v in notes.items() if v}})
        kernel = running.kernel_name()
        os.environ["XTL_GPUS_PER_CELL"] = str(exp["gpus_per_cell"])
        os.environ["XTL_DISTRIBUTED"] = str(exp["distributed"])
        by_id, number = plan.by_id(), running._numbered(plan)

        def run_here(cell_id: str) -> None:
            running.execute_cell(run_dir, by_id[cell_id], plan, exp, kernel, log,
                                 number[cell_id])

        executor = executors.make(exp["executor"], str(root), exp["gpus_per_cell"],
                                  executors.forwarded_env(), run_here, running.run_cell)
        try:
            running._run_cells(run_dir, plan, exp, executor, False, log)
        finally:
            executor.close()
        running.report(root, kernel, log)
    return summarize(root)


def outcomes(run_dir: RunDir, plan: planning.Plan, missing: dict[str, str],
             notes: dict[str, str] | None = None) -> list[Outcome]:
    """One outcome per cell; a skipped cell says which failure upstream stopped it."""
    found: dict[str, Outcome] = {}
    for cell in plan.cells:  # dependency order: a parent's outcome is known first
        status = run_dir.status(cell.id)
        state = status.get("state")
        if cell.id in missing:
            out = Outcome(cell.id, cell.kind, cell.label, "missing", missing[cell.id])
        elif state == "done" and is_done(run_dir, cell) or not_needed(
                run_dir, plan, cell):
            out = Outcome(cell.id, cell.kind, cell.label, "passed", (notes or {}).get(cell.id, ""))
        elif state == "skipped" and cell.parent in found:
            parent = found[cell.parent]
            out = Outcome(cell.id, cell.kind, cell.label, "skipped",
                          f"its stage {parent.label!r} {parent.state}: {parent.reason}")
        elif state in ("pending", "running"):  # an interrupted smoke run
            out = Outcome(cell.id, cell.kind, cell.label, "not run", state)
        else:
            out = Outcome(cell.id, cell.kind, cell.label, "failed",
                          _one_line(status.get("error") or status.get("reason")
                                    or f"state {state}"))
        found[cell.id] = out
    return list(found.values())


def table(result: SmokeResult, exp_path: str | Path, markdown: bool = False) -> str:
    """The summary: a headline, then each cell with passed/missing/failed/skipped and why."""
    subs = "; ".join(f"{k}: {v['from']} -> {v['to']}" for k, v in result.caps.substitutions.items())
    head = (f"SMOKE RUN of {exp_path} ({result.caps.rows} rows per split, at most "
            f"{result.caps.steps} optimizer steps per cell{'; ' + subs if subs else ''}): "
            + ", ".join(f"{result.count(s)} {s}" for s in STATES
                        if s != "not run" or result.count(s))
            + f" of {len(result.outcomes)} cells in {result.seconds:.0f} s; {result.root}")
    if markdown:
        lines = [head, "", "| cell | kind | what | outcome | reason |", "|---|---|---|---|---|"]
        lines += [f"| `{o.cell}` | {o.kind} | {o.label.replace('|', '/')} | {o.state} | "
                  f"{o.reason.replace('|', '/')} |" for o in result.outcomes]
        return "\n".join(lines) + "\n"
    lines = [head]
    lines += [f"  {o.state.upper() if o.state != 'passed' else o.state:<8} {o.kind:<9} "
              f"{o.label}" + (f": {o.reason}" if o.reason else "") for o in result.outcomes]
    return "\n".join(lines)


def summarize(root: Path) -> SmokeResult:
    """The outcomes of the smoke run in `root` as its files say (also of an interrupted one)."""
    marker = is_smoke(root)
    if marker is None:
        raise ConfigError(f"{root} is not a smoke run directory (no {MARKER})")
    plan = planning.Plan.from_json(read_json(root / "plan.json"))
    caps = Caps(marker["rows"], marker["steps"], marker.get("substitutions", {}))
    return SmokeResult(root, caps, outcomes(RunDir(root), plan,
                                            marker.get("missing", {}), marker.get("notes", {})))
