"""The hyperparameter schema is the single source: every table is derived from the `Spec`
declarations (the kit's in xtl/core/hparams.py, each format's in its module)."""

from __future__ import annotations

import pickle
import typing

import pytest

from xtl.core import hparams
from xtl.core.errors import ConfigError
from xtl.data import mlm
from xtl.data.tasks import FORMATS


def test_every_declaration_is_complete_and_its_default_valid():
    for name, spec in hparams.SPECS.items():
        assert spec.name == name
        assert spec.doc and "\n" not in spec.doc, name
        assert spec.types and all(isinstance(t, type) for t in spec.types), name
        hparams.check_hparam(name, spec.default, "the kit")  # raises on a bad default


def test_the_typed_attributes_are_the_declared_keys_and_types():
    """Hparams lists every key as a typed attribute for type checkers (under TYPE_CHECKING:
    never executed); those names and types must be the Specs'."""
    import ast
    import inspect

    block = next(node for node in ast.walk(ast.parse(inspect.getsource(hparams.Hparams)))
                 if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    annotated = {node.target.id: ast.unparse(node.annotation) for node in block.body
                 if isinstance(node, ast.AnnAssign)}
    assert sorted(annotated) == sorted(hparams.SPECS)  # (formats declare theirs as imported)
    for name, spec in hparams.SPECS.items():
        accepted = set(typing.get_args(eval(annotated[name]))) or {eval(annotated[name])}
        if accepted == {float}:  # a float attribute may take ints too (the numeric tower)
            accepted = {float, *({int} & set(spec.types))}
        assert set(spec.types) == accepted, (name, annotated[name], spec.types)


def test_derived_tables_equal_the_declarations():
    specs = hparams.SPECS
    assert hparams.HPARAM_DEFAULTS == {k: s.default for k, s in specs.items()}
    assert hparams.V1_HPARAMS == {k for k, s in specs.items() if s.v1_value is hparams.IN_V1}
    assert hparams.POST_V1 == {k: s.v1_value for k, s in specs.items()
                               if s.v1_value is not hparams.IN_V1}
    assert hparams.TASK_KEYS == [k for k, s in specs.items() if s.per_task]
    assert hparams.MULTITASK_KEYS == [k for k, s in specs.items() if s.multitask]
    assert hparams.MODEL_INTRINSIC == [k for k, s in specs.items() if s.intrinsic]


def test_a_format_key_is_read_only_by_the_formats_that_declare_it():
    declared = {}
    for fmt in FORMATS.values():
        for spec in fmt.hparams:
            declared.setdefault(spec.name, set()).add(fmt.name)
    assert declared == {k: set(s.formats) for k, s in hparams.SPECS.items() if s.formats}
    assert {"doc_stride", "max_answer_length", "tag_subtoken", "pooling", "layer",
            "mlm_probability"} == set(declared)
    assert declared["doc_stride"] == {"span_qa", "tagging"}
    assert FORMATS["mlm"].hparams == (mlm.MLM_PROBABILITY,)  # importing xtl.data.mlm registers it
    assert not any(s.formats for s in hparams.KIT_SPECS)
    assert hparams.reads("doc_stride", {"tagging"}) and not hparams.reads("doc_stride", {"mlm"})
    assert hparams.reads("learning_rate", set())


def test_a_key_is_declared_once():
    with pytest.raises(ConfigError, match="'epochs' is declared twice, differently"):
        hparams.declare(hparams.Spec("epochs", 4, (int,), "passes"))
    tagging = FORMATS["tagging"]
    qa_stride = next(s for s in FORMATS["span_qa"].hparams if s.name == "doc_stride")
    with pytest.raises(ConfigError, match="declared twice, differently"):
        hparams.declare(hparams.Spec("doc_stride", 64, (int,), "overlap"), tagging.name)
    assert hparams.SPECS["doc_stride"].formats == ("span_qa", "tagging")
    assert qa_stride.formats == ()  # the module's declaration; the schema's names its readers


@pytest.mark.parametrize(("key", "value", "message"), [
    ("learning_rate", 0, "x: learning_rate = 0 must be > 0"),
    ("target.warmup_ratio", 1.0, r"x: target.warmup_ratio = 1.0 must be in \[0, 1\)"),
    ("mlm_probability", 1.0, r"x: mlm_probability = 1.0 must be in \(0, 1\)"),
    ("multitask_cap", -1, r"x: multitask_cap = -1 must be >= 0 \(0 = no cap\)"),
    ("dev_subset", -2, r"must be >= 0 \(0 = the whole dev set\)"),
    ("pooling", "max", "unknown pooling in x 'max'"),
    ("tag_subtoken", "last", "unknown tag_subtoken in x 'last'"),
    ("device", "tpu", "x: unknown device 'tpu'; expected auto, cpu, cuda or cuda:N"),
    ("batch_size", True, "x: batch_size = True has the wrong type; expected int"),
    ("epochs", float("inf"), "x: epochs = inf must be a finite number"),
])
def test_bounds_keep_their_messages(key, value, message):
    with pytest.raises(ConfigError, match=message):
        hparams.check_hparam(key, value, "x")


def test_the_resolved_object_is_checked_once_frozen_and_round_trips():
    hp = hparams.Hparams({"epochs": 2, "doc_stride": 64}, "x")
    assert hp.epochs == 2 and hp["doc_stride"] == 64 and hp.learning_rate == 1e-5
    assert hp.to_dict() == hparams.HPARAM_DEFAULTS | {"epochs": 2, "doc_stride": 64}
    assert hparams.Hparams.from_dict(hp.to_dict()) == hp
    assert hparams.Hparams.from_dict(hp) is hp
    assert pickle.loads(pickle.dumps(hp)) == hp  # datasets' map and the DDP launcher pickle it
    with pytest.raises(AttributeError, match="frozen"):
        hp.epochs = 3
    assert (hp | {"epochs": 4}).epochs == 4 and hp.epochs == 2
    with pytest.raises(ConfigError, match="x: epochs = 0 must be > 0"):
        hparams.Hparams({"epochs": 0}, "x")
    with pytest.raises(ConfigError, match="unknown hyperparameter in x 'lr'"):
        hparams.Hparams({"lr": 0.1}, "x")
    with pytest.raises(ConfigError, match="unknown pooling in y .max."):
        hp.replace({"pooling": "max"}, "y")
    with pytest.raises(AttributeError, match="no hyperparameter 'lr'"):
        hp.lr  # noqa: B018
