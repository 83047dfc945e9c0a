"""The results table, aggregation, gains, seed statistics and the paired bootstrap, checked on a
hand-written run directory against hand computations."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xtl.analysis import explore, parameter_counts, reports, results, sections, uncertainty
from xtl.core import chance
from xtl.core.errors import DataError
from xtl.grid import index

HP = {"epochs": 2}

# synth-ner, German, three sentences (gold, baseline prediction, intermediate prediction).
# Per-sentence (correct, predicted, gold) chunk counts: baseline A (1,1,1), B (0,0,1),
# C (1,2,2); the intermediate predicts every sentence right.
NER = [
    (["B-PER", "O"], ["B-PER", "O"], ["B-PER", "O"]),
    (["B-LOC", "O"], ["O", "O"], ["B-LOC", "O"]),
    (["B-PER", "O", "B-ORG"], ["B-PER", "O", "B-LOC"], ["B-PER", "O", "B-ORG"]),
]
BASE_F1 = 100 * 4 / 7  # 2 * 2 correct / (3 predicted + 4 gold)


def _cell(cid, kind, model, inter, target, seed, size=None, parent=None, languages=("en",)):
    return {"id": cid, "kind": kind, "notebook": kind, "label": f"{model} | {inter} -> {target}",
            "identity": {"kind": kind, "task": target, "hparams": HP, "seed": seed},
            "parent": parent, "evaluation": {"split": "validation", "languages": list(languages)},
            "axes": {"model": model, "intermediate": inter, "target": target, "seed": seed,
                     "train_size": size}}


def _write(root: Path, cell: dict, records: list[dict], collapsed: bool = False,
           predictions: dict[str, list[dict]] | None = None) -> None:
    folder = root / "cells" / cell["id"]
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"schema": "xtl.metrics/1", "cell": cell["id"], "kind": cell["kind"], "params": {},
           "records": [{"split": "validation", "n": 3, "flags": [], **r} for r in records],
           "flags": ["collapsed"] if collapsed else [],
           "provenance": {"training": {"collapsed": collapsed}}}
    (folder / "metrics.json").write_text(json.dumps(doc))
    (folder / "status.json").write_text(json.dumps({"cell": cell["id"], "state": "done"}))
    for name, lines in (predictions or {}).items():
        (folder / "predictions").mkdir(exist_ok=True)
        (folder / "predictions" / name).write_text(
            "".join(json.dumps(line) + "\n" for line in lines))


def _acc(task, lang, value):
    return {"task": task, "language": lang, "metric": "accuracy", "value": value}


def _ner_lines(column: int) -> list[dict]:
    return [{"id": f"de-validation-{i:07d}", "task": "synth-ner", "language": "de",
             "split": "validation", "prediction": row[column], "reference": row[0]}
            for i, row in enumerate(NER)]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """tiny: synth-nli on two seeds, synth-ner with predictions, xquad and xnli records."""
    root = tmp_path / "run"
    stage = {**_cell("stage-a", "stage", "tiny", "synth-nli", None, 0), "axes": {
        "model": "tiny", "intermediate": "synth-nli", "seed": 0}}
    stage["identity"]["tasks"] = ["synth-nli"]
    cells = [stage]
    nli = {("none", 0): (60, 40, False), ("none", 1): (70, 30, False),
           ("synth-nli", 0): (80, 60, False), ("synth-nli", 1): (90, 30, True)}
    for (inter, seed), (en, de, collapsed) in nli.items():
        cell = _cell(f"target-nli-{inter}-{seed}", "target", "tiny", inter, "synth-nli", seed,
                     parent="stage-a" if inter != "none" else None, languages=("en", "de"))
        cells.append(cell)
        _write(root, cell, [_acc("synth-nli", "en", en), _acc("synth-nli", "de", de)],
               collapsed)
    for inter, column, f1 in (("none", 1, BASE_F1), ("synth-nli", 2, 100.0)):
        cell = _cell(f"target-ner-{inter}", "target", "tiny", inter, "synth-ner", 0,
                     parent="stage-a" if inter != "none" else None, languages=("de",))
        cells.append(cell)
        _write(root, cell, [{"task": "synth-ner", "language": "de", "metric": "f1",
                             "value": f1},
                            {"task": "synth-ner", "language": "de", "metric": "token_accuracy",
                             "value": 90.0}],
               predictions={"synth-ner.de.validation.jsonl": _ner_lines(column)})
    qa = {"none": {"en": (60, 80), "de": (40, 60)}, "synth-nli": {"en": (70, 90),
                                                                 "de": (50, 70)}}
    for inter, langs in qa.items():
        cell = _cell(f"target-xquad-{inter}", "target", "tiny", inter, "xquad", 0,
                     languages=tuple(langs))
        cells.append(cell)
        _write(root, cell, [{"task": "xquad", "language": lang, "metric": m, "value": v}
                            for lang, (em, f1) in langs.items()
                            for m, v in (("exact_match", em), ("f1", f1))])
        cell = _cell(f"target-xnli-{inter}", "target", "tiny", inter, "xnli", 0)
        cells.append(cell)
        _write(root, cell, [_acc("xnli", "en", 80 if inter == "none" else 84)])
    cell = _cell("retrieval-r", "retrieval", "tiny", "none", "synth-retrieval", 0,
                 languages=("de",))
    cells.append(cell)
    _write(root, cell, [{**_acc("synth-retrieval", "de", 10.0), "n": 50}])
    (root / "plan.json").write_text(json.dumps({"experiment": "rq_scale_test", "mirror": None,
                                                "cells": cells}))
    return root


def test_table_columns_and_axes(run_dir: Path) -> None:
    table = results.load(run_dir)
    assert list(table.columns[:17]) == list(results.COLUMNS[:17])
    assert table["cell"].nunique() == 11  # stages carry no evaluation rows
    row = table[(table["cell"] == "target-nli-synth-nli-1") & (table["language"] == "de")].iloc[0]
    assert (row["tier"], row["tier_group"], row["script"]) == (5, "high", "Latn")
    assert row["chain"] == "synth-nli" and row["intermediate_data"] == "english"
    assert bool(row["collapsed"]) and row["value"] == 30
    assert json.loads(row["hparams"]) == HP
    ner = table[table["cell"] == "target-ner-none"]
    assert ner["predictions"].iloc[0].endswith("synth-ner.de.validation.jsonl")


def test_parquet_round_trip(run_dir: Path, tmp_path: Path) -> None:
    table = results.load(run_dir)
    back = pd.read_parquet(results.save(table, tmp_path / "r.parquet"))
    assert back.shape == table.shape
    assert back["value"].sum() == pytest.approx(table["value"].sum())


def test_aggregation_gains_and_seed_stats(run_dir: Path) -> None:
    table = results.load(run_dir)
    tasks = results.task_scores(table)
    nli = tasks[tasks["target"] == "synth-nli"].set_index(["intermediate", "seed"])["score"]
    assert nli.to_dict() == {("none", 0): 50, ("none", 1): 50, ("synth-nli", 0): 70,
                             ("synth-nli", 1): 60}
    # xquad: (EM + F1) / 2 per language, mean over the official languages present
    xquad = tasks[tasks["target"] == "xquad"].set_index("intermediate")
    assert xquad.loc["none", "score"] == pytest.approx(((60 + 80) / 2 + (40 + 60) / 2) / 2)
    assert bool(xquad.loc["none", "partial"]) and xquad.loc["none", "benchmark_task"] == "xquad"
    gains = results.gains(tasks)
    g = gains[gains["target"] == "synth-nli"].set_index("seed")["gain"]
    assert g.to_dict() == {0: 20, 1: 10}
    stats = results.seed_stats(gains[gains["target"] == "synth-nli"], "gain").iloc[0]
    assert (stats["mean"], stats["min"], stats["seeds"]) == (15, 10, 2)
    assert stats["std"] == pytest.approx(np.std([20, 10], ddof=1))
    scores = results.seed_stats(tasks[tasks["target"] == "synth-nli"]).set_index(
        "intermediate")
    assert scores.loc["synth-nli", "collapsed"] == 1
    assert scores.loc["synth-nli", "mean"] == 65 and scores.loc["synth-nli", "mean_ok"] == 70
    matrix = results.gain_matrix(gains[gains["seed"] == 0])
    assert matrix.loc["synth-nli", "xnli"] == 4
    assert matrix.loc["synth-nli", "avg"] == pytest.approx(np.mean([4, 10, 20, 300 / 7]))


def test_benchmark_scores(run_dir: Path) -> None:
    bench = results.benchmark_scores(results.task_scores(results.load(run_dir)))
    row = bench.set_index("intermediate").loc["none"]
    # xnli 80 (classification) and xquad 60 (qa): XTREME = mean over tasks present
    assert row["overall"] == 70 and row["classification"] == 80 and row["qa"] == 60
    assert row["tasks"] == 2 and "tatoeba" in row["missing"]
    assert results.gains(bench, "overall").set_index("intermediate").loc[
        "synth-nli", "gain"] == pytest.approx(((84 - 80) + (70 - 60)) / 2)


def test_bootstrap_interval_matches_the_exhaustive_distribution() -> None:
    """Hand computation: over the 27 equally likely resamples of the three sentences the
    baseline F1 = 2(a + c) / (2a + b + 4c) (a, b, c copies of A, B, C); the intermediate is
    always 100. Sorted gains: 0 x1, 20 x3, 25 x3, 40 x3, 300/7 x6, 50 x4, 500/9 x3, 200/3 x3,
    100 x1, so the 10% and 90% quantiles are 20 and 200/3."""
    base = [[1, 1, 1], [0, 0, 1], [1, 2, 2]]
    gains = []
    for pick in itertools.product(range(3), repeat=3):
        c, p, g = np.sum([base[i] for i in pick], axis=0)
        gains.append(100 - 200 * c / (p + g))
    assert sorted(set(np.round(gains, 4))) == pytest.approx(
        [0, 20, 25, 40, 300 / 7, 50, 500 / 9, 200 / 3, 100], abs=1e-4)
    assert np.quantile(gains, [0.1, 0.9]) == pytest.approx([20, 200 / 3])
    inter = np.array([[1, 1, 1], [1, 1, 1], [2, 2, 2]], float)
    result = uncertainty.paired_bootstrap({"de": [np.array(base, float)]}, {"de": [inter]},
                                          uncertainty.CHUNK_F1, samples=4000, level=0.8)
    assert result.gain == pytest.approx(300 / 7)
    assert (result.low, result.high) == pytest.approx((20, 200 / 3))


def test_gain_intervals_from_prediction_files(run_dir: Path) -> None:
    scores = results.language_scores(results.load(run_dir))
    ner = scores[scores["target"] == "synth-ner"]
    ci = uncertainty.gain_intervals(ner, samples=4000, level=0.8)
    row = ci[ci["language"] == "all"].iloc[0]
    assert row["gain"] == pytest.approx(300 / 7)
    assert (row["low"], row["high"]) == pytest.approx((20, 200 / 3))
    # records without predictions: no interval, and the note says why
    nli = uncertainty.gain_intervals(scores[scores["target"] == "synth-nli"], samples=10)
    assert nli["low"].isna().all() and "no predictions file" in nli["note"].iloc[0]


def test_stale_predictions_are_refused(run_dir: Path) -> None:
    path = run_dir / "cells" / "target-ner-none" / "metrics.json"
    doc = json.loads(path.read_text())
    doc["records"][0]["value"] = 50.0
    path.write_text(json.dumps(doc))
    scores = results.language_scores(results.load(run_dir))
    row = scores[(scores["cell"] == "target-ner-none")].iloc[0]
    with pytest.raises(DataError, match="stale"):
        uncertainty.load_counts(row)


def test_accuracy_and_qa_counts() -> None:
    from xtl.data.tasks import get

    lines = [{"id": "1", "prediction": "neutral", "reference": "neutral"},
             {"id": "2", "prediction": "neutral", "reference": "entailment"}]
    ids, counts = uncertainty.example_counts(get("synth-nli"), lines)
    assert ids == ["1", "2"] and uncertainty.ACCURACY.value(counts.sum(0)) == 50
    qa = [{"id": "q1", "prediction": "the cat", "reference": ["cat"]},
          {"id": "q2", "prediction": "a dog runs", "reference": ["dog"]}]
    _, counts = uncertainty.example_counts(get("synth-qa"), qa, "en")
    # q1: EM 1, F1 1; q2: EM 0, F1 2*(1/2*1)/(1/2+1) = 2/3 -> (EM 50 + F1 83.33) / 2
    assert uncertainty.QA.value(counts.sum(0)) == pytest.approx((50 + 100 * 5 / 6) / 2)
    hits = [{"id": "a", "prediction": {"en_xx": "a", "xx_en": "b"}, "reference": "a"}]
    _, counts = uncertainty.example_counts(get("synth-retrieval"), hits)
    assert counts.tolist() == [[1.0, 1.0]]


def test_intermediate_data_kinds() -> None:
    assert results.intermediate_data("none") == "none"
    assert results.intermediate_data("mnli>squad") == "english"
    assert results.intermediate_data("synth-nli_mt_de") == "translated"
    assert results.intermediate_data("synth-nli_mt_de+synth-nli_mt_zh") == "multilingual"
    assert results.intermediate_data("synth-nli+synth-nli_mt_de") == "mixed"


def test_parameter_count_from_checkpoint_header(run_dir: Path) -> None:
    from safetensors.numpy import save_file

    encoder = run_dir / "checkpoints" / "target-ner-none" / "best" / "encoder"
    encoder.mkdir(parents=True)
    save_file({"a": np.zeros((3, 4), np.float32), "b": np.zeros(5, np.float32)},
              str(encoder / "model.safetensors"))
    assert parameter_counts.parameter_count("tiny", [run_dir]) == 17
    assert parameter_counts.parameter_count("xlm-roberta-large") == 560_000_000
    assert parameter_counts.parameter_count("no-such-model") is None


def test_chance_levels(run_dir: Path) -> None:
    chance = sections.chance_levels(results.language_scores(results.load(run_dir), qa="f1"))
    level = chance.set_index(["target", "language"])
    assert level.loc[("synth-nli", "de"), "chance"] == pytest.approx(100 / 3)
    assert level.loc[("synth-retrieval", "de"), "chance"] == 2.0  # pool of 50
    assert level.loc[("synth-ner", "de"), "kind"] == "bar"
    assert level.loc[("xquad", "en"), "chance"] == 30  # QA shown by F1: the F1 bar


def test_one_chance_level_for_cells_and_report() -> None:
    """A target cell's figure and the report ask `xtl.core.chance.level`; a level that depends on
    the rows (a random ranking's mAP@20, the format's `chance` hook) is averaged there."""
    ranking = type("Task", (), {"format": "dual_encoder", "label_names": None})()
    level, kind, _ = chance.level(ranking, "map@20", 0, [0.4, 0.6])
    assert (level, kind) == (pytest.approx(0.5), "ranking")
    assert np.isnan(chance.level(ranking, "map@20", 0, [0.4, None])[0])  # a split without one
    assert chance.level(ranking, "f1", 0)[:2] == (chance.F1_BAR, "bar")


def test_report_sections_and_index(run_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    analysis = reports.Analysis.load(run_dir, samples=50)
    sections = analysis.sections()
    titles = [s.title for s in sections]
    assert "Zero-shot scores per language, against chance" in titles
    assert analysis.zero_shot().text == "" and analysis.uncertainty().text == ""  # markdown
    scale = next(s for s in sections if s.title.startswith("(a)"))  # asked by the name
    assert scale.figure is None and "Not shown: 1 model" in scale.text
    assert all(s.caption and "From" in s.caption for s in sections if s.figure is not None)
    index.write_index(run_dir)
    page = (run_dir / "index.html").read_text()
    assert "f1 57.1 (de)" in page and "training collapsed" in page
    assert "accuracy 70.0 (mean of 2 languages; en 80.0)" in page


def test_explorer_filters(run_dir: Path) -> None:
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    scores = results.language_scores(results.load(run_dir))
    part = explore.filter_table(scores, target=["synth-nli"], seed=[1])
    assert set(part["cell"]) == {"target-nli-none-1", "target-nli-synth-nli-1"}
    box = explore.explorer(scores)
    assert [p.description for p in box.children[0].children] == list(explore.EXPLORER_AXES)


def _sized(run_dir: Path) -> pd.DataFrame:
    """synth-nli on two models (1 M and 100 M parameters), a low-tier language (sw) and, for
    the big model, a second training size (500)."""
    table = results.load(run_dir)
    table = table[table["target"] == "synth-nli"]
    low = table[table["language"] == "de"].assign(language="sw", tier=2, tier_group="low",
                                                  value=lambda f: f["value"] - 5)
    small = pd.concat([table, low]).assign(parameters=1_000_000)
    big = small.assign(model="big", parameters=100_000_000, cell=small["cell"] + "-big",
                       value=small["value"] + 3)
    return pd.concat([small, big, big.assign(train_size=500, cell=big["cell"] + "-500")])


def test_question_figures_with_two_models_and_tiers(run_dir: Path) -> None:
    """With two model sizes, two seeds and high- and low-tier languages every question's
    figure is drawn (the synthetic previews cannot show these; a hand-made table can)."""
    import matplotlib

    matplotlib.use("Agg")
    analysis = reports.Analysis(_sized(run_dir), samples=10)
    for key in ("scale", "lowresource", "scale_lowresource", "robustness"):
        section = analysis.question(key)
        assert section is not None and section.figure is not None, key
    assert analysis._missing("lowresource") == ""
    gap = dict(analysis.question("scale_lowresource").tables[0][1]
               .query("intermediate == 'none' and seed == 0")[["model", "gap"]].values)
    assert gap == {"tiny": 5.0, "big": 5.0}  # de (high) minus sw (low), English left out


def test_per_language_figures_keep_models_and_sizes_apart(run_dir: Path) -> None:
    """Several models and training sizes: one panel per (model, target, size), never an
    average across them (the rq_lowresource preview crashed here on duplicate intervals)."""
    import matplotlib

    matplotlib.use("Agg")
    analysis = reports.Analysis(_sized(run_dir), samples=10)
    gains = analysis.per_language_gains().figure
    titles = [ax.get_title(loc="left") for ax in gains.axes]
    assert titles == [f"{m}, synth-nli, {n}: gain over no intermediate task, per language"
                      for m, n in (("tiny", "full training data"), ("big", "full training data"),
                                   ("big", "500 training examples"))]
    # the bars of each panel are its own gains: big = tiny (+3 on both sides), mean of seeds
    tiny = [round(b.get_height(), 6) for b in gains.axes[0].patches]
    assert tiny == [20.0, 10.0, 10.0]  # en (80-60, 90-70), de (60-40, 30-30), sw = de - 5
    assert len(analysis.zero_shot().figure.axes) == 3


def test_collapsed_baseline_and_stage_are_flagged(run_dir: Path) -> None:
    """A gain over a collapsed baseline, or from a collapsed intermediate stage, is flagged."""
    stage = run_dir / "cells" / "stage-a"
    stage.mkdir(parents=True)
    (stage / "metrics.json").write_text(json.dumps(
        {"records": [], "flags": ["collapsed"], "provenance": {"training": {"collapsed": True}}}))
    stages = results.collapsed_stages(run_dir)
    assert set(stages) == {"target-nli-synth-nli-0", "target-nli-synth-nli-1",
                           "target-ner-synth-nli"}
    assert stages["target-ner-synth-nli"] == ["tiny | synth-nli -> None"]
    table = results.load(run_dir)
    table.loc[table["cell"] == "target-nli-none-1", "collapsed"] = True
    gains = results.gains(results.task_scores(table))
    flagged = gains.set_index(["target", "seed"])["baseline_collapsed"]
    assert flagged[("synth-nli", 1)] and not flagged[("synth-nli", 0)]
    assert not flagged[("xnli", 0)]
    text = reports.Analysis(table, samples=10, stages=stages).main_table()[0].text
    assert ("baseline's training collapsed** (one class for every example) in 1 of 5 "
            "baseline runs (tiny -> synth-nli)") in text
    assert "intermediate stage training collapsed** (tiny | synth-nli -> None)" in text


def test_translated_question_draws_from_intervals(run_dir: Path) -> None:
    """Question (b): English and translated intermediate data side by side, task and per
    language, with the paired-bootstrap intervals."""
    import matplotlib

    matplotlib.use("Agg")
    table = results.load(run_dir)
    nli = table[table["target"] == "synth-nli"]
    moved = nli[nli["intermediate"] == "synth-nli"].assign(
        intermediate="synth-nli_mt_de", intermediate_data="translated",
        cell=lambda f: f["cell"] + "-de", value=lambda f: f["value"] - 10)
    analysis = reports.Analysis(pd.concat([nli, moved]), samples=10)
    assert analysis._missing("translated") == ""
    section = analysis.question("translated")
    left, right = section.figure.axes[:2]
    heights = [round(b.get_height(), 6) for b in left.patches]
    assert heights == [15.0, 5.0]  # seeds' (70-50, 60-50); the translated copy is 10 lower
    assert right.get_xticklabels()[0].get_text() == "en" and len(right.patches) == 4
    assert "95% paired-bootstrap interval" in section.caption


def test_lowresource_without_tiers_draws_sizes_and_says_what_is_missing(run_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    table = results.load(run_dir)
    nli = table[table["target"] == "synth-nli"]
    sized = pd.concat([nli, nli.assign(train_size=500, cell=nli["cell"] + "-500")])
    analysis = reports.Analysis(sized.assign(run="rq_lowresource_x"), samples=10)
    section = analysis.question("lowresource")
    assert section.figure is not None
    assert section.text.startswith("**Not shown: the tier contrast (evaluated languages fall "
                                   "in tier band(s) high only")
    row = analysis.questions().tables[0][1].set_index("question").loc[
        "(c) Gain vs target training size per language tier", "this run"]
    assert row.startswith("partly (gain vs size, no tier contrast)")


def test_tables_read_as_a_report() -> None:
    frame = pd.DataFrame({"intermediate": ["a+b" * 9, "<x>"], "train_size":
                          pd.array([None, 500], dtype="Int64"), "std": [float("nan"), 1.25]})
    page = reports.html_table(frame)
    assert ">full<" in page and ">500<" in page and ">-<" in page and ">1.25<" in page
    assert "a+<br>b" in page and "&lt;x&gt;" in page
    assert page.count("<th>") == 3 and "<td>1.25</td>" in page  # no positional index
    assert "td:nth-child(1)" in page and "td:nth-child(3)" not in page  # text left-aligned
    intervals = pd.DataFrame([
        {"model": "m", "intermediate": "x", "target": "t", "train_size": pd.NA,
         "language": lang, "gain": g, "low": lo, "high": hi, "note": ""}
        for lang, g, lo, hi in (("all", 2.62, -0.04, 5.25), ("de", 1.0, float("nan"),
                                                               float("nan")))])
    intervals.loc[1, "note"] = "no predictions file"
    wide = sections.interval_table(intervals)
    assert wide.loc[0, "all"] == "+2.6 [+0.0,\u00a0+5.2]"
    assert wide.loc[0, "de"] == "no interval: no predictions file"
