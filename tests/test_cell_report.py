"""What a cell report shows: one parameters cell, the values the phase uses, formatted to read
right, no always-empty column, retrieval panels readable near 1 %."""

from __future__ import annotations

import matplotlib
import nbformat
import pandas as pd
import pytest

from xtl.cells import phases, retrieval
from xtl.core.hparams import HPARAM_DEFAULTS
from xtl.evaluation import plots
from xtl.grid import run
from xtl.grid.cell_report import readable

matplotlib.use("Agg")

DEFAULTS = 'cell_id = "adhoc-target"\ntask = "synth-nli"\nhparams = {"epochs": 1}'
INJECTED = ('# Parameters\ncell_id = "target-0123456789ab"\ntask = "panx-sample"\n'
            'hparams = {"learning_rate": 0.0001, "adam_epsilon": 1e-08, "epochs": 4}\n'
            'hparam_sources = {"*": {}}\neval_languages = ["de"]\n')


def _executed() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Target"),
                nbformat.v4.new_code_cell(DEFAULTS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(INJECTED, metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("x = 1")]
    return nb


def test_the_defaults_cell_is_left_out_and_the_injected_one_kept_short():
    nb = readable(_executed())
    assert [c.source[:8] for c in nb.cells] == ["# Target", "# Parame", "x = 1"]
    shown = nb.cells[1].source
    assert 'task = "panx-sample"' in shown and 'eval_languages = ["de"]' in shown
    assert "hparams =" not in shown and "hparam_sources =" not in shown
    assert "the values this phase uses are in the table below" in shown
    hand_run = _executed()
    hand_run.cells.pop(2)  # executed by hand: its defaults are what ran
    assert readable(hand_run) == hand_run


def test_the_report_shows_one_task_line(tmp_path):
    path = tmp_path / "notebook.ipynb"
    nbformat.write(_executed(), path)
    run.render_html(path, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "adhoc-target" not in page and "target-0123456789ab" in page
    assert page.count("panx-sample") == 1 and "synth-nli" not in page
    assert nbformat.read(path, as_version=4).cells[1].source == DEFAULTS  # the notebook as run


def _start(kind: str, tmp_path, **params):
    return phases.start(kind, "c", str(tmp_path / "c"), str(tmp_path / "k"),
                        dict(HPARAM_DEFAULTS), None, {}, None, hparam_sources={}, model="tiny",
                        init_checkpoint=None, eval_split="validation", **params)


def test_a_retrieval_cell_lists_only_what_it_reads(tmp_path):
    cell = _start("retrieval", tmp_path, task="tatoeba-sample", eval_languages=["de"])
    table = phases.recipe_table(cell, [cell.task("tatoeba-sample")])
    assert list(table.index) == list(phases.RETRIEVAL_KEYS)
    assert "learning_rate" not in table.index and "epochs" not in table.index


def test_small_values_read_right(tmp_path):
    cell = _start("target", tmp_path, task="synth-nli", train_task="synth-nli", seed=0,
                  train_size=None, subsample_seed=0, eval_languages=None)
    table = phases.recipe_table(cell, [cell.task("synth-nli")])
    assert table.loc["adam_epsilon", "value"] == "1e-08"
    assert table.loc["learning_rate", "value"] == "1e-05"
    assert "<td>1e-08</td>" in table.to_html()


def test_the_unusable_column_only_when_some_split_has_unusable_rows(tmp_path):
    cell = _start("retrieval", tmp_path, task="tatoeba-sample", eval_languages=["de"])
    row = {"source": "raw", "location": "x", "fingerprint": "f", "rows": 10, "unusable": {}}
    cell.data = {"t/de/validation": row, "t/zh/validation": row}
    assert list(phases.data_table(cell, ["source", "rows", "unusable"]).columns) == [
        "source", "rows"]
    cell.data["t/zh/validation"] = {**row, "unusable": {"no gold label": 3}}
    table = phases.data_table(cell, ["source", "rows", "unusable"])
    assert list(table["unusable"]) == ["-", "no gold label: 3"]


@pytest.mark.parametrize(("values", "top"), [
    ([0.3, 1.2], 2.0), ([0.4], 1.0), ([12.0, None], 20.0), ([37.0], 40.0), ([39.0], 100.0),
    ([float("nan"), 3.0], 5.0), ([], 100.0)])
def test_score_axis_top(values, top):
    assert plots.score_ceiling(values) == top


def test_retrieval_panel_near_one_percent_is_readable():
    frame = pd.DataFrame({"accuracy_en_xx": [1.3, 0.7], "accuracy_xx_en": [1.0, 0.3]},
                         index=pd.Index(["de", "zh"], name="language"))
    fig = retrieval.plot(frame, "accuracy")
    ax = fig.axes[0]
    assert ax.get_ylim()[1] == pytest.approx(2.0 * 1.08)
    assert sorted(t.get_text() for t in ax.texts) == ["0.3", "0.7", "1.0", "1.3"]
    table = pd.DataFrame({"accuracy": [1.5, 60.0]},
                         index=pd.Index(["en", "de"], name="language"))
    assert plots.language_scores(table, "accuracy").axes[0].get_ylim()[1] == 108.0
    assert phases._shown_value(14 / 24) == "0.5833" and phases._shown_value(1e-08) == "1e-08"
    assert phases._shown_value(0.0005) == "0.0005" and phases._shown_value(True) == "True"
