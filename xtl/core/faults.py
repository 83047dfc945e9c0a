"""Fault points for crash tests: `XTL_FAULT=<point>[:<occurrence>]` kills the process there.

The process SIGKILLs itself at the given occurrence (default: the first) of `fault(point)`, so
a test running xtl in a subprocess sees exactly what a real crash leaves on disk: no cleanup
handlers, no flushed buffers. Points: cell_start, after_notebook, html_render, status_update,
metrics_write, checkpoint_write, train_step (after optimizer step N of a fresh process),
evaluate (after each evaluated split's predictions).
`XTL_FAULT_CELL=<cell id>` limits the fault to the process running that cell (a worker of a
parallel executor, or its kernel), so one worker dies while the others carry on.
"""

from __future__ import annotations

import os
import signal

ENV = "XTL_FAULT"
_seen: dict[str, int] = {}


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def fault(point: str) -> None:
    """Count this passage through `point`; die if `XTL_FAULT` names this occurrence of it."""
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return
    name, _, occurrence = spec.partition(":")
    if name != point:
        return
    only = os.environ.get("XTL_FAULT_CELL")
    if only and os.environ.get("XTL_CELL") != only:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] == int(occurrence or 1):
        _kill()
