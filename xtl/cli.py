"""`xtl` command line: tasks, data, plan, run, status, report, rerun."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from xtl.core.errors import ConfigError, XtlError
from xtl.core.tables import plural


def _tasks(args: argparse.Namespace) -> None:
    from xtl.core.tables import table
    from xtl.data import mlm, tasks  # noqa: F401  (mlm registers its task, as loading a file does)

    rows = [(name, task.format, plural(len(task.languages), "language"),
             _source(task) + (f" (trains on {task.train_task})" if task.train_task else ""))
            for name, task in sorted(tasks.REGISTRY.items())]
    print(table(("TASK", "FORMAT", "LANGUAGES", "SOURCE"), rows, right=(2,)))


def _source(task) -> str:
    """Where a task's rows come from, in a few words."""
    if task.combine:
        return "combines " + " + ".join(task.combine)
    if task.generator is not None:
        return "generated (xtl.offline.synth)"
    if task.bundled:
        return f"bundled real sample (xtl/offline/samples/{task.raw_path}/)"
    raw = f"raw files <raw_dir>/{task.raw_path}/"
    if task.hub_id is None:
        return raw
    extra = [lang for lang in task.languages if task.from_raw(lang)]
    return task.hub_id + (f"; {', '.join(extra)} from {raw}" if extra else "")


def _plan(args: argparse.Namespace) -> None:
    from xtl.grid import estimate, plan, run, rundir

    exp, built, run_dir = run.prepare(args.file, args.out, force=True, require_local=False)
    missing = plan.unavailable(built, exp)
    models = [why for why in missing if why.startswith(("model ", "model path "))]
    if args.check and models:  # no data check is worth reading before the model is here
        raise ConfigError(f"{plural(len(models), 'model')} of the plan not available here:\n  "
                          + "\n  ".join(models))
    checked = _check(args.file) if args.check else None
    mirror = Path(built.mirror) if built.mirror else None
    states = {c.id: rundir.state_of(run_dir, built, c) for c in built.cells}
    works = {c.id: plan.work(c, exp, mirror) for c in built.cells}
    wanted = args.estimate or args.throughput or args.recalibrate
    est = _estimate(args, exp, built, states) if wanted else None
    times = {c.id: estimate.cell_line(est, c.id) for c in built.cells} if est else None
    print(plan.describe(built, states, works, times))
    if est is not None:
        print(estimate.summary(est))
    changed = rundir.changed_cells(run_dir, built)
    if changed:
        print("changed since the last run in this directory (xtl run needs --force or --out):")
        print("  " + "\n  ".join(changed))
    if missing:
        print(f"not available here ({len(missing)}; `xtl plan --check` and `xtl run` refuse "
              "until fixed):\n  " + "\n  ".join(missing))
    print(f"run directory: {run_dir.root}")
    if checked is not None:
        print(checked.summary())


def _check(path: str):
    """`xtl plan --check`: every gap at once and NOT OK (exit 1), or the result to print last."""
    from xtl.grid import check, config, plan

    exp = config.load(path)
    result = check.run_check(plan.build(exp, require_models=False), exp)
    if not result.ok:
        print(result.report())
        sys.exit(1)
    return result


def _estimate(args: argparse.Namespace, exp, built, states):
    """`xtl plan --estimate`: figures from --throughput FILE, else a (cached) calibration."""
    from xtl.grid import estimate
    from xtl.grid.throughput import load_throughput

    slots, shared = args.slots, 1
    if slots is None:
        slots, shared = _executor_slots(exp)
    if slots < 1:
        raise ConfigError(f"--slots {slots}: expected an integer >= 1 (cells at a time)")
    mirror = Path(built.mirror) if built.mirror else None
    raw = Path(built.raw_dir) if built.raw_dir else None
    works = estimate.plan_work(built, exp, mirror, raw)
    if args.throughput:
        figures = load_throughput(args.throughput)
    else:
        from xtl.grid import calibrate

        figures = calibrate.calibrate(works, mirror, raw, refresh=args.recalibrate)
    pending = {cid for cid, (state, _) in states.items() if state != "done"}
    return estimate.estimate(built, works, figures, pending, exp["gpus_per_cell"], slots, shared)


def _executor_slots(exp) -> tuple[int, int]:
    """(cells at a time, CPU cells sharing the cores) of the file's executor: the local one runs
    a cell per GPU group, or `cpu_cells` on the CPU; a cluster's is unknown here (--slots)."""
    from xtl.grid.executors.local import gpu_groups

    spec = exp["executor"]
    if spec["kind"] != "local":
        return 1, 1
    groups = gpu_groups(spec["gpus"], exp["gpus_per_cell"])
    return (len(groups), 1) if groups else (spec["cpu_cells"], spec["cpu_cells"])


