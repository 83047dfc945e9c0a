"""Experiment files: defaults, environment overrides, mirror checks at plan time."""

from __future__ import annotations

import os

import pytest

from xtl.core.errors import DataError
from xtl.grid import config, plan

GOOD = """\
xtl: 1
models: [tiny]
intermediate: [none, synth-nli]
targets: [synth-nli]
"""


def build(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    exp = config.load(path)
    built = plan.build(exp)
    plan.preflight(built, exp)
    return built


def test_good_file_defaults(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(GOOD)
    exp = config.load(path)
    assert exp["name"] == "exp"
    assert exp["seeds"] == [0]
    assert exp["train_sizes"] == [None]
    assert exp["eval_split"] == "validation"


# Bad files and their errors: tests/test_bad_inputs.py (one table for the whole kit).


def test_env_mirror_wins_over_file(tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    monkeypatch.setenv("XTL_HUB_MIRROR", str(tmp_path / "m"))
    built = build(tmp_path, GOOD + "mirror: /nonexistent/mirror\n")
    assert built.mirror == str((tmp_path / "m").resolve())
    monkeypatch.setenv("XTL_HUB_MIRROR", str(tmp_path / "absent"))
    with pytest.raises(DataError, match="XTL_HUB_MIRROR"):
        build(tmp_path, GOOD)
    assert os.environ["XTL_HUB_MIRROR"].endswith("absent")


def test_mirror_without_config_is_an_error(tmp_path, hub_mirror):
    text = GOOD.replace("targets: [synth-nli]", "targets: [xnli]") + (
        f"mirror: {hub_mirror}\neval_languages: [de]\n")
    build(tmp_path, text)  # fine: every file exists
    empty = tmp_path / "mirror" / "facebook" / "xnli" / "en"
    empty.mkdir(parents=True)
    (tmp_path / "mirror" / "nyu-mll" / "glue" / "mnli").mkdir(parents=True)
    with pytest.raises(DataError) as info:
        build(tmp_path, text.replace(str(hub_mirror), str(tmp_path / "mirror")))
    assert "split" in str(info.value) and "train" in str(info.value)
