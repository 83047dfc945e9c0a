"""Property-based tests: no input crashes the experiment-file parser or the raw-format readers
with anything but the kit's own errors.

Each property feeds generated input (mostly well-formed structure with perturbations, plus
arbitrary text and bytes) through the real entry point (`config.load`/`parse` + `plan.build`,
`sources.load` on raw release files) and accepts either a result or an `XtlError`. The examples
are derandomized (the same on every run) and few, so the file runs in seconds; set
XTL_HYPOTHESIS_EXAMPLES=2000 for a deeper local search.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from xtl.core import hparams
from xtl.core.errors import XtlError
from xtl.data import sources, tasks
from xtl.grid import config, plan

EXAMPLES = int(os.environ.get("XTL_HYPOTHESIS_EXAMPLES", "80"))
settings.register_profile("xtl", derandomize=True, database=None, deadline=None,
                          max_examples=EXAMPLES,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.load_profile("xtl")


def kit_errors_only(fn: Callable[[], object]) -> object | None:
    """Run `fn`; an XtlError is an accepted outcome, anything else fails the property."""
    try:
        return fn()
    except XtlError:
        return None


# --- experiment files ---------------------------------------------------------------------------

LEAF = st.one_of(st.none(), st.booleans(), st.integers(-3, 5), st.floats(allow_nan=True),
                 st.text(max_size=6), st.sampled_from(["none", "tiny", "mnli", "de", "../x"]))
ANY = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3)
                   | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
TASK_NAMES = st.sampled_from(["synth-nli", "synth-ner", "mnli", "xnli", "tatoeba", "copa",
                              "xcopa", "mlm", "xnlii"])
HPARAM = st.sampled_from(sorted(hparams.SPECS) + ["target.epochs", "x.epochs", "lr"])
HPARAMS = st.dictionaries(HPARAM, LEAF, max_size=3)
DECLARATION = st.fixed_dictionaries(
    {"format": st.sampled_from(["pair_classification", "tagging", "bogus"]) | LEAF,
     "languages": st.lists(st.sampled_from(["en", "de", "../x"]), max_size=2) | LEAF,
     "hub_id": st.sampled_from(["a/b", "a", "../.."]) | LEAF},
    optional={"label_names": ANY, "fields": ANY, "splits": ANY, "hparams": HPARAMS | ANY,
              "config": ANY, "sizes": ANY})
EXPERIMENT = st.fixed_dictionaries(
    {"models": st.lists(st.sampled_from(["tiny", ""]) | LEAF, max_size=2) | LEAF,
     "targets": st.lists(TASK_NAMES | LEAF, max_size=2) | LEAF},
    optional={
        "xtl": st.sampled_from([1, 2, "1"]),
        "intermediate": st.lists(TASK_NAMES | st.lists(TASK_NAMES, max_size=2) | LEAF
                                 | st.fixed_dictionaries({"chain": st.lists(TASK_NAMES | ANY,
                                                                            max_size=2)}),
                                 max_size=3),
        "seeds": st.lists(st.integers(0, 2) | LEAF, max_size=2) | LEAF,
        "train_sizes": st.lists(st.integers(-1, 50) | LEAF, max_size=2) | LEAF,
        "hparams": HPARAMS | ANY,
        "grid": st.dictionaries(HPARAM, st.lists(LEAF, max_size=2) | LEAF, max_size=2) | ANY,
        "tasks": st.dictionaries(TASK_NAMES | st.just("mine"), HPARAMS | DECLARATION,
                                 max_size=2) | ANY,
        "eval_languages": st.lists(st.sampled_from(["de", "en", "xx"]) | LEAF, max_size=2)
        | LEAF,
        "eval_split": st.sampled_from(["validation", "test", "dev"]) | LEAF,
        "name": LEAF, "out": LEAF, "mirror": LEAF, "raw_dir": LEAF,
        "executor": st.sampled_from(["local", "ray", "slurm"]) | ANY,
        "keep_checkpoints": st.sampled_from(["best", "all", "none"]) | LEAF,
        "gpus_per_cell": LEAF, "distributed": LEAF, "subsample_seed": LEAF,
        "intermediate_seed": LEAF, "bogus_key": LEAF,
    })
CELL_ID = re.compile(r"(stage|target|retrieval)-[0-9a-f]{12}")


@given(EXPERIMENT)
@example({"models": ["tiny"], "targets": ["synth-nli"], "intermediate": [None]})
def test_parse_and_plan_raise_only_kit_errors(raw):
    def parse_and_plan():
        built = plan.build(config.parse(raw), check_models=False)
        assert built.cells and all(CELL_ID.fullmatch(c.id) for c in built.cells)

    kit_errors_only(parse_and_plan)


YAML_PIECES = st.sampled_from([
    "xtl: 1\n", "models: [tiny]\n", "targets: [synth-nli]\n", "intermediate: ", "hparams: {",
    "epochs: 1", "}", "]", "[", "- ", ": ", ", ", "\n", "  ", "'", '"', "\t", "---\n", "...\n",
    "&a ", "*a", "<<: *a\n", "!!python/name:os.system ", "!!binary ", "%YAML 1.1\n", "{chain: ",
    "grid: {learning_rate: [", "1.0e-5", ".nan", "~", "? ", "|\n", "#", "\\u0000", "\x85",
])


@given(st.one_of(st.lists(YAML_PIECES, max_size=14).map("".join), st.text(max_size=40),
                 st.binary(max_size=40)))
@example("intermediate: [&a {chain: [*a]}]\nmodels: [tiny]\ntargets: [synth-nli]\n")
@example("models: &a [*a]\ntargets: [synth-nli]\n")
def test_loading_any_file_raises_only_config_errors(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exp.yaml"
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        kit_errors_only(lambda: plan.build(config.load(path), check_models=False))


# --- raw release files --------------------------------------------------------------------------

def _raw_only(name: str):
    return dataclasses.replace(tasks.get(name), hub_languages=())


def _lines(line: st.SearchStrategy[str]) -> st.SearchStrategy[str | bytes]:
    """A file: lines drawn from `line`, or arbitrary text, or arbitrary bytes."""
    return st.one_of(st.lists(line, max_size=8).map("\n".join),
                     st.lists(line, max_size=8).map(lambda ls: "\r\n".join(ls) + "\n"),
                     st.text(max_size=40), st.binary(max_size=40))


def _load_raw(task, split: str, language: str, files: dict[str, str | bytes]) -> None:
    """Write `files` under a fresh raw root, then load through the real source code path."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, data in files.items():
            path = root / task.raw_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)

        def load():
            split_rows = sources.load(task, split, language, raw=root)
            assert len(split_rows.rows) > 0  # an empty result is a DataError, never silent

        kit_errors_only(load)