def _own_process() -> bool:
    """Whether this process is the `xtl` command (the console script, or `python -m xtl.cli`)
    rather than a notebook or a test calling `main`: only then is it certain to have computed
    nothing with torch before its cells (xtl.grid.run.run, `fork_server`)."""
    entry = sys.modules.get("__main__")
    spec = getattr(entry, "__spec__", None)
    return getattr(spec, "name", None) == __name__ or getattr(entry, "main", None) is main


def _run(args: argparse.Namespace) -> None:
    from xtl.grid import run

    if args.smoke is not None:
        from xtl.grid import smoke

        result = smoke.run(args.file, args.out, args.smoke, args.steps, args.model, args.mirror,
                           args.raw_dir)
        sys.exit(1 if result.crashed else 0)
    only_smoke = [f"--{k.replace('_', '-')}" for k in ("model", "mirror", "raw_dir", "steps")
                  if getattr(args, k) is not None]
    if only_smoke:
        raise ConfigError(f"{', '.join(only_smoke)} only apply to a smoke run (add --smoke)")
    summary = run.run(args.file, args.out, retry_failed=args.retry_failed, force=args.force,
                      fork_server=_own_process())
    if summary.failed:
        sys.exit(1)


def _root(args: argparse.Namespace) -> Path:
    from xtl.grid import config, run

    root = run.output_dir(config.load(args.file), args.out)
    if not (root / "plan.json").is_file():
        raise XtlError(f"{root} has no plan.json: nothing has been run there yet")
    return root


def _status(args: argparse.Namespace) -> None:
    from xtl.grid import rundir

    print(rundir.status_table(_root(args)))


def _report(args: argparse.Namespace) -> None:
    from xtl.grid import run, rundir

    root = _root(args)
    rundir.read_plan(root)  # a damaged plan.json: one clear error before any rendering
    run.report(root)
    print(f"wrote {root / 'analysis' / 'report.html'} and {root / 'index.html'}")


def _data_show(args: argparse.Namespace) -> None:
    from xtl.data import sources, tasks

    task = tasks.get(args.task)
    language = args.lang or task.train_language
    split = sources.load(task, args.split, language, sources.resolve_mirror(args.mirror))
    print(f"{task.name}/{language}/{args.split}: {len(split.rows)} usable rows from "
          f"{split.source} ({split.location}); unusable: {split.unusable or 'none'}")
    for row in split.rows.select(range(min(args.n, len(split.rows)))):
        print("  " + repr(row))


def _data_download(args: argparse.Namespace) -> None:
    from xtl.grid import mirror

    written = mirror.download(args.file, Path(args.to))
    print(f"wrote {len(written)} split files under {args.to}")


def _rerun(args: argparse.Namespace) -> None:
    from xtl.grid import rerun

    job = rerun.prepare(Path(args.run_dir), args.cell, Path(args.to) if args.to else None)
    if args.params_only:
        print(f"wrote {job.params_file}; edit it, then run:\n  {rerun.papermill_command(job)}")
        return
    print(f"rerunning {job.cell.id} ({job.cell.label}) into {job.dest}; the cell's own files "
          "are not touched")
    error = rerun.execute(job)
    if error:
        print(f"xtl rerun: failed: {error}\n(notebook and log kept in {job.dest})",
              file=sys.stderr)
        sys.exit(1)
    print(f"wrote {job.notebook}, {job.dest / 'report.html'} and {job.dest / 'metrics.json'}")


def _version() -> str:
    import xtl

    return f"xtl {xtl.__version__} ({Path(xtl.__file__).resolve().parent})"


