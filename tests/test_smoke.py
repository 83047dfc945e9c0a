"""Smoke runs (`xtl run FILE --smoke`) and planning without the model's weights."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import yaml

from xtl import cli
from xtl.core import provenance, smokecaps
from xtl.core.errors import ConfigError, ModelError
from xtl.data import sources, tasks
from xtl.grid import config, plan, run, rundir, smoke
from xtl.model import zoo

MISSING_MODEL = "org/not-downloaded-model"

GRID = """\
xtl: 1
name: grid
models: [{model}]
intermediate: [none, synth-nli]
targets: [synth-nli, tatoeba-sample]
seeds: [0]
hparams: {{epochs: 3, batch_size: 4, max_length: 48, learning_rate: 1.0e-3, precision: fp32}}
"""


def write(tmp_path: Path, model: str = MISSING_MODEL, text: str = GRID) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text.format(model=model))
    return path


# --- caps --------------------------------------------------------------------------------------

def test_caps_are_off_outside_a_smoke_run(monkeypatch):
    monkeypatch.delenv(smokecaps.SMOKE_ENV, raising=False)
    rows = datasets.Dataset.from_dict({"x": list(range(50))})
    assert smokecaps.active() is None
    assert len(smokecaps.cap_rows(rows)) == 50
    assert smokecaps.cap_steps(1234) == 1234


def test_caps_cut_rows_and_steps(monkeypatch):
    monkeypatch.setenv(smokecaps.SMOKE_ENV, smokecaps.Caps(7, 3).to_env())
    rows = datasets.Dataset.from_dict({"x": list(range(50))})
    assert smokecaps.cap_rows(rows)["x"] == list(range(7))  # the first N, in order
    assert smokecaps.cap_steps(1234) == 3
    assert smokecaps.cap_steps(2) == 2


def test_loader_caps_every_split(monkeypatch):
    task = tasks.get("synth-nli")
    full = sources.load(task, "validation", "de")
    monkeypatch.setenv(smokecaps.SMOKE_ENV, smokecaps.Caps(5, 2).to_env())
    capped = sources.load(task, "validation", "de")
    assert len(full.rows) > 5 and len(capped.rows) == 5
    assert capped.rows.to_list() == full.rows.select(range(5)).to_list()
    # the feature cache is keyed by the fingerprint: a capped split must never pass for the full
    assert capped.fingerprint != full.fingerprint


def test_provenance_records_caps_and_substitutions(monkeypatch):
    monkeypatch.delenv(smokecaps.SMOKE_ENV, raising=False)
    assert "smoke" not in provenance.collect()
    subs = {"models": {"from": ["xlm-roberta-large"], "to": ["tiny"]}}
    monkeypatch.setenv(smokecaps.SMOKE_ENV, smokecaps.Caps(8, 2, subs).to_env())
    assert provenance.collect()["smoke"] == {"rows": 8, "steps": 2, "substitutions": subs}


# --- the smoke file and directory -----------------------------------------------------------

def test_smoke_document_substitutes_and_records(tmp_path, monkeypatch):
    monkeypatch.setattr(smoke, "usable_cores", lambda: 1)  # the executor: next test
    path = write(tmp_path)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    doc, subs = smoke.smoke_document(path, "tiny", str(mirror), None)
    assert doc["models"] == ["tiny"] and doc["mirror"] == str(mirror.resolve())
    assert subs == {"models": {"from": [MISSING_MODEL], "to": ["tiny"]},
                    "mirror": {"from": None, "to": str(mirror.resolve())}}
    assert doc["keep_checkpoints"] == "none"
    with pytest.raises(ConfigError, match="--raw-dir"):
        smoke.smoke_document(path, None, None, str(tmp_path / "absent"))


@pytest.mark.parametrize("value, cores, gpus, expected", [
    (None, 2, [], {"kind": "local", "cpu_cells": 2}),
    ("local", 16, [], {"kind": "local", "cpu_cells": smoke.MAX_CPU_CELLS}),
    ({"kind": "local", "gpus": "auto"}, 3, [], {"kind": "local", "gpus": "auto", "cpu_cells": 3}),
    ({"kind": "local", "cpu_cells": 1}, 8, [], None),   # the file's explicit choice is kept
    ("local", 8, [[0]], None),                          # a GPU: cells run on it
    ("local", 1, [], None),                             # one core: nothing to share
    ({"kind": "slurm", "partition": "gpu"}, 8, [], None),
])
def test_without_a_gpu_smoke_cells_share_the_cores(tmp_path, monkeypatch, value, cores, gpus,
                                                    expected):
    monkeypatch.setattr(smoke, "usable_cores", lambda: cores)
    monkeypatch.setattr(smoke, "gpu_groups", lambda spec, per_cell: gpus)
    path = write(tmp_path)
    if value is not None:
        path.write_text(path.read_text() + yaml.safe_dump({"executor": value}))
    doc, subs = smoke.smoke_document(path, None, None, None)
    if expected is None:
        assert "executor" not in subs and doc.get("executor") == value
    else:
        assert doc["executor"] == expected
        assert subs["executor"] == {"from": value, "to": expected}  # recorded in provenance
        config.parse(doc, source="smoke")  # and valid


def test_smoke_dir_is_beside_the_real_one(tmp_path):
    exp = config.load(write(tmp_path))
    real = run.output_dir(exp, None)
    assert smoke.smoke_dir(exp, None) == real.with_name(real.name + "-smoke")
    assert smoke.smoke_dir(exp, None) != real


def test_smoke_never_writes_into_a_real_run_directory(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "plan.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a smoke run"):
        smoke.run(write(tmp_path, "tiny"), real)
    assert sorted(p.name for p in real.iterdir()) == ["plan.json"]


def test_smoke_options_need_smoke(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", str(write(tmp_path, "tiny")), "--model", "tiny"])
    assert exit_.value.code == 2
    assert "--model only apply to a smoke run" in capsys.readouterr().err


def test_missing_data_names_the_split(tmp_path, hub_mirror):
    text = GRID.replace("[synth-nli, tatoeba-sample]", "[xnli, panx, bucc2018]").replace(
        "[none, synth-nli]", "[none, ccg]")
    exp = config.load(write(tmp_path, "tiny", text))
    built = plan.build(exp)
    found = {c.label: (c, *smoke.missing_data(c, exp, hub_mirror, None)) for c in built.cells}
    assert found["tiny | ccg | seed 0"][1].startswith("missing split ccg/en/train: ")
    assert found["tiny | none -> xnli | seed 0"][1:] == (None, "")
    # evaluation languages absent from the mirror are dropped from the cell, and named
    cell, why, note = found["tiny | none -> panx | seed 0"]
    assert why is None and "missing split panx/validation in " in note and "he" in note
    assert "he" not in cell.evaluation["languages"] and "de" in cell.evaluation["languages"]
    # no language at all: the cell is missing
    why = found["tiny | none -> bucc2018"][1]
    assert why.startswith("missing split bucc2018/validation in every language (de, fr, ru, zh)")


def test_table_lists_each_cell_with_its_reason(tmp_path):
    result = smoke.SmokeResult(tmp_path, smokecaps.Caps(16, 2, {
        "models": {"from": ["xlm-roberta-large"], "to": ["tiny"]}}), [
        smoke.Outcome("s1", "stage", "tiny | ccg | seed 0", "missing",
                      "missing split ccg/en/train: no raw_dir"),
        smoke.Outcome("t1", "target", "tiny | ccg -> xnli", "skipped",
                      "its stage 'tiny | ccg | seed 0' missing: ..."),
        smoke.Outcome("t2", "target", "tiny | none -> xnli", "passed"),
        smoke.Outcome("t3", "target", "tiny | none -> panx", "failed", "ValueError: boom"),
    ], seconds=12.0)
    text = smoke.table(result, "x.yaml")
    head, *lines = text.splitlines()
    assert head.startswith("SMOKE RUN of x.yaml (16 rows per split, at most 2 optimizer steps")
    assert "models: ['xlm-roberta-large'] -> ['tiny']" in head
    assert "1 passed, 1 missing, 1 failed, 1 skipped of 4 cells" in head
    assert lines == [
        "  MISSING  stage     tiny | ccg | seed 0: missing split ccg/en/train: no raw_dir",
        "  SKIPPED  target    tiny | ccg -> xnli: its stage 'tiny | ccg | seed 0' missing: ...",
        "  passed   target    tiny | none -> xnli",
        "  FAILED   target    tiny | none -> panx: ValueError: boom"]
    assert result.crashed
    md = smoke.table(result, "x.yaml", markdown=True)
    assert "| `t3` | target | tiny / none -> panx | failed | ValueError: boom |" in md


# --- planning without the model -------------------------------------------------------------

def test_plan_needs_no_model_weights(tmp_path, capsys):
    path = write(tmp_path)
    with pytest.raises(ModelError):
        zoo.validate(MISSING_MODEL)
    cli.main(["plan", str(path), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "experiment 'grid': " in out
    assert f"model {MISSING_MODEL!r} is not a preset" in out
    assert f"hf download {MISSING_MODEL}" in out
    # the ids are those of the run where the model is present
    exp = config.load(path)
    assert plan.build(exp, require_models=False).cells[0].identity["model"] == \
        f"hub:{MISSING_MODEL}"


def test_plan_ids_do_not_depend_on_the_weights(tmp_path, monkeypatch):
    exp = config.load(write(tmp_path))
    without = [c.id for c in plan.build(exp, require_models=False).cells]
    monkeypatch.setattr(zoo, "_hub_available", lambda name: True)
    assert [c.id for c in plan.build(exp).cells] == without


@pytest.mark.parametrize("argv", [["plan", "--check"], ["run"]])
def test_check_and_run_refuse_without_the_model(tmp_path, capsys, argv):
    path = write(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        cli.main([argv[0], str(path), "--out", str(tmp_path / "out"), *argv[1:]])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"hf download {MISSING_MODEL}" in err
    assert not (tmp_path / "out" / "plan.json").exists()


# --- a smoke run end to end (papermill kernels) ---------------------------------------------

@pytest.mark.slow
def test_smoke_run_end_to_end(tmp_path):
    path = write(tmp_path)  # the file's model is not here: --model replaces it
    out = tmp_path / "out-smoke"
    lines: list[str] = []
    result = smoke.run(path, out, rows=6, steps=2, model="tiny", log=lines.append)
    assert [o.state for o in result.outcomes] == ["passed"] * len(result.outcomes), lines
    assert [o.kind for o in result.outcomes] == ["stage", "target", "retrieval", "target",
                                                 "retrieval"]
    marker = json.loads((out / "smoke.json").read_text())
    assert marker["substitutions"]["models"] == {"from": [MISSING_MODEL], "to": ["tiny"]}
    assert "SMOKE RUN" in (out / "index.html").read_text()
    assert yaml.safe_load((out / "experiment.yaml").read_text())["models"] == ["tiny"]
    for cell_dir in (out / "cells").iterdir():
        doc = json.loads((cell_dir / "metrics.json").read_text())
        prov = doc["provenance"]
        assert prov["smoke"]["rows"] == 6 and prov["smoke"]["substitutions"] == \
            marker["substitutions"]
        assert all(d["rows"] <= 6 for d in prov["data"].values())
        if prov.get("training"):
            assert prov["training"]["steps"] <= 2
    assert any(line.startswith("SMOKE RUN of") and "5 passed" in line for line in lines)
    assert (out / "smoke.md").read_text().startswith("SMOKE RUN of")
    if "executor" in marker["substitutions"]:  # 2+ cores, no GPU: cells ran side by side
        where = {json.loads((d / "status.json").read_text())["where"]
                 for d in (out / "cells").iterdir()}
        assert where <= {f"local cpu {i}" for i in range(smoke.MAX_CPU_CELLS)}, where
        assert any(line.endswith(" on local cpu 1") for line in lines), lines


# --- the reduced paper grid on the real samples (../shared; skipped in a fresh clone) ----------

REDUCED = """\
xtl: 1
name: reduced
models: [xlm-roberta-large]
intermediate: [mnli, hellaswag]
targets: [xnli, panx, tydiqa, tatoeba]
seeds: [0]
hparams: {{precision: fp32}}
"""


@pytest.mark.slow
def test_smoke_reduced_grid_on_the_mirror(tmp_path, hub_mirror):
    """Intermediate formats classification (MNLI) and multiple choice (HellaSwag) x target
    formats classification, tagging, span QA and retrieval, on the real samples: every cell
    passes or names the data it lacks; evaluation languages the mirror lacks are named."""
    path = tmp_path / "reduced.yaml"
    path.write_text(REDUCED.format())
    raw = hub_mirror.parent / "raw"
    result = smoke.run(path, tmp_path / "out", rows=8, steps=1, model="tiny",
                       mirror=str(hub_mirror), raw_dir=str(raw), log=lambda *_: None)
    states = {o.label: o for o in result.outcomes}
    text = smoke.table(result, path)
    assert len(result.outcomes) == 2 + 2 * 4
    # no head, metric or notebook crashed: a cell either passes or names the data it lacks
    for o in result.outcomes:
        assert o.state == "passed" or o.reason.startswith(("DataError: ", "missing split ")), text
    for label in ("mnli | seed 0", "hellaswag | seed 0", "mnli -> xnli | seed 0",
                  "mnli -> panx | seed 0", "hellaswag -> xnli | seed 0",
                  "hellaswag -> panx | seed 0", "mnli -> tatoeba | seed 0",
                  "hellaswag -> tatoeba | seed 0"):
        assert states[f"tiny | {label}"].state == "passed", text
    # Gaps of the sample mirror the pre-check finds in the files (docs/smoke.md): the TyDiQA
    # sample has no English train row (its 2 rows are Finnish); Tatoeba's raw-only az lacks
    # both files, so that language is dropped from the cell, not a failure at load time
    for stage in ("mnli", "hellaswag"):
        tydi = states[f"tiny | {stage} -> tydiqa | seed 0"]
        assert tydi.state == "missing" and tydi.reason.startswith(
            "missing split tydiqa/en/train: tydiqa/en/train: none of the 2 rows read is in"), text
        assert " az," in states[f"tiny | {stage} -> tatoeba | seed 0"].reason, text
    # PAN-X lacks some languages in the sample mirror: evaluated on the rest, and named
    panx = states["tiny | mnli -> panx | seed 0"]
    assert "missing split panx/validation in " in panx.reason


def test_summarize_reads_an_interrupted_smoke_run(tmp_path):
    exp = config.load(write(tmp_path, "tiny"))
    built = plan.build(exp)
    root = tmp_path / "out-smoke"
    run_dir = rundir.RunDir(root)
    root.mkdir()
    stage, first, *rest = built.cells
    (root / "plan.json").write_text(json.dumps(built.to_json()))
    (root / "smoke.json").write_text(json.dumps({
        "smoke": True, "rows": 4, "steps": 1, "substitutions": {},
        "missing": {stage.id: "missing split synth-nli/en/train: gone"}}))
    run_dir.set_status(first.id, state="failed", label=first.label, error="KeyError: 'x'\nmore")
    with pytest.raises(ConfigError, match="not a smoke run"):
        smoke.summarize(tmp_path)
    result = smoke.summarize(root)
    states = [(o.state, o.reason) for o in result.outcomes]
    assert states[0] == ("missing", "missing split synth-nli/en/train: gone")
    assert states[1] == ("failed", "KeyError: 'x' more")
    assert {s for s, _ in states[2:]} == {"not run"}
    assert "not run" in smoke.table(result, "f.yaml").splitlines()[0]
