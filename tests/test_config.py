"""Bad experiment files fail at plan time with one clear error naming the value."""

from __future__ import annotations

import os

import pytest

from xtl import config, plan
from xtl.errors import ConfigError, DataError, ModelError

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


@pytest.mark.parametrize("text, error, fragments", [
    (GOOD + "epochz: 3\n", ConfigError, ["unknown key", "'epochz'", "expected one of"]),
    (GOOD + "hparams: {learning_rte: 1.0e-5}\n", ConfigError,
     ["learning_rte", "did you mean 'learning_rate'"]),
    (GOOD.replace("targets: [synth-nli]", "targets: [xnlii]"), ConfigError,
     ["target task", "'xnlii'", "did you mean 'xnli'"]),
    (GOOD.replace("[none, synth-nli]", "[none, mnlli]"), ConfigError,
     ["intermediate task", "'mnlli'", "did you mean 'mnli'"]),
    (GOOD + "eval_languages: [de, xx]\n", ConfigError, ["language", "'xx'"]),
    (GOOD + "eval_split: dev\n", ConfigError, ["eval_split", "'dev'", "validation"]),
    (GOOD + "hparams: {learning_rate: -1.0}\n", ConfigError, ["learning_rate", "> 0"]),
    (GOOD + "hparams: {batch_size: 0}\n", ConfigError, ["batch_size", "> 0"]),
    (GOOD + "hparams: {epochs: three}\n", ConfigError, ["epochs", "wrong type"]),
    (GOOD + "hparams: {precision: fp8}\n", ConfigError, ["precision", "'fp8'"]),
    (GOOD + "grid: {learning_rate: 1.0e-5}\n", ConfigError, ["grid.learning_rate", "list"]),
    (GOOD + "grid: {targett.epochs: [1, 2]}\n", ConfigError, ["scope", "'targett'"]),
    (GOOD + "seeds: [1, two]\n", ConfigError, ["seeds", "'two'"]),
    (GOOD + "train_sizes: [0]\n", ConfigError, ["train_sizes", "0"]),
    (GOOD + "xtl: 2\n".replace("xtl: 2", "executor: slurmm"), ConfigError, ["executor"]),
    (GOOD.replace("xtl: 1", "xtl: 7"), ConfigError, ["contract version", "7"]),
    (GOOD.replace("models: [tiny]\n", ""), ConfigError, ["'models' is required"]),
    (GOOD.replace("[none, synth-nli]", "[none, [synth-nli, mnlii]]"), ConfigError,
     ["intermediate task", "'mnlii'", "did you mean 'mnli'"]),
    (GOOD.replace("[none, synth-nli]", "[{chains: [mnli]}]"), ConfigError,
     ["intermediate entry"]),
    (GOOD + "tasks: {mnlii: {epochs: 1}}\n", ConfigError, ["'mnlii'", "did you mean 'mnli'"]),
    (GOOD + "tasks: {mine: {format: pair_clasification, languages: [en], hub_id: a/b}}\n",
     ConfigError, ["task format", "did you mean 'pair_classification'"]),
    (GOOD + "mirror: /nonexistent/mirror\n", DataError, ["/nonexistent/mirror", "not a directory"]),
    (GOOD.replace("[tiny]", "[tinny]"), ModelError,
     ["'tinny'", "not a preset", "did you mean 'tiny'", "cached or reachable"]),
    (GOOD.replace("[tiny]", "[./no/such/model]"), ModelError, ["no/such/model", "config.json"]),
    ("- just\n- a list\n", ConfigError, ["must be a mapping"]),
])
def test_bad_input(tmp_path, text, error, fragments):
    with pytest.raises(error) as info:
        build(tmp_path, text)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_malformed_yaml_names_line_and_column(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("xtl: 1\nmodels: [tiny\ntargets: [synth-nli]\n")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert f"{path}:3:" in str(info.value)
    assert "malformed YAML" in str(info.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        config.load("/no/such/experiment.yaml")


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