WORD = st.sampled_from(["a", "bc", "é", "_", "", " ", "en:x", "de-1", "ßz"])
TEXT = st.text(alphabet="\tab_1-.:#é ", max_size=16)

CONLLU_LINE = st.one_of(
    st.just(""), st.just("# sent_id = 1"), TEXT,
    st.builds("{}\t{}\t_\t{}\t_\t_\t0\troot\t_\t_".format,
              st.sampled_from(["1", "2", "3", "1-2", "1.1", "x", "0", "١"]), WORD,
              st.sampled_from(["NOUN", "VERB", "_", "BOGUS", ""])))


@given(_lines(CONLLU_LINE))
@example("1\ta\t_\tNOUN\t_\t_\t0\troot\t_\t_\n2\tb\t_\tVERB\t_\t_\t1\tobj\t_\t_\n")
def test_conllu_reader(content):
    _load_raw(_raw_only("udpos"), "validation", "en",
              {"ud-treebanks-v2.5/UD_English-EWT/en_ewt-ud-dev.conllu": content})


PANX_LINE = st.one_of(st.just(""), TEXT, WORD,
                      st.builds("{}\t{}".format, WORD,
                                st.sampled_from(["O", "B-PER", "I-LOC", "B-MISC", "", "x"])))


@given(_lines(PANX_LINE))
@example("en:Paris\tB-LOC\nen:is\tO\n\nen:x\tO\n")
def test_panx_reader(content):
    _load_raw(_raw_only("panx"), "validation", "en", {"dev-en.tsv": content})


SQUAD_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2, 30), st.floats(),
                       st.text(max_size=5))
SQUAD_ANY = st.recursive(SQUAD_LEAF, lambda inner: st.lists(inner, max_size=2)
                         | st.dictionaries(st.text(max_size=4), inner, max_size=2), max_leaves=4)
