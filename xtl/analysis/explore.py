"""The interactive explorer of notebooks/explore.ipynb: pickers per axis, the filtered
scores, the per-language figure with chance levels and links to each cell's report."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from xtl.analysis.sections import chance_levels, shown
from xtl.evaluation import plots


def filter_table(frame: pd.DataFrame, **chosen: Any) -> pd.DataFrame:
    """Rows whose column values are among the chosen ones (an empty choice keeps all)."""
    keep = pd.Series(True, index=frame.index)
    for column, values in chosen.items():
        if values:
            keep &= frame[column].isin(list(values))
    return frame[keep]


def cell_links(frame: pd.DataFrame) -> str:
    """HTML list of links to the reports of the cells in `frame` (absolute file paths)."""
    items = []
    for _, row in frame.drop_duplicates("cell").iterrows():
        path = row.get("predictions")
        report = Path(path).parents[1] / "report.html" if isinstance(path, str) else None
        label = html.escape(f"{row['model']} | {row['intermediate']} -> {row['target']} | "
                            f"seed {row['seed']}")
        items.append(f'<li><a href="{report.as_uri()}" target="_blank">{label}</a></li>'
                     if report is not None and report.is_file() else f"<li>{label}</li>")
    return "<ul>" + "".join(items) + "</ul>"


EXPLORER_AXES = ("model", "intermediate", "target", "language", "seed")


def explorer(scores: pd.DataFrame) -> Any:
    """ipywidgets: a multi-select per axis, then the filtered scores, the per-language figure
    with chance levels, and links to each selected cell's report; returns the pickers' box
    (already displayed).

    The views are plain outputs, updated in place through display ids, not captured by an
    Output widget: a headless run (papermill) has no frontend for widgets, and output capture
    into one there is where executions were seen to hang. Headless, the pickers are inert and
    the views show every cell."""
    import ipywidgets as w
    from IPython.display import display as show

    pickers = {axis: w.SelectMultiple(options=shown(scores[axis]), description=axis,
                                      rows=min(6, max(2, scores[axis].nunique())))
               for axis in EXPLORER_AXES}
    box = w.VBox([w.HBox(list(pickers.values()))])
    show(box)
    handles = [show(view, display_id=True) for view in _explore_views(scores)]

    def redraw(*_: Any) -> None:
        chosen = {axis: [o for o in p.value] for axis, p in pickers.items()}
        chosen["seed"] = [int(s) for s in chosen["seed"]]
        for handle, view in zip(handles, _explore_views(filter_table(scores, **chosen)),
                                strict=True):
            handle.update(view)

    for picker in pickers.values():
        picker.observe(redraw, names="value")
    return box


def _explore_views(part: pd.DataFrame) -> list[Any]:
    """The explorer's three views of some scores: table, per-language figure, report links."""
    from IPython.display import HTML

    if part.empty:
        return [HTML("<p>no cell matches</p>"), HTML(""), HTML("")]
    fig = plots.zero_shot_scores(part, chance_levels(part))
    plt.close(fig)  # shown by the display call, not again by the inline backend
    return [part.pivot_table(index=["model", "intermediate", "target", "seed"],
                             columns="language", values="score").round(1),
            fig, HTML(cell_links(part))]
