"""The task-format interface (`xtl.data.tasks.Format`): every registered format implements it, and
registration refuses a format that does not."""

from __future__ import annotations

import datasets
import pytest

from xtl.core.errors import ConfigError
from xtl.data import mlm, tasks
from xtl.data.tasks import dual_encoder

REQUIRED = ("featurize", "collator", "make_head", "loss", "decode")
# optional, with a default in the base class
ALWAYS = ("references", "example_ids", "chance", "bind_head")
OPTIONAL = ("canonicalize", "check_source", "predict")  # optional, None: the generic path


def test_every_format_implements_the_interface():
    assert mlm.FORMAT in tasks.FORMATS  # registered the same way, from outside the package
    assert set(tasks.FORMATS) == {"pair_classification", "multiple_choice", "tagging", "span_qa",
                                  "retrieval", "dual_encoder", "mlm"}
    for name, fmt in tasks.FORMATS.items():
        assert isinstance(fmt, tasks.Format) and fmt.name == name
        assert fmt.canonical_fields and all(isinstance(f, str) for f in fmt.canonical_fields)
        for hook in REQUIRED + ALWAYS:
            assert callable(getattr(fmt, hook)), (name, hook)
        for hook in OPTIONAL:
            assert getattr(fmt, hook) is None or callable(getattr(fmt, hook)), (name, hook)
    for name, fmt in tasks.FORMATS.items():
        for hook in REQUIRED + ALWAYS + OPTIONAL:  # a registered format's hook is static
            own = getattr(type(fmt), hook)
            assert own is None or getattr(fmt, hook) is own, (name, hook)


def test_which_formats_replace_the_generic_paths():
    own = {hook: sorted(n for n, f in tasks.FORMATS.items() if getattr(f, hook) is not None)
           for hook in OPTIONAL}
    assert own["predict"] == ["dual_encoder", "span_qa", "tagging"]
    assert own["check_source"] == ["span_qa"]  # TyDi QA: one config, several languages
    assert own["canonicalize"] == ["dual_encoder", "mlm", "multiple_choice", "retrieval",
                                   "span_qa", "tagging"]
    base = {hook: sorted(n for n, f in tasks.FORMATS.items()
                         if getattr(type(f), hook) is getattr(tasks.Format, hook))
            for hook in ALWAYS}
    assert base["chance"] == ["mlm", "multiple_choice", "pair_classification", "retrieval",
                              "span_qa", "tagging"]
    assert base["example_ids"] == sorted(set(tasks.FORMATS) - {"dual_encoder"})
    assert base["bind_head"] == sorted(set(tasks.FORMATS) - {"mlm"})


def test_default_hooks_read_the_label_and_id_columns():
    rows = datasets.Dataset.from_dict({"id": ["a", "b"], "text_a": ["x", "y"], "label": [2, 0]})
    fmt = tasks.get_format("pair_classification")
    assert fmt.references(rows) == [2, 0] and fmt.example_ids(rows) == ["a", "b"]
    assert fmt.chance(rows) is None


def test_ranking_formats_have_a_chance_level():
    empty = dict.fromkeys(dual_encoder.CANONICAL_FIELDS) | {"gold": []}
    rows = dual_encoder.dataset([
        empty | {"id": "q1", "query": "q", "gold": ["c1"]},
        empty | {"id": "c1", "candidate": "a", "candidate_id": "c1"},
        empty | {"id": "c2", "candidate": "b", "candidate_id": "c2"},
    ])
    fmt = tasks.get_format("dual_encoder")
    # one relevant candidate of two: a random ranking puts it first half the time -> mAP 75
    assert fmt.chance(rows) == pytest.approx(75.0)
    assert fmt.example_ids(rows) == ["q1"] and fmt.references(rows) == [["c1"]]


def _hooks(*names: str) -> dict:
    return {name: staticmethod(lambda *a, **k: None) for name in names}


def test_a_format_without_a_required_hook_is_refused(formats):
    before = dict(formats)
    half = type("HalfFormat", (tasks.Format,),
                {"name": "half", "canonical_fields": ("text",), **_hooks("featurize", "collator",
                                                                         "make_head")})
    with pytest.raises(ConfigError, match=r"HalfFormat \('half'\) lacks the required hooks "
                                          r"decode, loss"):
        tasks.register_format(half)
    assert formats == before


@pytest.mark.parametrize(("attrs", "message"), [
    ({"canonical_fields": ("text",)}, "needs `name`"),
    ({"name": "", "canonical_fields": ("text",)}, "`name` must be a non-empty string"),
    ({"name": "toy", "canonical_fields": ["text"]}, "`canonical_fields` must be a tuple"),
    ({"name": "span_qa", "canonical_fields": ("text",)}, "'span_qa' is registered twice"),
])
def test_a_format_without_a_name_or_fields_or_twice_is_refused(formats, attrs, message):
    before = dict(formats)
    cls = type("Toy", (tasks.Format,), {**attrs, **_hooks(*REQUIRED)})
    with pytest.raises(ConfigError, match=message):
        tasks.register_format(cls)
    assert formats == before


def test_only_format_classes_register(formats):
    with pytest.raises(ConfigError, match="must subclass xtl.data.tasks.Format"):
        tasks.register_format(type("Loose", (), _hooks(*REQUIRED)))


def test_an_unknown_format_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown task format 'span-qa'.*span_qa.*"
                                          r"expected one of: dual_encoder, mlm"):
        tasks.get_format("span-qa")
    with pytest.raises(ConfigError, match="unknown task format 'nope'"):
        tasks.declare("toy", {"format": "nope", "languages": ["en"], "hub_id": "org/toy"})