ANSWER = st.fixed_dictionaries({"text": st.sampled_from(["a", "b c", "", "zz"]) | SQUAD_LEAF,
                                "answer_start": st.integers(-2, 12) | SQUAD_LEAF}) | SQUAD_ANY
QA = st.fixed_dictionaries({"id": st.sampled_from(["q1", "q2"]) | SQUAD_LEAF,
                            "question": st.sampled_from(["what?", " "]) | SQUAD_LEAF,
                            "answers": st.lists(ANSWER, max_size=2) | SQUAD_LEAF}) | SQUAD_ANY
PARAGRAPH = st.fixed_dictionaries({"context": st.sampled_from(["a b c", " a zz ", ""])
                                   | SQUAD_LEAF, "qas": st.lists(QA, max_size=3)}) | SQUAD_ANY
DOC = st.fixed_dictionaries({"data": st.lists(st.fixed_dictionaries(
    {"title": st.text(max_size=3) | SQUAD_LEAF, "paragraphs": st.lists(PARAGRAPH, max_size=2)})
    | SQUAD_ANY, max_size=2)}) | SQUAD_ANY


@given(st.one_of(DOC.map(json.dumps), st.text(max_size=30), st.binary(max_size=30)))
@example(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "a b c", "qas": [
    {"id": "q1", "question": "what?", "answers": [{"text": "b", "answer_start": 2}]}]}]}]}))
def test_squad_reader(content):
    _load_raw(_raw_only("xquad"), "validation", "de", {"xquad.de.json": content})


CCG_LINE = st.one_of(st.just(""), TEXT, st.builds("{}\t{}".format, st.sampled_from(
    ["a b", "a", "", " "]), st.sampled_from(["N NP", "N", "NP[nb]/N N", "", "N N N"])))


@given(_lines(CCG_LINE), _lines(CCG_LINE),
       st.none() | st.dictionaries(st.sampled_from(["N", "NP", "x"]), SQUAD_LEAF,
                                   max_size=3).map(json.dumps) | st.text(max_size=10))
@example("a b\tN NP\n", "a\tN\n", None)
def test_ccg_reader(train, dev, tag_ids):
    files = {"ccg.train": train, "ccg.dev": dev}
    if tag_ids is not None:
        files["tags_to_id.json"] = tag_ids
    _load_raw(tasks.get("ccg"), "validation", "en", files)


@given(_lines(TEXT | WORD), _lines(TEXT | WORD))
@example("zdanie\n", "sentence\n")
def test_tatoeba_reader(foreign, english):
    _load_raw(tasks.get("tatoeba"), "validation", "pl",
              {"tatoeba.pol-eng.pol": foreign, "tatoeba.pol-eng.eng": english})


BUCC_ID = st.sampled_from(["de-1", "de-2", "en-1", "en-2", "", " "])
BUCC_LINE = st.one_of(st.just(""), TEXT, st.builds("{}\t{}".format, BUCC_ID, WORD))


@given(_lines(BUCC_LINE), _lines(BUCC_LINE), _lines(BUCC_LINE))
@example("de-1\tgut\nde-2\tja\n", "en-1\tgood\nen-2\tyes\n", "de-1\ten-1\n")
def test_bucc_reader(german, english, gold):
    stem = "de-en/de-en.sample"
    _load_raw(tasks.get("bucc2018"), "validation", "de",
              {f"{stem}.de": german, f"{stem}.en": english, f"{stem}.gold": gold})


@given(_lines(TEXT | WORD), st.booleans())
@example("one sentence\n\nanother\n", False)
def test_mlm_text_reader(content, with_dev):
    files = {"train/de.txt": content}
    if with_dev:
        files["validation/de.txt"] = content
    _load_raw(tasks.get("mlm"), "validation", "mul", files)


BREAKS = st.lists(st.lists(st.integers(-1, 8) | SQUAD_LEAF, min_size=2, max_size=3), max_size=3)
XQUAD_R = st.fixed_dictionaries({"data": st.lists(st.fixed_dictionaries({"paragraphs": st.lists(
    st.fixed_dictionaries({"context": st.sampled_from(["ab. cd.", ""]) | SQUAD_LEAF,
                           "sentence_breaks": BREAKS | SQUAD_LEAF,
                           "qas": st.lists(QA, max_size=2)}) | SQUAD_ANY, max_size=2)})
    | SQUAD_ANY, max_size=2)}) | SQUAD_ANY


