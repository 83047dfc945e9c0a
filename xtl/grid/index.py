"""The run directory's index.html: the analysis on top, then every cell with its state,
headline score and report link."""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path

import xtl
from xtl.analysis import results
from xtl.core.store import atomic_write_text, read_json
from xtl.grid.rundir import RunDir, read_plan, state_of


def cell_headline(metrics_path: Path) -> str:
    """'<metric> <mean over languages> (n languages; en X)' of a cell's metrics.json."""
    by_language: dict[str, dict[str, float]] = {}
    try:
        records = read_json(metrics_path)["records"] if metrics_path.is_file() else []
        for r in records:
            by_language.setdefault(r["language"], {})[r["metric"]] = float(r["value"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # damaged or foreign
        return "unreadable metrics.json"
    values = {lang: results._headline_value(m) for lang, m in by_language.items()}
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return ""
    name = results.headline_name(next(iter(by_language.values())))
    mean = sum(values.values()) / len(values)
    if len(values) == 1:
        return f"{name} {mean:.1f} ({next(iter(values))})"
    en = f"; en {values['en']:.1f}" if "en" in values else ""
    return f"{name} {mean:.1f} (mean of {len(values)} languages{en})"


def write_index(root: Path) -> None:
    """index.html: the analysis on top, then every cell of the run's plan with its state and
    note (`xtl.grid.rundir.state_of`), headline score and link."""
    plan, run_dir = read_plan(root), RunDir(root)
    rows = []
    for cell in plan.cells:
        state, note = state_of(run_dir, plan, cell)
        metrics = root / "cells" / cell.id / "metrics.json"
        if metrics.is_file() and _collapsed(metrics):
            note = ("training collapsed; " + note).strip("; ")
        link = (f'<a href="cells/{cell.id}/report.html">report</a>'
                if (root / "cells" / cell.id / "report.html").is_file() else "")
        rows.append(f"<tr><td><code>{cell.id}</code></td><td>{html.escape(cell.label)}</td>"
                    f"<td class='{state}'>{state}</td>"
                    f"<td>{html.escape(cell_headline(metrics))}</td><td>{link}</td>"
                    f"<td>{html.escape(note)}</td></tr>")
    analysis = ('<p><a href="analysis/report.html"><b>Analysis report</b></a> (tables, figures, '
                'uncertainty); the results table: <code>analysis/results.parquet</code></p>'
                if (root / "analysis" / "report.html").is_file() else
                "<p>No analysis report yet.</p>")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    banner = _smoke_banner(root)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>{'SMOKE RUN ' if banner else ''}xtl: {html.escape(plan.experiment)}</title><style>
body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}} .done{{color:green}} .failed{{color:red}}
.skipped{{color:#a60}}</style></head><body>
{banner}<h1>xtl experiment {html.escape(plan.experiment)}</h1>{analysis}
<table><tr><th>cell</th><th>what</th><th>status</th><th>headline</th><th>report</th>
<th>note</th></tr>{''.join(rows)}</table>
<p>Generated {now} by xtl {xtl.__version__}.</p></body></html>"""
    atomic_write_text(root / "index.html", page)


def _smoke_banner(root: Path) -> str:
    """A smoke run's index says so before anything else (its numbers mean nothing)."""
    from xtl.core.smokecaps import is_smoke

    marker = is_smoke(root)
    if marker is None:
        return ""
    subs = "; ".join(f"{k}: {v['from']} -> {v['to']}"
                     for k, v in marker.get("substitutions", {}).items())
    subs = f"; {html.escape(subs)}" if subs else ""
    return ("<div style='background:#c00;color:#fff;padding:1em;font-size:1.4em'><b>SMOKE RUN"
            f"</b>: every split capped at {marker.get('rows')} rows, at most "
            f"{marker.get('steps')} optimizer steps per cell{subs}"
            ". These scores are NOT results; this directory only shows that every cell runs."
            "</div>\n")


def _collapsed(metrics: Path) -> bool:
    try:
        return results.run_collapsed(json.loads(metrics.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # damaged: no flag
        return False
