"""Experiment tracking (xtl.core.tracking): off by default, one key, cell id as run name, loud when
a tracker's package is missing, and no change to any cell id."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from accelerate.tracking import GeneralTracker

from xtl.core import tracking
from xtl.core.errors import ConfigError
from xtl.core.hparams import Hparams
from xtl.data import sources, tasks
from xtl.grid import config, plan, run
from xtl.model.models import build
from xtl.training import train

BASE = {"xtl": 1, "name": "t", "models": ["tiny"], "intermediate": ["none", "synth-nli"],
        "targets": ["synth-nli"]}


def test_off_by_default_and_parsed():
    assert config.parse(dict(BASE))["report_to"] == []
    assert config.parse(BASE | {"report_to": "tensorboard"})["report_to"] == ["tensorboard"]
    assert config.parse(BASE | {"report_to": ["wandb", "mlflow", "wandb"]})["report_to"] == [
        "wandb", "mlflow"]
    with pytest.raises(ConfigError, match="'tensorbord'.*did you mean 'tensorboard'"):
        config.parse(BASE | {"report_to": "tensorbord"})
    with pytest.raises(ConfigError, match="report_to is 3"):
        config.parse(BASE | {"report_to": 3})


def test_report_to_changes_no_cell_id():
    ids = [c.id for c in plan.build(config.parse(dict(BASE))).cells]
    tracked = config.parse(BASE | {"report_to": ["tensorboard", "wandb", "mlflow"]})
    assert [c.id for c in plan.build(tracked).cells] == ids


def test_a_missing_tracker_package_is_refused_at_plan_time(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    path = tmp_path / "exp.yaml"
    path.write_text("xtl: 1\nmodels: [tiny]\ntargets: [synth-nli]\nreport_to: wandb\n")
    with pytest.raises(ConfigError, match="report_to: wandb needs the package.*pip install wandb"):
        run.prepare(path, tmp_path / "out")
    path.write_text("xtl: 1\nmodels: [tiny]\ntargets: [synth-nli]\n")
    run.prepare(path, tmp_path / "out")  # without report_to nothing is checked


def test_scalars_name_each_task():
    assert tracking.scalars({"step": 3, "task": "a", "loss": 0.5, "lr": 1e-5}) == {
        "loss/a": 0.5, "lr": 1e-5}
    assert tracking.scalars({"step": 4, "dev_score": 60.0, "epoch": 1.0,
                             "dev_scores": {"a": 50.0, "b": 70.0}}) == {
        "dev_score": 60.0, "epoch": 1.0, "dev_scores/a": 50.0, "dev_scores/b": 70.0}
    assert tracking.flat_config({"layer": None, "grid": [1, 2], "lr": 1e-5}) == {
        "grid": "[1, 2]", "layer": "None", "lr": 1e-5}


# --- a fit reports to the trackers -----------------------------------------------------------

def _rows(language: str, split: str, n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed + (split == "validation"))
    return [{"premise": f"the {('red', 'blue', 'green')[k]} thing {i}", "hypothesis": "a thing",
             "label": k} for i, k in enumerate(torch.randint(0, 3, (n,), generator=g).tolist())]


NLI = tasks.Task(name="track-nli", format="pair_classification", languages=("en",),
                 label_names=("entailment", "neutral", "contradiction"), generator=_rows,
                 fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"})
HP = Hparams({"learning_rate": 2e-3, "epochs": 2, "batch_size": 32, "max_length": 32,
                        "precision": "fp32"})


class Recorder(GeneralTracker):
    name = "recorder"
    requires_logging_directory = False

    def __init__(self, run_name: str):
        super().__init__()
        self.run_name, self.config, self.logged, self.finished = run_name, None, [], False

    @property
    def tracker(self):
        return self

    def store_init_configuration(self, values: dict) -> None:
        self.config = values

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        self.logged.append((step, values))

    def finish(self) -> None:
        self.finished = True


def _fit(tiny_dir, tmp_path):
    data = (sources.load(NLI, "train", "en", size=96), sources.load(NLI, "validation", "en",
                                                                   size=30))
    model, tok, _ = build(tiny_dir, [NLI], seed=0)
    return train.fit(model, tok, NLI, *data, HP, 0, tmp_path / "ckpt",
                     tmp_path / "history.jsonl", {"cell": "test"})


def test_a_fit_logs_its_history_to_the_trackers(tiny_dir, tmp_path, monkeypatch, one_thread):
    recorder = Recorder("target-abc")
    monkeypatch.setattr(tracking, "trackers", lambda cell_id=None: [recorder])
    result = _fit(tiny_dir, tmp_path)
    assert recorder.finished and recorder.config["learning_rate"] == 2e-3
    assert recorder.config["seed"] == 0
    assert all(isinstance(v, (bool, int, float, str)) for v in recorder.config.values())
    losses = [(s, v["loss"]) for s, v in recorder.logged if "loss" in v]
    assert losses == [(h["step"], h["loss"]) for h in result.history if "loss" in h]
    assert len(losses) == 6  # 2 epochs x 96 / 32
    dev = [(s, v["dev_score"]) for s, v in recorder.logged if "dev_score" in v]
    assert dev == [(h["step"], h["dev_score"]) for h in result.history if "dev_score" in h]


def test_tracking_off_writes_nothing(tiny_dir, tmp_path, monkeypatch, one_thread):
    monkeypatch.delenv(tracking.REPORT_TO_ENV, raising=False)
    assert tracking.trackers() == []
    monkeypatch.chdir(tmp_path)
    _fit(tiny_dir, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "history.jsonl"]


def test_tensorboard_gets_one_run_per_cell(tiny_dir, tmp_path, monkeypatch, one_thread):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracking.export(["tensorboard"], tmp_path / "run", "exp")
    monkeypatch.setenv(tracking.CELL_ENV, "target-0123456789ab")
    try:
        result = _fit(tiny_dir, tmp_path)
    finally:
        tracking.export([], tmp_path, "exp")
    logdir = tmp_path / "run" / "tensorboard" / "target-0123456789ab"
    events = EventAccumulator(str(logdir)).Reload()
    steps = [(e.step, round(e.value, 5)) for e in events.Scalars("loss")]
    assert steps == [(h["step"], round(h["loss"], 5)) for h in result.history if "loss" in h]