@given(*[st.one_of(XQUAD_R.map(json.dumps), st.text(max_size=20), st.binary(max_size=20))] * 2)
@example(*[json.dumps({"data": [{"paragraphs": [{"context": "ab. cd.", "sentence_breaks": [
    [0, 3], [4, 7]], "qas": [{"id": "q1", "question": "?", "answers": [
        {"text": "cd.", "answer_start": 4}]}]}]}]})] * 2)
def test_lareqa_reader(english, german):
    from xtl.data.tasks.dual_encoder import lareqa_task

    _load_raw(lareqa_task(("de", "en"), name="lareqa-pair"), "validation", "de",
              {"en.json": english, "de.json": german})


def _jsonl(record: st.SearchStrategy) -> st.SearchStrategy[str | bytes]:
    return st.one_of(st.lists(record.map(json.dumps) | TEXT, max_size=3).map("\n".join),
                     st.binary(max_size=20))


ENTITY = st.fixed_dictionaries({"entity_id": st.sampled_from(["Q1", "Q2", ""]) | SQUAD_LEAF,
                                "title": st.sampled_from(["T", ""]) | SQUAD_LEAF,
                                "description": st.just("d") | SQUAD_LEAF,
                                "description_language": st.just("en") | SQUAD_LEAF}) | SQUAD_ANY
CONTEXT = st.fixed_dictionaries({"language": st.sampled_from(["de", "en"]) | SQUAD_LEAF,
                                 "text": st.sampled_from(["Ab cd.", ""]) | SQUAD_LEAF,
                                 "sentence_spans": st.lists(st.fixed_dictionaries(
                                     {"start": SQUAD_LEAF, "end": SQUAD_LEAF}), max_size=2)
                                 | SQUAD_LEAF}) | SQUAD_ANY
MENTION = st.fixed_dictionaries({"example_id": st.sampled_from(["m1", "m2"]) | SQUAD_LEAF,
                                 "entity_id": st.sampled_from(["Q1", "Q3"]) | SQUAD_LEAF,
                                 "mention_span": st.fixed_dictionaries(
                                     {"start": st.integers(-1, 6) | SQUAD_LEAF,
                                      "end": st.integers(0, 7) | SQUAD_LEAF,
                                      "text": st.just("Ab") | SQUAD_LEAF}) | SQUAD_LEAF})


@given(_jsonl(ENTITY), _jsonl(st.fixed_dictionaries(
    {"context": CONTEXT, "mentions": st.lists(MENTION, max_size=2) | SQUAD_LEAF})))
@example('{"entity_id": "Q1", "title": "T", "description": "d", "description_language": "en"}',
         '{"context": {"language": "de", "text": "Ab cd."}, "mentions": [{"example_id": "m1", '
         '"entity_id": "Q1", "mention_span": {"start": 0, "end": 2, "text": "Ab"}}]}')
def test_mewslix_mentions_reader(entities, mentions):
    _load_raw(tasks.get("mewslix"), "validation", "de",
              {"candidate_set_entities.jsonl": entities, "wikinews_mentions-dev.jsonl": mentions})


@given(_jsonl(st.fixed_dictionaries({"contextual_mention": st.fixed_dictionaries(
    {"context": CONTEXT, "mention": MENTION}) | SQUAD_LEAF, "entity": ENTITY})))
def test_mewslix_pairs_reader(pairs):
    _load_raw(tasks.get("mewslix-wikipedia"), "validation", "en",
              {"wikipedia_pairs-dev.jsonl": pairs})


def test_every_raw_reader_is_covered():
    """A new raw reader gets a property here."""
    covered = {"udpos", "udpos_r", "panx", "panx_r", "xquad", "ccg", "tatoeba", "tatoeba_r",
               "bucc2018", "mlm"}
    readers = {name for name, t in tasks.REGISTRY.items() if t.raw_reader is not None}
    # panx-sample / tatoeba-sample: the panx and tatoeba readers on the shipped files
    new = readers - covered - {"lareqa", "mewslix", "mewslix-wikipedia", "panx-sample",
                               "tatoeba-sample"}
    if new:
        pytest.fail(f"raw readers without a property test: {sorted(new)}")
