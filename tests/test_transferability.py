"""Transferability estimators against hand-computed values, planted-vs-random ranking, the
opt-in plan cells and the report's predicted-vs-measured tables (issue 26)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xtl.analysis import transferability_report as R
from xtl.core.errors import ConfigError
from xtl.core.hparams import Hparams
from xtl.evaluation import transferability as T
from xtl.grid import config, estimate, plan, run, rundir, throughput

# The worked example (two well-separated classes in 2-D), its values computed by hand from
# the definitions with numpy (and checked against the reference LogME code's copy in
# hf-dataset-selector 0.2.1, to 4 decimals).
F = np.array([[1, 0], [0.9, 0.2], [1.1, -0.1], [0, 1], [0.1, 0.8], [-0.1, 1.2]])
Y = np.array([0, 0, 0, 1, 1, 1])


def gaussian_log_likelihood(f, t, alpha, beta):
    """log N(t; 0, I/beta + F F^T / alpha): the evidence of LogME's model, integrated
    directly (w ~ N(0, I/alpha) marginalised out)."""
    cov = np.eye(len(t)) / beta + f @ f.T / alpha
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0
    return -0.5 * (len(t) * math.log(2 * math.pi) + logdet + t @ np.linalg.solve(cov, t))


def test_evidence_of_a_two_row_case_by_hand():
    # f = [1, 0], t = [1, 0], alpha = beta = 1: A = 2, m = 1/2, |f m - t|^2 = 1/4, m^2 = 1/4
    # L = -1/2 log 2 - 1/8 - 1/8 - log 2 pi
    hand = -0.5 * math.log(2) - 0.25 - math.log(2 * math.pi)
    f, t = np.array([[1.0], [0.0]]), np.array([1.0, 0.0])
    assert T.logme_evidence(f, t, 1.0, 1.0) == pytest.approx(hand, abs=1e-12)
    assert gaussian_log_likelihood(f, t, 1.0, 1.0) == pytest.approx(hand, abs=1e-12)


def test_logme_of_the_worked_example():
    classes = T.logme_classes(F, Y)
    assert classes[0].value == pytest.approx(0.0664, abs=1e-4)
    assert classes[1].value == pytest.approx(-0.3201, abs=1e-4)
    assert (classes[0].alpha, classes[0].beta) == pytest.approx((2.067, 105.6), rel=1e-3)
    assert (classes[1].alpha, classes[1].beta) == pytest.approx((2.224, 32.18), rel=1e-3)
    assert T.logme(F, Y) == pytest.approx(-0.1268, abs=1e-4)


@pytest.mark.parametrize("shape, rank", [((6, 2), 2), ((40, 5), 5), ((10, 12), 3)])
def test_logme_is_the_maximum_of_the_exact_evidence(shape, rank):
    # the last: N < D, so the D - rank directions where A is alpha alone count
    rng = np.random.default_rng(3)
    y = np.arange(shape[0]) % 2
    f = rng.normal(size=(shape[0], rank)) @ rng.normal(size=(rank, shape[1]))
    f += np.outer(y, f[1] - f[0])  # some signal: the optimum is inside, not at alpha = inf
    for c, ev in T.logme_classes(f, y).items():
        assert ev.iterations < T.LOGME_ITERATIONS and not ev.exact_fit
        t = (y == c).astype(float)
        exact = gaussian_log_likelihood(f, t, ev.alpha, ev.beta)
        assert ev.value * shape[0] == pytest.approx(exact, abs=1e-8)
        # a stationary point: nudging alpha or beta either way does not raise the evidence
        for da, db in ((1.001, 1), (0.999, 1), (1, 1.001), (1, 0.999)):
            assert gaussian_log_likelihood(f, t, ev.alpha * da, ev.beta * db) <= exact + 1e-9


def test_logme_says_when_labels_are_fit_exactly():
    # N rows of rank N: every target is in the column space, the noise estimate runs off
    f = np.random.default_rng(0).normal(size=(5, 8))
    assert all(e.exact_fit for e in T.logme_classes(f, np.array([0, 1, 0, 1, 1])).values())
    assert not any(e.exact_fit for e in T.logme_classes(F, Y).values())


def test_hscore_of_a_one_dimensional_case_by_hand():
    # class means 1, 1, 5, 5: var 16/3; var of f = 20/3 (both ddof 1): H = 0.8
    f, y = np.array([[0.0], [2.0], [4.0], [6.0]]), np.array([0, 0, 1, 1])
    assert T.hscore(f, y) == pytest.approx(0.8, abs=1e-12)


def test_hscore_of_the_worked_example():
    assert T.hscore(F, Y) == pytest.approx(0.9961, abs=1e-4)
    assert T.hscore_shrunk(F, Y) == pytest.approx(1.1074, abs=1e-4)


def test_ledoit_wolf_matches_scikit_learn():
    from sklearn.covariance import LedoitWolf

    f = np.random.default_rng(0).normal(size=(60, 12)) @ np.diag(np.linspace(0.2, 3, 12))
    f = f - f.mean(axis=0)
    cov, shrinkage = T.ledoit_wolf(f)
    lw = LedoitWolf().fit(f)
    assert shrinkage == pytest.approx(lw.shrinkage_, abs=1e-12)
    np.testing.assert_allclose(cov, lw.covariance_, atol=1e-12)


def test_knn_by_hand():
    # points 0, 1, 10, 11, 12.5 labelled a a b b a: leave-one-out 1-NN gets 0, 1, 10, 11
    # right (their neighbour shares the label) and 12.5 wrong (its neighbour 11 is b)
    f = np.array([[0.0], [1], [10], [11], [12.5]])  # as angles (cosine)
    f = np.stack([np.cos(f[:, 0] / 20), np.sin(f[:, 0] / 20)], axis=1)
    assert T.knn_accuracy(f, np.array([0, 0, 1, 1, 0]), k=1) == pytest.approx(0.8)


def test_each_estimator_ranks_a_planted_representation_above_a_random_one():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 300)
    planted = np.eye(3)[y] @ rng.normal(size=(3, 32)) + 0.8 * rng.normal(size=(300, 32))
    random = rng.normal(size=(300, 32))
    good, bad = T.score_all(planted, y), T.score_all(random, y)
    for name in T.ESTIMATORS:
        assert good[name] > bad[name], name
    assert good["knn"] > 0.9 and bad["knn"] < 0.5


@pytest.mark.parametrize("f, y, match", [
    (np.zeros((4, 2)), np.zeros(4, dtype=int), "2 classes"),
    (np.zeros(4), np.array([0, 1, 0, 1]), "2-D"),
    (np.zeros((4, 2)), np.array([0.0, 1, 0, 1]), "integers"),
    (np.full((4, 2), np.nan), np.array([0, 1, 0, 1]), "NaN"),
])
def test_bad_inputs_are_refused(f, y, match):
    with pytest.raises(ValueError, match=match):
        T.logme(f, y)


# --------------------------------------------------------------------------- the plan

BASE = {"xtl": 1, "models": ["tiny"], "intermediate": ["none", "synth-nli", "synth-qa"],
        "targets": ["synth-nli", "synth-ner", "tatoeba"], "seeds": [0, 1]}


def _plan(**changes):
    exp = config.parse({**BASE, **changes})
    exp.values["name"] = "t"
    return exp, plan.build(exp)


def test_plan_without_the_option_is_unchanged_and_with_it_only_adds_cells():
    _, off = _plan()
    _, on = _plan(transferability=True)
    assert all(c.kind != "transferability" for c in off.cells)
    added = [c for c in on.cells if c.kind == "transferability"]
    assert [c for c in on.cells if c.kind != "transferability"] == off.cells
    # one per (model, checkpoint the target starts from, non-retrieval target): stages are
    # seeded (2 seeds x 2 stages) + the base model, x 2 targets; tatoeba gets none
    assert len(added) == (2 * 2 + 1) * 2
    assert {c.axes["target"] for c in added} == {"synth-nli", "synth-ner"}
    stage_ids = {c.id for c in on.cells if c.kind == "stage"}
    assert {c.parent for c in added} == stage_ids | {None}
    # estimates come right after the stages, before any target
    kinds = [c.kind for c in on.cells]
    assert kinds.index("target") > max(i for i, k in enumerate(kinds) if k == "transferability")


def test_estimate_cells_do_not_depend_on_target_training_settings():
    _, a = _plan(transferability=True, hparams={"target.learning_rate": 1e-4})
    _, b = _plan(transferability=True, hparams={"target.learning_rate": 3e-4})
    ids = {c.id for c in a.cells if c.kind == "transferability"}
    assert ids == {c.id for c in b.cells if c.kind == "transferability"}
    targets = {c.id for c in a.cells if c.kind == "target"}
    assert targets.isdisjoint(c.id for c in b.cells if c.kind == "target")
    _, c = _plan(transferability={"rows": 50})
    assert ids.isdisjoint(x.id for x in c.cells if x.kind == "transferability")


@pytest.mark.parametrize("value, match", [
    ({"rows": 1}, "rows must be an integer >= 2"), ({"bogus": 3}, "bogus"),
    ("yes", "true, false or a mapping"), ({"language_rows": -1}, "language_rows")])
def test_bad_transferability_settings(value, match):
    with pytest.raises(ConfigError, match=match):
        _plan(transferability=value)


def test_runner_injects_the_notebook_parameters_and_estimate_counts_the_rows(tmp_path):
    from test_notebooks import _names

    exp, built = _plan(transferability={"rows": 100, "language_rows": 10},
                       targets=["synth-nli"], intermediate=["none"], seeds=[0])
    (cell,) = [c for c in built.cells if c.kind == "transferability"]
    params = run.notebook_parameters(cell, rundir.RunDir(tmp_path), built, exp)
    assert set(params) == _names("transferability")
    assert params["transferability"] == {"rows": 100, "language_rows": 10, "max_units": 20000}
    assert config.parse({**BASE, "transferability": True})["transferability"]["rows"] == 2000
    work = estimate.cell_work(cell, exp, lambda task, split, lang: 1000)
    assert [(i.split, i.rows) for i in work.eval] == \
        [("train", 100)] + [("validation", 10)] * len(cell.evaluation["languages"])
    assert work.train == [] and work.model_loads == 1
    tp = throughput.parse_throughput({"overhead_s": 5, "models": {"tiny": {
        "load_s": 1, "rates": {"default": {"train": 10, "eval": 100}}}}}, "test")
    parts = estimate.cell_seconds(work, tp)
    assert parts["eval"] == pytest.approx((100 + 10 * len(cell.evaluation["languages"])) / 100)
    assert "no training; embeds 100 English training rows" in plan.work(cell, exp, None)


def test_finished_estimate_cell_counts_as_done_only_with_its_estimates(tmp_path):
    exp, built = _plan(transferability=True, targets=["synth-nli"], intermediate=["none"],
                       seeds=[0])
    (cell,) = [c for c in built.cells if c.kind == "transferability"]
    run_dir = rundir.RunDir(tmp_path)
    metrics = run_dir.cell(cell.id) / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"records": []}))
    assert not rundir.outputs_complete(run_dir, cell)
    metrics.write_text(json.dumps({"records": [], "estimates": []}))
    assert rundir.outputs_complete(run_dir, cell)


# --------------------------------------------------------------------------- the report

def test_rank_correlations_match_scipy_with_ties():
    from scipy.stats import kendalltau, spearmanr

    rng = np.random.default_rng(1)
    for _ in range(20):
        x, y = rng.integers(0, 4, 7).astype(float), rng.integers(0, 4, 7).astype(float)
        if np.ptp(x) and np.ptp(y):
            assert R.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
            assert R.kendall(x, y) == pytest.approx(kendalltau(x, y).statistic)


def test_correlations_regret_and_bootstrap():
    est, gain = np.array([3.0, 2.0, 1.0, 0.0]), np.array([1.0, 2.0, 0.5, -1.0])
    assert R.spearman(est, gain) == pytest.approx(0.8)
    assert R.kendall(est, gain) == pytest.approx(4 / 6)
    assert R.regret_at(est, gain, 1) == pytest.approx(1.0)  # picked 1.0, best was 2.0
    assert R.regret_at(est, gain, 2) == 0.0
    low, high, usable = R.bootstrap(est, gain, R.spearman, samples=500)
    assert -1 <= low <= 0.8 <= high <= 1 and 0 < usable < 500  # some resamples degenerate
    assert np.isnan(R.spearman(np.ones(3), gain[:3]))


def _fake_run(root: Path, measured: bool) -> None:
    """A run directory with estimate cells (and target cells when `measured`)."""
    cells = []
    logme = {"none": 0.10, "a": 0.30, "b": 0.20}
    gains = {"none": 0.0, "a": 2.0, "b": 5.0}  # the estimate puts a first; b gained most
    for i, inter in enumerate(logme):
        cid = f"transferability-{i}"
        cells.append({"id": cid, "kind": "transferability", "label": cid,
                      "identity": {}, "parent": None,
                      "axes": {"model": "m", "intermediate": inter, "target": "synth-nli",
                               "seed": None, "train_size": None}})
        est = [{"task": "synth-nli", "data": "synth-nli", "language": lang, "split": split,
                "estimator": name, "value": logme[inter] + (0.01 if name != "logme" else 0)
                + (0.05 if lang == "de" else 0), "n": 10, "rows": 10, "unit": "sentence",
                "classes": 3}
               for lang, split in (("en", "train"), ("de", "validation"))
               for name in T.ESTIMATORS]
        (root / "cells" / cid).mkdir(parents=True)
        (root / "cells" / cid / "metrics.json").write_text(json.dumps(
            {"records": [], "estimates": est}))
        if measured:
            tid = f"target-{i}"
            cells.append({"id": tid, "kind": "target", "label": tid, "parent": None,
                          "identity": {"hparams": {}},
                          "axes": {"model": "m", "intermediate": inter, "target": "synth-nli",
                                   "seed": 0, "train_size": None}})
            (root / "cells" / tid).mkdir(parents=True)
            (root / "cells" / tid / "metrics.json").write_text(json.dumps({"records": [
                {"task": "synth-nli", "language": lang, "split": "validation",
                 "metric": "accuracy", "value": 50 + gains[inter] + (1 if lang == "de" else 0)}
                for lang in ("de", "fr")]}))
    (root / "plan.json").write_text(json.dumps({"experiment": "fake", "cells": cells}))


def test_report_sets_predictions_beside_measured_gains(tmp_path):
    _fake_run(tmp_path, measured=True)
    section = R.section(tmp_path)
    tables = dict(section.tables)
    compared = tables["Predicted vs measured (English training sample)"]
    assert list(compared["intermediate"]) == ["a", "b", "none"]  # by predicted rank
    assert list(compared["measured gain"]) == [2.0, 5.0, 0.0]
    assert list(compared["logme"]) == ["0.3000", "0.2000", "0.1000"]  # shown to 4 decimals
    agree = tables["Agreement between estimate and measured gain"]
    row = agree[agree["estimator"] == "LogME"].iloc[0]
    assert row["spearman"] == pytest.approx(0.5) and row["kendall"] == pytest.approx(1 / 3)
    assert row["regret@1"] == pytest.approx(3.0) and row["regret@2"] == 0.0
    langs = [t for name, t in section.tables if name.startswith("Per language")][0]
    de = langs[(langs["language"] == "de") & (langs["intermediate"] == "a")].iloc[0]
    assert de["predicted (LogME - none)"] == "0.2000"
    assert de["measured gain"] == pytest.approx(2.0)
    assert "No measured gains" not in section.text


def test_report_without_measured_gains_shows_predictions_alone(tmp_path):
    _fake_run(tmp_path, measured=False)
    section = R.section(tmp_path)
    assert "No measured gains yet" in section.text
    tables = dict(section.tables)
    assert "Agreement between estimate and measured gain" not in tables
    assert tables["Predicted vs measured (English training sample)"]["measured gain"] \
        .isna().all()


def test_report_is_absent_without_estimates(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps({"experiment": "x", "cells": []}))
    assert R.section(tmp_path) is None
    assert isinstance(R.load_estimates(tmp_path), pd.DataFrame)


# --------------------------------------------------------------------------- the cell

@pytest.mark.parametrize("task, unit", [
    # generating synthetic NLI rows takes a minute on 2 cores; QA ~10 s
    pytest.param("synth-nli", "sentence (first token)", marks=pytest.mark.slow),
    ("synth-ner", "labelled sub-token"),
    pytest.param("synth-qa", "token of an answer window", marks=pytest.mark.slow)])
def test_cell_embeds_each_format_and_writes_its_estimates(tmp_path, tiny_dir, one_thread,
                                                          task, unit):
    import torch

    from xtl.cells import phases
    from xtl.data import tasks

    target = tasks.get(task)
    train_task = target.train_task or task
    langs = [lang for lang in target.languages if lang != "en"][:2]

    def estimate_once(where):
        cell = phases.start(
            "transferability", "t-1", str(where), str(where),
            {"precision": "fp32", "batch_size": 8, "max_length": 64, "doc_stride": 32},
            model="tiny", task=task, train_task=train_task, init_checkpoint=None,
            eval_languages=langs, subsample_seed=0,
            transferability={"rows": 24, "language_rows": 6})
        cell.load_encoder()
        torch.manual_seed(0)
        results = cell.run_all()
        return cell, results, cell.finish()

    cell, results, doc = estimate_once(tmp_path / "a")
    assert [r["language"] for r in results] == ["en"] + langs
    assert results[0]["rows"] == 24 and all(r["rows"] == 6 for r in results[1:])
    est = doc["estimates"]
    assert doc["records"] == [] and len(est) == (1 + len(langs)) * len(T.ESTIMATORS)
    assert {e["unit"] for e in est} == {unit}
    assert all(np.isfinite(e["value"]) and e["n"] >= 6 for e in est)
    if task != "synth-nli":  # many units per row: tokens
        assert all(e["n"] > e["rows"] for e in est)
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["estimates"] == est and saved["kind"] == "transferability"
    # deterministic on CPU: the same parameters give the same numbers
    _, _, again = estimate_once(tmp_path / "b")
    assert [e["value"] for e in again["estimates"]] == [e["value"] for e in est]


def test_qa_units_mark_one_start_per_answer_window(tiny_dir):
    from xtl.cells import transferability_cell
    from xtl.data import features, sources, tasks
    from xtl.model.models import build

    task = tasks.get("synth-qa")
    net, tok, _ = build(tiny_dir, [])
    split = sources.load(tasks.get(task.train_task or task.name), "train", "en")
    split.rows = split.rows.select(range(8))
    hp = Hparams({"max_length": 64, "doc_stride": 32, "input_prefix": ""})
    feats = features.features(task, split, tok, hp, train=True, cache=False)
    units = transferability_cell.embed_units(net.encoder, tok, "span_qa", feats)
    windows = sum(1 for f in feats if f["start_positions"] > 0)
    assert int(np.sum(units.labels == 1)) == windows
    assert int(np.sum(units.labels == 2)) <= windows
    assert units.features.shape == (len(units.labels), net.encoder.config.hidden_size)
