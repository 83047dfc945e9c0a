"""`learning_rate: 1e-5` is a number: YAML 1.1 (PyYAML) would read it as a string."""

from __future__ import annotations

import pytest
import yaml

from xtl.core.errors import ConfigError
from xtl.grid import config, plan

EXP = """\
xtl: 1
models: [tiny]
intermediate: [none, synth-nli]
targets: [synth-nli]
hparams: {{learning_rate: {lr}, adam_epsilon: {eps}}}
grid: {{target.learning_rate: [{lr}, 3e-5]}}
"""


def _load(tmp_path, lr: str, eps: str, name: str = "exp"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(EXP.format(lr=lr, eps=eps))
    return config.load(path)


@pytest.mark.parametrize("text, value", [("1e-5", 1e-5), ("1E-5", 1e-5), ("2e5", 2e5),
                                         ("1.0e5", 1e5), ("-3e-2", -3e-2), ("+1e-8", 1e-8),
                                         (".5e-3", 5e-4), ("1_0e-1", 1.0)])
def test_exponent_without_dot_or_sign_is_a_float(tmp_path, text, value):
    path = tmp_path / "v.yaml"
    path.write_text(f"v: {text}\n")
    assert config.read_yaml(path, "file") == {"v": value}
    assert isinstance(config.read_yaml(path, "file")["v"], float)


def test_other_scalars_keep_their_yaml_types(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("a: '1e-5'\nb: 1e\nc: e5\nd: 10\ne: 1.5\nf: 1e-5x\n")
    assert config.read_yaml(path, "file") == {"a": "1e-5", "b": "1e", "c": "e5", "d": 10,
                                               "e": 1.5, "f": "1e-5x"}


def test_plain_pyyaml_is_left_alone():
    """The resolver is the kit's loader's own: yaml.safe_load everywhere else is unchanged."""
    assert yaml.safe_load("v: 1e-5") == {"v": "1e-5"}


def test_learning_rate_1e_5_is_accepted_with_the_ids_of_1_0e_5(tmp_path):
    short = _load(tmp_path, "1e-5", "1e-8", "short")
    spelled = _load(tmp_path, "1.0e-5", "1.0e-8", "spelled")
    assert short["hparams"]["learning_rate"] == 1e-5
    assert short["hparams"]["adam_epsilon"] == 1e-8
    # the same experiment, so the same cells: existing run directories keep their ids
    assert ([c.id for c in plan.build(short).cells]
            == [c.id for c in plan.build(spelled).cells])


def test_a_quoted_number_is_still_the_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match="learning_rate"):
        _load(tmp_path, "'1e-5'", "1e-8")
