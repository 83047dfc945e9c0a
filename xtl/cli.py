"""`xtl` command line: tasks, plan, run, report."""

from __future__ import annotations

import argparse
import sys

from xtl.errors import XtlError


def _tasks(args: argparse.Namespace) -> None:
    from xtl import tasks

    for name, task in sorted(tasks.REGISTRY.items()):
        source = task.hub_id or ("generated" if task.generator else "raw files")
        print(f"{name:<12} {task.format:<20} {len(task.languages):>3} languages  {source}"
              f"{'  (trains on ' + task.train_task + ')' if task.train_task else ''}")


def _plan(args: argparse.Namespace) -> None:
    from xtl import config, plan, run

    exp = config.load(args.file)
    built = plan.build(exp)
    plan.preflight(built, exp)
    run_dir = run.RunDir(run.output_dir(exp, args.out))
    done = {c.id for c in built.cells if run.is_done(run_dir, c)}
    print(plan.describe(built, done))
    print(f"run directory: {run_dir.root}")


def _run(args: argparse.Namespace) -> None:
    from xtl import run

    summary = run.run(args.file, args.out)
    if summary.failed:
        sys.exit(1)


def _report(args: argparse.Namespace) -> None:
    from xtl import config, run

    root = run.output_dir(config.load(args.file), args.out)
    run.report(root)
    print(f"wrote {root / 'analysis' / 'report.html'} and {root / 'index.html'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="xtl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tasks", help="list registered tasks").set_defaults(func=_tasks)
    for name, func, text in (("plan", _plan, "print the cells of an experiment"),
                             ("run", _run, "run every cell that is not done"),
                             ("report", _report, "re-render the analysis and index")):
        p = sub.add_parser(name, help=text)
        p.add_argument("file", help="experiment file (YAML)")
        p.add_argument("--out", help="run directory (default: the file's 'out' or runs/<name>)")
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except XtlError as err:
        print(f"xtl: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
