"""`xtl plan --estimate`: the work counted from a plan, the seconds from throughput figures
(checked against a hand computation), the throughput file's errors, and the calibration cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from xtl import cli
from xtl.core import errors
from xtl.core.errors import ConfigError
from xtl.grid import calibrate, calibrate_probes, config, estimate, plan, throughput

EXP = {"xtl": 1, "name": "est", "models": ["tiny"], "intermediate": ["none", "synth-nli"],
       "targets": ["synth-ner", "synth-retrieval"], "train_sizes": [100],
       "eval_languages": ["de", "fr"], "hparams": {"batch_size": 10},
       "tasks": {"synth-nli": {"epochs": 2}, "synth-ner": {"epochs": 3}}}
# Hand-written row counts: every train split 1,000 rows, dev 200, each evaluated language 150.
ROWS = {"train": 1000, "validation": 200}
FIGURES = {"device": "cuda", "overhead_s": 5, "run_s": 10,
           "models": {"tiny": {"load_s": 2, "checkpoint_s": 1, "snapshot_s": 0.5, "rates": {
               "pair_classification": {"train": 100, "eval": 400},
               "tagging": {"train": 50, "eval": 200},
               "retrieval": {"eval": 100}}}}}


def count(task, split, language):
    return 150 if language != "en" else ROWS[split]


@pytest.fixture
def built():
    exp = config.parse(EXP)
    exp.values["name"] = "est"
    grid = plan.build(exp)
    return exp, grid, {c.id: estimate.cell_work(c, exp, count) for c in grid.cells}


def by_label(grid, works, text):
    (cell,) = [c for c in grid.cells if c.label.startswith(text)]
    return works[cell.id]


def test_work_counts_rows_epochs_evaluations_and_writes(built):
    exp, grid, works = built
    stage = by_label(grid, works, "tiny | synth-nli | seed 0")
    # 1,000 rows x 2 epochs; batch 10: 100 steps an epoch, 200 in all, dev after each epoch,
    # plus the notebook's final dev evaluation of the best checkpoint; `best` at each of the
    # two evaluations and `last`; a resume snapshot at each evaluation
    assert [i.rows for i in stage.train] == [2000]
    assert (stage.dev_evals, stage.checkpoint_writes, stage.snapshots, stage.model_loads) == (
        3, 3, 2, 2)
    target = by_label(grid, works, "tiny | synth-nli -> synth-ner")
    # train size 100 x 3 epochs (the task's own epochs), 10 steps an epoch, 3 dev evaluations
    assert [i.rows for i in target.train] == [300]
    assert (target.dev_evals, target.checkpoint_writes, target.snapshots) == (3, 4, 3)
    assert [(i.language, i.rows) for i in target.eval] == [("de", 150), ("fr", 150)]
    retrieval = by_label(grid, works, "tiny | none -> synth-retrieval")
    assert (retrieval.train, retrieval.dev_evals, retrieval.checkpoint_writes,
            retrieval.snapshots, retrieval.model_loads) == ([], 0, 0, 0, 1)


def test_seconds_match_a_hand_computation(built):
    exp, grid, works = built
    tp = throughput.parse_throughput(FIGURES, "test")
    est = estimate.estimate(grid, works, tp, gpus_per_cell=2)
    seconds = {c.label.split(" | seed")[0]: est.seconds[c.id] for c in grid.cells}
    # stage: 5 + 2 loads x 2 + 3 checkpoints x 1 + 2 snapshots x 0.5 = 13 fixed;
    # 2,000 / 100 = 20 train; 3 dev evaluations x 200 / 400 = 1.5
    assert seconds["tiny | synth-nli"] == pytest.approx(34.5)
    # target: 5 + 4 + 4 + 1.5 = 14.5 fixed; 300 / 50 = 6 train; 3 x 200 / 200 = 3 dev;
    # 2 languages x 150 / 200 = 1.5 eval
    assert seconds["tiny | none -> synth-ner"] == pytest.approx(25.0)
    assert seconds["tiny | synth-nli -> synth-ner"] == pytest.approx(25.0)
    # retrieval: 5 + 2 = 7 fixed; 2 languages x 150 / 100 = 3
    assert seconds["tiny | none -> synth-retrieval"] == pytest.approx(10.0)
    assert est.total() == pytest.approx(34.5 + 2 * 25.0 + 2 * 10.0)
    # two workers: stage 0-34.5 | none->ner 0-25, none->ret 25-35, then the stage's
    # dependants: nli->ner 34.5-59.5, nli->ret 35-45
    assert estimate.wall_time(grid, est.seconds, slots=2) == pytest.approx(59.5)
    assert estimate.wall_time(grid, est.seconds, slots=1) == pytest.approx(104.5)
    reuse = estimate.reuse(grid, est.seconds)
    assert (reuse.stages, reuse.trainings_without) == (1, 2)
    assert reuse.saved == pytest.approx(34.5)
    text = estimate.summary(est)
    assert "5 cells, 1 min 45 s of cell time (fixed 56 s, train 32 s, dev 8 s, eval 9 s)" in text
    assert "about 1 min 55 s (1 cell(s) at a time, + 10 s" in text  # 104.5 + run_s 10
    assert "GPU hours: 0.06 (2 GPU(s) per cell)" in text  # 104.5 s x 2 GPUs
    assert "saves 35 s (25% of the grid without reuse" in text  # 34.5 / 139


def test_done_cells_cost_nothing_still_to_run(built):
    exp, grid, works = built
    tp = throughput.parse_throughput(FIGURES, "test")
    stage = next(c.id for c in grid.cells if c.kind == "stage")
    est = estimate.estimate(grid, works, tp, pending={c.id for c in grid.cells} - {stage})
    assert est.total(est.pending) == pytest.approx(104.5 - 34.5)
    assert "still to run: 4 cells, 1 min 10 s" in estimate.summary(est)


def test_rate_lookup_task_before_format_before_default(built):
    exp, grid, works = built
    target = by_label(grid, works, "tiny | none -> synth-ner")
    doc = json.loads(json.dumps(FIGURES))
    rates = doc["models"]["tiny"]["rates"]
    rates["synth-ner"] = {"train": 25}
    rates["default"] = {"train": 1, "eval": 300}
    del rates["tagging"]
    tp = throughput.parse_throughput(doc, "test")
    ner = target.train[0].task
    assert tp.rate("tiny", ner, "train", target.hp) == 25  # the task's own figure
    assert tp.rate("tiny", ner, "eval", target.hp) == 300  # default: no task or format entry
    del rates["default"]
    with pytest.raises(ConfigError, match=r"no eval rate for model 'tiny', task 'synth-ner' "
                                          r"\(format 'tagging'\); give models.tiny.rates"):
        throughput.parse_throughput(doc, "test").rate("tiny", ner, "eval", target.hp)
    with pytest.raises(ConfigError, match="no figures for model 'tinny'.*it has: tiny"):
        tp.model("tinny")


@pytest.mark.parametrize("text, message", [
    ("- 1\n- 2\n", "the file must be a mapping"),
    ("modles: {}\n", "unknown top-level key in .* 'modles' \\(did you mean 'models'\\?\\)"),
    ("models: {}\n", "models is empty"),
    ("device: tpu\nmodels: {tiny: {rates: {}}}\n", "unknown device .* 'tpu'"),
    ("models: {tiny: {rates: {tagging: {train: -3}}}}\n",
     "models.tiny.rates.tagging.train = -3; expected a finite number > 0 \\(examples/s\\)"),
    ("models: {tiny: {rates: {tagging: {train: .nan}}}}\n", "train = nan; expected a finite"),
    ("models: {tiny: {rates: {tagging: {train: true}}}}\n", "train = True; expected"),
    ("models: {tiny: {rates: {tagging: {trian: 3}}}}\n", "'trian' \\(did you mean 'train'\\?\\)"),
    ("models: {tiny: {load_s: fast, rates: {}}}\n", "models.tiny.load_s = 'fast'"),
    ("models: {tiny: {rates: [1, 2]}}\n", "models.tiny.rates must be a mapping"),
    ("models: {tiny: {rates: {tagging: {train: 3}}\n", r"tp.yaml:\d+:\d+: malformed YAML"),
])
def test_bad_throughput_file_names_the_value(tmp_path, text, message):
    path = tmp_path / "tp.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        throughput.load_throughput(path)


def test_missing_throughput_file(tmp_path):
    with pytest.raises(ConfigError, match="throughput file .*nope.yaml' does not exist"):
        throughput.load_throughput(tmp_path / "nope.yaml")


def test_cpu_cells_sharing_the_cores_slow_the_compute_not_the_fixed_part(built):
    exp, grid, works = built
    tp = throughput.parse_throughput(FIGURES | {"device": "cpu"}, "test")
    est = estimate.estimate(grid, works, tp, slots=2, shared=2)
    # stage 13 fixed + 21.5 compute -> 13 + 43 = 56; targets 14.5 + 10.5 -> 35.5;
    # retrieval 7 + 3 -> 13. Two workers: stage 0-56 | none->ner 0-35.5, none->ret 35.5-48.5,
    # then nli->ner 56-91.5 and nli->ret 56-69
    assert estimate.wall_time(grid, estimate.slowed(est.parts, 2), 2) == pytest.approx(91.5)
    assert "about 1 min 42 s (2 cell(s) at a time, each on 1/2 of the cores, + 10 s" in \
        estimate.summary(est)  # 91.5 + run_s 10
    on_gpu = estimate.estimate(grid, works, throughput.parse_throughput(FIGURES, "test"),
                               slots=2, shared=2)
    assert on_gpu.shared == 1  # GPU figures: the CPU's cores are not what is shared


def test_cli_takes_the_cells_at_a_time_from_the_executor(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("xtl.grid.executors.local.visible_gpus", lambda: [])
    exp_path = tmp_path / "est.yaml"
    exp_path.write_text(json.dumps(EXP | {"executor": {"kind": "local", "cpu_cells": 2}}))
    tp_path = tmp_path / "tp.json"
    tp_path.write_text(json.dumps(FIGURES | {"device": "cpu"}))
    cli.main(["plan", str(exp_path), "--throughput", str(tp_path), "--out", str(tmp_path / "r")])
    assert "(2 cell(s) at a time, each on 1/2 of the cores" in capsys.readouterr().out
    exp_path.write_text(json.dumps(EXP | {"executor": "local"}))
    cli.main(["plan", str(exp_path), "--throughput", str(tp_path), "--out", str(tmp_path / "r")])
    assert "(1 cell(s) at a time, +" in capsys.readouterr().out
    monkeypatch.setattr("xtl.grid.executors.local.visible_gpus", lambda: [0, 1, 2, 3])
    exp_path.write_text(json.dumps(EXP | {"executor": {"kind": "local", "cpu_cells": 2}}))
    tp_path.write_text(json.dumps(FIGURES))
    cli.main(["plan", str(exp_path), "--throughput", str(tp_path), "--out", str(tmp_path / "r")])
    assert "(4 cell(s) at a time, +" in capsys.readouterr().out  # one per GPU


def test_cli_prints_per_cell_times_and_totals(tmp_path, capsys):
    exp_path = tmp_path / "est.yaml"
    exp_path.write_text(json.dumps(EXP))
    tp_path = tmp_path / "tp.json"  # JSON is fine too
    tp_path.write_text(json.dumps(FIGURES))
    cli.main(["plan", str(exp_path), "--throughput", str(tp_path), "--out", str(tmp_path / "r"),
              "--slots", "2"])
    out = capsys.readouterr().out
    # real row counts (the generators' sizes): stage 1,200 x 2 / 100 = 24 s train, 3 x 300 / 400
    assert "time: about 39 s (fixed 13 s, train 24 s, dev 2 s)" in out
    assert out.count("time: about") == 5
    assert "(2 cell(s) at a time" in out and "checkpoint reuse: 1 stage training instead of 2" \
        in out
    with pytest.raises(SystemExit) as stop:
        cli.main(["plan", str(exp_path), "--throughput", str(tmp_path / "missing.yaml")])
    assert stop.value.code == 2


def test_calibration_measures_once_then_reads_its_cache(tmp_path, monkeypatch, one_thread):
    exp = config.parse({"xtl": 1, "name": "cal", "models": ["tiny"], "targets": ["synth-nli"],
                        "train_sizes": [40], "eval_languages": ["de"],
                        "hparams": {"batch_size": 8, "max_length": 32, "epochs": 1}})
    grid = plan.build(exp)
    works = estimate.plan_work(grid, exp, None)
    monkeypatch.setenv("XTL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(calibrate, "kernel_overhead", lambda: 6.5)
    monkeypatch.setattr(calibrate_probes, "SAMPLE_ROWS", 48)
    monkeypatch.setattr(calibrate_probes, "EVAL_ROWS", 24)
    logged: list[str] = []
    tp = calibrate.calibrate(works, None, None, log=logged.append)
    assert tp.overhead_s == 6.5 and tp.device == "cpu"
    fig = tp.models["tiny"]
    assert fig.load_s > 0 and fig.checkpoint_s > 0 and fig.snapshot_s > 0
    (work,) = works.values()
    task = work.train[0].task
    train_rate = tp.rate("tiny", task, "train", work.hp)
    eval_rate = tp.rate("tiny", task, "eval", work.hp)
    assert 1 < train_rate < 1e6 and 1 < eval_rate < 1e6
    assert any("calibration took" in line for line in logged)

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(calibrate, "_measure_group", no_measuring)
    logged.clear()
    again = calibrate.calibrate(works, None, None, log=logged.append)
    assert again.rate("tiny", task, "train", work.hp) == train_rate and not logged


def test_the_readme_example_file_is_valid():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("```yaml\ndevice: cuda") + len("```yaml\n")
    tp = throughput.parse_throughput(yaml.safe_load(readme[start:readme.index("```", start)]),
                                   "README")
    fig = tp.models["xlm-roberta-large"]
    assert (tp.device, tp.overhead_s, fig.load_s, fig.checkpoint_s, fig.snapshot) == (
        "cuda", 7.0, 8.0, 6.0, 6.0)  # no snapshot_s: a snapshot costs a checkpoint write
    assert fig.rates["xnli"] == {"train": 150.0}


def test_the_driver_and_workers_start_without_transformers():
    """Issue 14's lazy imports: the registry, `data.mlm` and `model.models` import transformers
    only where a collator, head or model is made, so `xtl plan` and each worker skip ~1-2 s."""
    import subprocess
    import sys

    code = ("import sys, xtl.grid.worker, xtl.grid.run, xtl.grid.estimate; "
            "print(sorted(m for m in ('transformers', 'accelerate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


BIG = {"xtl": 1, "name": "big", "models": ["xlm-roberta-large"], "targets": ["synth-nli"],
       "train_sizes": [40], "eval_languages": ["de"]}


def test_estimate_without_the_weights_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    """A login node: the model is not downloaded. `--estimate` refuses before measuring
    anything, in one line naming the model and the commands that fix it; `--throughput`
    needs no weights."""
    from xtl.model import zoo

    monkeypatch.setattr(zoo, "_hub_available", lambda hub_id: False)
    monkeypatch.setenv("XTL_CACHE", str(tmp_path / "cache"))

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured without the weights")

    monkeypatch.setattr(calibrate, "kernel_overhead", no_measuring)
    monkeypatch.setattr(calibrate, "_measure_group", no_measuring)
    exp_path = tmp_path / "big.yaml"
    exp_path.write_text(json.dumps(BIG))
    with pytest.raises(SystemExit) as stop:
        cli.main(["plan", str(exp_path), "--estimate", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1
    assert "weights of model 'xlm-roberta-large' are not here" in err
    assert "`hf download xlm-roberta-large`" in err and "--throughput" in err
    tp_path = tmp_path / "tp.yaml"
    tp_path.write_text(yaml.safe_dump({"models": {"xlm-roberta-large": {
        "rates": {"default": {"train": 10, "eval": 50}}}}}))
    cli.main(["plan", str(exp_path), "--throughput", str(tp_path), "--out", str(tmp_path / "r")])
    assert "time: about" in capsys.readouterr().out


def test_cached_calibration_figures_need_no_weights(tmp_path, monkeypatch):
    """Figures measured earlier on this machine (the cache) estimate a grid whose model is no
    longer here: only figures still to measure need the weights."""
    from xtl.model import zoo

    monkeypatch.setattr(zoo, "_hub_available", lambda hub_id: False)
    monkeypatch.setenv("XTL_CACHE", str(tmp_path / "cache"))
    exp = config.parse(BIG)
    grid = plan.build(exp, require_models=False)
    works = estimate.plan_work(grid, exp, None)
    needs = calibrate._needs(works)
    models = {}
    for (identity, _, _), wanted in needs.items():
        models[identity] = {"load_s": 9.0, "checkpoint_s": 4.0, "snapshot_s": 6.0, "rates": {}}
        for key, kind in wanted:
            models[identity]["rates"].setdefault(key, {})[kind] = 7.0
    path = calibrate.cache_path(calibrate.machine())
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": calibrate.CALIBRATION_VERSION, "overhead_s": 3.0,
                                "models": models}))
    tp = calibrate.calibrate(works, None, None, log=lambda *_: None)
    assert tp.models["xlm-roberta-large"].load_s == 9.0 and tp.overhead_s == 3.0
    (work,) = works.values()
    assert tp.rate("xlm-roberta-large", work.train[0].task, "train", work.hp) == 7.0
    del models[next(iter(models))]["rates"][next(iter(needs[next(iter(needs))]))[0]]
    path.write_text(json.dumps({"version": calibrate.CALIBRATION_VERSION, "overhead_s": 3.0,
                                "models": models}))
    with pytest.raises(errors.ModelError, match="weights of model 'xlm-roberta-large'"):
        calibrate.calibrate(works, None, None, log=lambda *_: None)