def build_parser() -> argparse.ArgumentParser:
    """Every command and option, each with its help text."""
    parser = argparse.ArgumentParser(prog="xtl", description=__doc__)
    parser.add_argument("--version", action="version", version=_version(),
                        help="print the version and where xtl is installed, then exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("tasks", help="list registered tasks: format, languages, source"
                   ).set_defaults(func=_tasks)
    for name, func, text in (("plan", _plan, "print the cells, their dependencies and work"),
                             ("run", _run, "run every cell that is not done"),
                             ("status", _status, "done / running / failed / pending / skipped"),
                             ("report", _report, "re-render the analysis and index")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("file", help="experiment file (YAML)")
        p.add_argument("--out", metavar="DIR",
                       help="run directory (default: the file's 'out' or runs/<name>)")
        p.set_defaults(func=func)
        if name == "run":
            p.add_argument("--retry-failed", action="store_true", help="rerun failed cells")
            p.add_argument("--force", action="store_true",
                           help="run although the file changed cells of this run directory")
            p.add_argument("--smoke", type=int, nargs="?", const=16, metavar="N",
                           help="smoke run: every cell on the first N rows of each split "
                                "(default 16) and a few optimizer steps, into <out>-smoke; "
                                "prints each cell's outcome (docs/smoke.md)")
            p.add_argument("--steps", type=int, help="smoke run: optimizer steps per cell "
                                                     "(default 2)")
            p.add_argument("--model", help="smoke run: this model instead of the file's")
            p.add_argument("--mirror", help="smoke run: this Hub-layout mirror")
            p.add_argument("--raw-dir", help="smoke run: this raw-data directory")
        if name == "plan":
            p.add_argument("--check", action="store_true",
                           help="list every dataset config and split missing from the mirror, "
                                "raw directory or Hub, then say OK or NOT OK (exit 1)")
            p.add_argument("--estimate", action="store_true",
                           help="wall time and GPU hours per cell and in total, from a short "
                                "calibration run (cached) or --throughput")
            p.add_argument("--throughput", metavar="FILE",
                           help="examples/s per model and format (YAML/JSON) instead of "
                                "calibrating; implies --estimate")
            p.add_argument("--recalibrate", action="store_true",
                           help="measure again instead of using cached calibration figures "
                                "(implies --estimate)")
            p.add_argument("--slots", type=int, default=None, metavar="N",
                           help="cells running at a time, for the wall time (default: the "
                                "local executor's GPU groups or cpu_cells; 1 on a cluster)")
    redo = sub.add_parser(
        "rerun", help="execute one cell's notebook again into a scratch directory",
        description="Execute one cell's notebook again with its own parameters, writing into a "
                    "scratch directory: the finished cell's files are never touched.")
    redo.add_argument("run_dir", help="run directory (e.g. runs/demo)")
    redo.add_argument("cell", help="cell id (the CELL column of `xtl status`)")
    redo.add_argument("--to", metavar="DIR",
                      help="scratch directory, new or empty "
                           "(default: RUN_DIR/reruns/<cell>-<time>)")
    redo.add_argument("--params-only", action="store_true",
                      help="only write the scratch params.yaml and print the papermill command "
                           "that runs it (to edit a value first)")
    redo.set_defaults(func=_rerun)
    data = sub.add_parser("data", help="inspect or download task data")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    show = data_sub.add_parser("show", help="row count and decoded examples of a split")
    show.add_argument("task", help="task name (see `xtl tasks`)")
    show.add_argument("--split", default="validation",
                      help="train, validation or test (default validation)")
    show.add_argument("--lang", help="language code (default: the task's training language)")
    show.add_argument("--mirror", metavar="DIR", help="Hub-layout mirror (XTL_HUB_MIRROR wins)")
    show.add_argument("-n", type=int, default=3, metavar="N", help="examples to print (default 3)")
    show.set_defaults(func=_data_show)
    down = data_sub.add_parser("download", help="fill a Hub-layout mirror for an experiment")
    down.add_argument("file", help="experiment file (YAML) whose Hub splits to download")
    down.add_argument("--to", required=True, metavar="DIR", help="mirror directory to fill")
    down.set_defaults(func=_data_download)
    return parser


def _on_interrupt(signum: int, frame: object) -> None:
    """Ctrl-C: what the unwinding logs (a kernel stopped with its cell, a pending task's error)
    is not news to whoever pressed it; xtl's own line below says what happened."""
    logging.disable(logging.CRITICAL)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is not threading.main_thread():  # signals: main thread only
        _dispatch(args)
        return
    previous = signal.signal(signal.SIGINT, _on_interrupt)
    try:
        _dispatch(args)
    finally:
        signal.signal(signal.SIGINT, previous)


def _dispatch(args: argparse.Namespace) -> None:
    try:
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except XtlError as err:
        print(f"xtl: error: {bounded(str(err))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("\nxtl: interrupted" + ("; finished cells are kept and the next `xtl run` "
                                      "continues from them" if args.command == "run" else ""),
              file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `xtl tasks | head`: the reader has all it wanted; say nothing more
        _quiet_stdout()
        sys.exit(0)
    except OSError as err:  # disk full, permissions, a vanished mount: the machine, not a bug
        print(f"xtl: error: {err}\n(results already written are kept; fix this and run the "
              "same command again)", file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # a bug, or a damaged file no check foresaw: one line, not 40
        if os.environ.get("XTL_TRACEBACK"):
            raise
        print(f"xtl: error: unexpected {type(err).__name__}: {bounded(str(err), 500, 5)}\n"
              "(set XTL_TRACEBACK=1 to see where; please report it with that traceback)",
              file=sys.stderr)
        sys.exit(3)


def bounded(message: str, width: int = 2000, lines: int = 60) -> str:
    """An error message cut to `lines` lines of at most `width` characters (a hostile file's
    value echoed in an error must not print megabytes)."""
    rows = message.splitlines() or [""]
    cut = [r if len(r) <= width else r[:width] + f"... ({len(r) - width} characters cut)"
           for r in rows[:lines]]
    if len(rows) > lines:
        cut.append(f"... ({len(rows) - lines} more lines)")
    return "\n".join(cut)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    main()
