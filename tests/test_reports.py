"""Parameter files of the research questions, and the analysis / explorer notebooks rendered on
a hand-written run directory."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from test_results import run_dir  # noqa: F401  (the hand-written run directory fixture)

from xtl.analysis import questions, reports
from xtl.grid import config, plan
from xtl.grid.cell_report import readable

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = ("rq_scale", "rq_translated", "rq_lowresource", "rq_scale_lowresource",
             "rq_robustness")


@pytest.mark.parametrize("name", ("paper", *QUESTIONS))
def test_gpu_files_expand(name: str) -> None:
    """The GPU files parse and expand (Hub models cannot be checked offline)."""
    exp = config.load(REPO / "parameters" / f"{name}.yaml")
    built = plan.build(exp, check_models=False)
    assert len(built.cells) > 20
    assert "none" in {c.axes["intermediate"] for c in built.cells if c.kind != "stage"}


@pytest.mark.parametrize("name", QUESTIONS)
def test_previews_plan_offline(name: str) -> None:
    """Each question has an offline preview of the same question on `tiny` (no Hub)."""
    exp = config.load(REPO / "parameters" / "preview" / f"{name}.yaml")
    built = plan.build(exp)
    plan.preflight(built, exp)
    assert exp["models"] == ["tiny"] and len(built.cells) <= 8
    assert questions.asked_question(exp["name"]) == name.removeprefix("rq_")


def test_paper_file_has_the_nine_tasks_and_all_nine() -> None:
    exp = config.load(REPO / "parameters" / "paper.yaml")
    singles = [i for i in exp["intermediate"] if isinstance(i, str) and i != "none"]
    multi = [i for i in exp["intermediate"] if isinstance(i, list)]
    assert len(singles) == 9 and multi == [sorted(singles)]
    assert exp["models"] == ["xlm-roberta-large"]
    assert set(exp["targets"]) == set(reports.XTREME_TASKS)


def test_translated_preview_tasks_train_in_their_language() -> None:
    from xtl.data.tasks import get

    task = get("synth-nli_mt_de")
    assert task.train_language == "de" and task.label_names == get("synth-nli").label_names


@pytest.mark.parametrize("name", ("analysis", "explore"))
def test_notebooks_are_clean(name: str) -> None:
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].source.startswith("run_dir =")


def test_analysis_report_hides_its_code() -> None:
    """The analysis report reads as a report: nbconvert leaves out every code cell's source
    (`transient.remove_source`), papermill's injected parameters cell included (readable)."""
    nb = nbformat.read(REPO / "notebooks" / "analysis.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.metadata.get("transient", {}).get("remove_source") for c in code)
    nb.cells.insert(2, nbformat.v4.new_code_cell('run_dir = "runs/x"',
                                                 metadata={"tags": ["injected-parameters"]}))
    shown = [c for c in readable(nb).cells if c.cell_type == "code"]
    assert len(shown) == len(code)  # the defaults cell left out, the injected one in its place
    assert all(c.metadata.get("transient", {}).get("remove_source") for c in shown)


def test_analysis_markdown_carries_the_method() -> None:
    """What each section measures is the notebook's markdown, not Python strings: the fixed
    sections' headings and explanations are there, and their Section text is only what the
    run decides."""
    nb = nbformat.read(REPO / "notebooks" / "analysis.ipynb", as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for heading in ("Research questions this run can answer", "XTREME and XTREME-R scores",
                    "Zero-shot scores per language, against chance",
                    "Against shortcuts that need no model", "Gain per language, per target",
                    "Uncertainty: seeds, collapsed runs and bootstrap intervals"):
        assert f"### {heading}" in prose
    assert "(QA: (EM+F1)/2)" in prose and "paired bootstrap" in prose


@pytest.mark.slow
def test_analysis_and_explorer_notebooks_render(run_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """The analysis notebook renders every section on the hand-written run (figures saved,
    results.parquet written); the explorer executes headless."""
    import papermill as pm

    from xtl.grid.run import kernel_name, render_html

    kernel = kernel_name()
    out = run_dir / "analysis" / "analysis.ipynb"
    out.parent.mkdir(parents=True)
    pm.execute_notebook(str(REPO / "notebooks" / "analysis.ipynb"), str(out),
                        parameters={"run_dir": str(run_dir)}, kernel_name=kernel,
                        progress_bar=False, cwd=str(out.parent))
    render_html(out, out.parent / "report.html")
    page = (out.parent / "report.html").read_text()
    assert "Zero-shot scores per language, against chance" in page
    assert "reports.display" not in page and "celltag_injected-parameters" in page
    assert "Not shown: 1 model (tiny)" in page
    assert (run_dir / "analysis" / "results.parquet").is_file()
    assert (run_dir / "analysis" / "figures" / "zero_shot_scores.png").is_file()
    explored = tmp_path / "explore.ipynb"
    pm.execute_notebook(str(REPO / "notebooks" / "explore.ipynb"), str(explored),
                        parameters={"run_dir": str(run_dir)}, kernel_name=kernel,
                        progress_bar=False, cwd=str(tmp_path))
    cells = nbformat.read(explored, as_version=4).cells
    outputs = json.dumps(next(c for c in cells if c.get("id") == "e02").outputs)
    assert "evaluated cells" in outputs
