"""Tagging (UD-POS, PAN-X / WikiANN, CCG): real samples row for row, raw readers against the
Hub rows, first-sub-token labels, windows, bad input, and a tiny model that learns."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import datasets
import pytest
import torch
from conftest import SHARED
from test_translated import HUB_REQUESTS as TRANSLATED_REQUESTS
from test_translated import write_missing_hub_samples as write_translated_samples

from xtl.core.errors import ConfigError, DataError
from xtl.core.hparams import Hparams
from xtl.data import sources, tasks
from xtl.data.readers import conllu, panx
from xtl.data.tasks import tagging
from xtl.data.tasks import tagging_rows as tag_rows
from xtl.data.tasks import tagging_windows as tag_windows
from xtl.evaluation import aggregate, evaluate
from xtl.model.models import build
from xtl.training import train

RAW = SHARED / "data" / "raw"
UD25 = RAW / "udpos" / "ud-treebanks-v2.5"
XT = "google/xtreme"

# task -> [(canonical split, language, the (repo id, config, split) the kit must request)].
# The translated-data tasks' table lives in test_translated.py (test_sources only collects
# tests/test_tasks_*.py), merged here.
HUB_REQUESTS = {
    "udpos": [("train", "en", (XT, "udpos.English", "train")),
              ("validation", "de", (XT, "udpos.German", "validation")),
              ("test", "hi", (XT, "udpos.Hindi", "test"))],
    "udpos_r": [("test", "ar", (XT, "udpos.Arabic", "test"))],
    "panx": [("train", "en", (XT, "PAN-X.en", "train")),
             ("validation", "zh", (XT, "PAN-X.zh", "validation")),
             ("test", "sw", (XT, "PAN-X.sw", "test"))],
    "panx_r": [("train", "qu", ("unimelb-nlp/wikiann", "qu", "train")),
               ("validation", "de", ("unimelb-nlp/wikiann", "de", "validation")),
               ("test", "pl", ("unimelb-nlp/wikiann", "pl", "test"))],
    **TRANSLATED_REQUESTS,
}


def write_missing_hub_samples(root: Path) -> None:
    """Every tagging task has real samples; the translated QA tasks need stand-ins."""
    write_translated_samples(root)


@pytest.fixture
def raw_root() -> Path:
    if not RAW.is_dir():
        pytest.skip("../shared/data/raw is not present (fresh clone)")
    return RAW


def load(name: str, split: str, language: str, mirror: Path) -> sources.Split:
    return sources.load(tasks.get(name), split, language, mirror)


# --- real samples: exact rows (MANIFEST.md) and tag sets ------------------------------------

UDPOS_SAMPLES = [("train", "en", 200), ("validation", "en", 156), ("test", "en", 353),
                 ("validation", "de", 200), ("test", "de", 200), ("test", "ar", 200),
                 ("test", "hi", 200)]
PANX_SAMPLED = ("ar", "de", "en", "hi", "sw", "zh")
PANX_SAMPLES = [(name, lang, split, n) for name in ("panx", "panx_r") for lang in PANX_SAMPLED
                for split, n in (("train", 200), ("validation", 200), ("test", 1))]
PANX_SAMPLES += [("panx_r", lang, split, n) for lang, size in (("pl", 200), ("qu", 100))
                 for split, n in (("train", size), ("validation", size), ("test", 1))]


@pytest.mark.parametrize("name", ["udpos", "udpos_r"])
@pytest.mark.parametrize(("split", "language", "n"), UDPOS_SAMPLES)
def test_udpos_samples(hub_mirror, name, split, language, n):
    loaded = load(name, split, language, hub_mirror)
    assert (len(loaded.rows), loaded.unusable) == (n, {})
    assert tag_rows.tag_names(loaded.rows) == list(tagging.UPOS)
    assert {len(t) for t in loaded.rows["tokens"]} and all(
        len(a) == len(b) > 0 for a, b in zip(loaded.rows["tokens"], loaded.rows["tags"],
                                             strict=True))


@pytest.mark.parametrize(("name", "language", "split", "n"), PANX_SAMPLES)
def test_panx_samples(hub_mirror, name, language, split, n):
    loaded = load(name, split, language, hub_mirror)
    assert (len(loaded.rows), loaded.unusable) == (n, {})
    assert tag_rows.tag_names(loaded.rows) == list(tagging.NER_TAGS)
    refs = tag_rows.references(loaded.rows)
    assert {t for row in refs for t in row} <= set(tagging.NER_TAGS)


@pytest.mark.parametrize("language", PANX_SAMPLED)
def test_wikiann_rows_equal_google_xtreme_rows(hub_mirror, language):
    for split in ("train", "validation", "test"):
        a, b = load("panx", split, language, hub_mirror), load("panx_r", split, language,
                                                               hub_mirror)
        assert a.rows[:] == b.rows[:]


def test_task_definitions_match_the_official_language_lists():
    official = aggregate.LANGUAGES
    for name, bench, key in (("udpos", "xtreme", "udpos"), ("udpos_r", "xtreme-r", "udpos"),
                             ("panx", "xtreme", "panx"), ("panx_r", "xtreme-r", "panx")):
        task = tasks.get(name)
        assert sorted(task.languages) == sorted(official[bench][key]), name
        assert (task.format, task.train_language, task.train_task) == ("tagging", "en", None)
        assert (task.hparams["epochs"], task.hparams["max_length"]) == (10, 256)
    assert {tasks.get(n).metric for n in ("udpos", "udpos_r")} == {"udpos_f1"}
    assert {tasks.get(n).metric for n in ("panx", "panx_r")} == {"seqeval_f1"}
    udpos = tasks.get("udpos")
    assert udpos.hub_config("en") == "udpos.English" and udpos.hub_config("fa") == "udpos.Persian"
    assert len(udpos.languages) == 33 and len(tasks.get("panx_r").languages) == 48
    assert tasks.get("udpos_r").from_raw("wo") and not tasks.get("udpos_r").from_raw("en")
    assert tasks.get("panx_r").hub_config("qu") == "qu"


# --- UPOS: the UD Hub repo's 18 names (other order, "_") map by name --------------------------

UD_UPOS = ["NOUN", "PUNCT", "ADP", "NUM", "SYM", "SCONJ", "ADJ", "PART", "DET", "CCONJ", "PROPN",
           "PRON", "X", "_", "ADV", "INTJ", "VERB", "AUX"]  # docs/data.md section 2
UD_TASK = tasks.Task(name="ud-ewt", format="tagging", languages=("en_ewt",),
                     label_names=tagging.UPOS,
                     hub_id="universal-dependencies/universal_dependencies",
                     fields={"tokens": "tokens", "tags": "upos", "id": "idx"})


def test_ud_label_order_maps_by_name():
    assert set(UD_UPOS) - {"_"} == set(tagging.UPOS) and UD_UPOS != list(tagging.UPOS)
    features = datasets.Features({"idx": datasets.Value("string"),
                                  "tokens": datasets.Sequence(datasets.Value("string")),
                                  "upos": datasets.Sequence(datasets.ClassLabel(names=UD_UPOS))})
    every = [UD_UPOS.index(n) for n in tagging.UPOS]
    raw = datasets.Dataset.from_dict({
        "idx": ["s1", "s2", "s3"],
        "tokens": [list(tagging.UPOS), ["don't", "do", "n't"], ["_", "_"]],
        "upos": [every, [UD_UPOS.index(x) for x in ("_", "AUX", "PART")], [13, 13]],
    }, features=features)
    rows, report = tag_rows.canonicalize(UD_TASK, raw, "train", "en_ewt")
    assert tag_rows.references(rows) == [list(tagging.UPOS), ["AUX", "PART"]]
    assert rows["tags"][0] == list(range(17)) and rows["id"] == ["s1", "s2"]
    assert rows["tokens"][1] == ["do", "n't"]  # the multi-word token "don't" dropped
    assert report == {tag_rows.NO_TOKENS: 1, tag_rows.REPAIRED: 1}


def test_ud_hub_sample_maps_by_name(hub_mirror):
    loaded = sources.load(UD_TASK, "train", "en_ewt", hub_mirror)
    assert len(loaded.rows) == 1 and loaded.rows["tokens"] == [["Al"]]
    assert tag_rows.references(loaded.rows) == [["PROPN"]]  # index 10 there, 11 here
    assert loaded.rows["tags"] == [[tagging.UPOS.index("PROPN")]]


# --- raw release files give the Hub rows ------------------------------------------------------

def _raw_only(name: str, **changes) -> tasks.Task:
    return dataclasses.replace(tasks.get(name), hub_languages=(), **changes)


@pytest.mark.parametrize(("split", "language", "n"), UDPOS_SAMPLES)
def test_udpos_raw_v25_equals_hub(raw_root, hub_mirror, split, language, n):
    from_raw = sources.load(_raw_only("udpos"), split, language, raw=raw_root)
    from_hub = load("udpos", split, language, hub_mirror)
    assert from_raw.source == "raw" and len(from_raw.rows) == len(from_hub.rows) == n
    raw_rows, hub_rows = from_raw.rows[:], from_hub.rows[:]
    if (split, language) == ("test", "en"):
        # The one difference: google/xtreme keeps en_pud's empty node `7.1 started` (it has a
        # UPOS), the CoNLL-U reader skips empty nodes (not surface words).
        raw24, hub24 = from_raw.rows[24], from_hub.rows[24]
        assert hub24["tokens"] == raw24["tokens"][:7] + ["started"] + raw24["tokens"][7:]
        for rows in (raw_rows, hub_rows):
            for column in rows.values():
                del column[24]
    assert raw_rows == hub_rows


def test_udpos_raw_languages_come_from_v27(tmp_path):
    folder = tmp_path / "udpos" / "ud-treebanks-v2.7" / "UD_Wolof-WTB"
    folder.mkdir(parents=True)
    (folder / "wo_wtb-ud-test.conllu").write_text(
        "# sent_id = 1\n1\tJàng\tjàng\tVERB\t_\t_\t0\troot\t_\t_\n2\t.\t.\tPUNCT\t_\t_\t1\tpunct"
        "\t_\t_\n\n", encoding="utf-8")
    loaded = sources.load(tasks.get("udpos_r"), "test", "wo", raw=tmp_path)
    assert loaded.source == "raw" and tag_rows.references(loaded.rows) == [["VERB", "PUNCT"]]
    with pytest.raises(DataError, match="no .*-ud-dev.conllu .*_Wolof"):
        sources.load(tasks.get("udpos_r"), "validation", "wo", raw=tmp_path)
    (tmp_path / "v25-only" / "udpos" / "ud-treebanks-v2.5").mkdir(parents=True)
    with pytest.raises(DataError, match="ud-treebanks-v2.7' does not exist; unpack"):
        sources.load(tasks.get("udpos_r"), "test", "lt", raw=tmp_path / "v25-only")


def test_udpos_precheck_names_the_missing_release_or_treebank(tmp_path, raw_root):
    """The plan / smoke pre-check sees what the UD reader would miss (it used to pass, and the
    XTREME-R smoke cell then crashed on the missing v2.7 release)."""
    task = tasks.get("udpos_r")
    folder = tmp_path / "udpos" / "ud-treebanks-v2.7" / "UD_Wolof-WTB"
    folder.mkdir(parents=True)
    (folder / "wo_wtb-ud-test.conllu").write_text("1\tJàng\tjàng\tVERB\t_\t_\t0\troot\t_\t_\n\n")
    sources.check_available(task, "test", "wo", None, tmp_path)
    with pytest.raises(DataError, match=r"udpos_r/wo/validation: raw file \*-ud-dev.conllu "
                       r"missing in .*needs ud-treebanks-v2.7/\*_Wolof\*/\*-ud-dev.conllu"):
        sources.check_available(task, "validation", "wo", None, tmp_path)
    with pytest.raises(DataError, match=r"needs ud-treebanks-v2.7/\*_Lithuanian\*/"):
        sources.check_available(task, "test", "lt", None, raw_root)  # the samples lack v2.7
    sources.check_available(_raw_only("udpos"), "validation", "de", None, raw_root)  # v2.5
    with pytest.raises(DataError, match=r"udpos/de/train: raw file \*-ud-train.conllu"):
        sources.check_available(_raw_only("udpos"), "train", "de", None, raw_root)


@pytest.mark.parametrize("language", PANX_SAMPLED)
def test_panx_raw_preprocessed_equals_hub(raw_root, hub_mirror, language):
    task = _raw_only("panx", raw_path="panx/xtreme_preprocessed")
    for split in ("train", "validation"):
        from_raw = sources.load(task, split, language, raw=raw_root)
        assert from_raw.rows[:] == load("panx", split, language, hub_mirror).rows[:]
    with pytest.raises(DataError, match=r"no usable rows .*no gold tags.*: 200"):
        sources.load(task, "test", language, raw=raw_root)  # XTREME's test files: tokens only


@pytest.mark.parametrize("language", PANX_SAMPLED)
def test_panx_raw_member_prefix_is_stripped(raw_root, hub_mirror, language):
    member = RAW / f"panx/hf_dummy/xtreme/PAN-X.{language}__1.1.0/dummy_data/{language}.tar.gz"
    lines = (member / "test").read_text(encoding="utf-8").split("\n")
    assert lines[0].startswith(f"{language}:")
    rows = panx.read_file(member / "test", language)
    hub = load("panx", "test", language, hub_mirror).rows
    assert [r["tokens"] for r in rows] == hub["tokens"]
    assert [r["ner_tags"] for r in rows] == tag_rows.references(hub)


# --- the CoNLL-U reader and bad input -------------------------------------------------------

CONLLU = """# sent_id = a
# text = Don't stop.
1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tDo\tdo\tAUX\t_\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\t_\t_\t3\tadvmod\t_\t_
3\tstop\tstop\tVERB\t_\t_\t0\troot\t_\t_
3.1\tstop\tstop\tVERB\t_\t_\t_\t_\t3:conj\t_
4\t.\t.\tPUNCT\t_\t_\t3\tpunct\t_\t_

1\t_\t_\tNOUN\t_\t_\t0\troot\t_\t_
2\tok\tok\t_\t_\t_\t1\tdep\t_\t_
"""


def test_conllu_reader_skips_comments_ranges_and_empty_nodes(tmp_path):
    path = tmp_path / "x-ud-train.conllu"
    path.write_text(CONLLU, encoding="utf-8")  # the last sentence has no final blank line
    rows = conllu.read_file(path)
    assert rows == [{"tokens": ["Do", "n't", "stop", "."],
                     "pos_tags": ["AUX", "PART", "VERB", "PUNCT"]},
                    {"tokens": ["_", "ok"], "pos_tags": ["_", "_"]}]
    task = tasks.Task(name="t", format="tagging", languages=("en",), label_names=tagging.UPOS,
                      hub_id="x/y", fields={"tokens": "tokens", "tags": "pos_tags"})
    canon, report = tag_rows.canonicalize(task, datasets.Dataset.from_list(rows), "train", "en")
    assert len(canon) == 1 and report == {tag_rows.NO_TOKENS: 1}


@pytest.mark.parametrize(("line", "message"), [
    ("1\tword\tword\tNOUN", r"bad\.conllu:3: not a CoNLL-U token line: expected 10"),
    ("x\tword\tword\tNOUN\t_\t_\t0\troot\t_\t_", r"bad\.conllu:3: ID 'x' is not a word id"),
    ("3\tword\tword\tNOUN\t_\t_\t0\troot\t_\t_", r"bad\.conllu:3: word id 3 out of sequence"),
])
def test_malformed_conllu_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.conllu"
    path.write_text(f"# c\n1\ta\ta\tDET\t_\t_\t0\troot\t_\t_\n{line}\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=message):
        conllu.read_file(path)


def test_panx_reader_bad_input_names_file_and_line(tmp_path):
    bad = tmp_path / "train-en.tsv"
    bad.write_text("Paris\tB-LOC\n\nis\tO\tX\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train-en\.tsv:3: not a PAN-X token line"):
        panx.read_file(bad, "en")
    bad.write_text("Paris\tB-LOC\nis\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train-en\.tsv:2: this line has no tag"):
        panx.read_file(bad, "en")
    bad.write_text(CONLLU, encoding="utf-8")  # a CoNLL-U file given as PAN-X: wrong format
    with pytest.raises(DataError, match=r"train-en\.tsv:3: not a PAN-X token line"):
        panx.read_file(bad, "en")
    ok = tmp_path / "dev-en.tsv"
    ok.write_text("en:x\tO\nen:en:y\tB-PER\n", encoding="utf-8")  # prefix stripped once
    assert panx.read_file(ok, "en") == [{"tokens": ["x", "en:y"], "ner_tags": ["O", "B-PER"]}]
    ok.write_text("http://a\tO\nen:y\tO\n", encoding="utf-8")  # not every line: kept as is
    assert panx.read_file(ok, "en")[0]["tokens"] == ["http://a", "en:y"]


def test_tag_outside_the_tag_set_is_named():
    raw = datasets.Dataset.from_dict({"tokens": [["a"], ["Paris", "Texas"]],
                                      "ner_tags": [["O"], ["B-LOC", "B-MISC"]]})
    with pytest.raises(DataError, match=r"panx/en/train row 1: tag 'B-MISC' is outside the tag "
                                        r"set \[O, B-PER"):
        tag_rows.canonicalize(tasks.get("panx"), raw, "train", "en")
    ids = datasets.Dataset.from_dict({"tokens": [["Paris", "x"], ["y"]], "ner_tags": [[5, 0], [9]]})
    with pytest.raises(DataError, match=r"row 1: tag id 9 is outside the tag set"):
        tag_rows.canonicalize(tasks.get("panx"), ids, "train", "en")
    rows, _ = tag_rows.canonicalize(tasks.get("panx"), ids.select([0]), "train", "en")
    assert tag_rows.references(rows) == [["B-LOC", "O"]]  # plain ints index the task's tags
    uneven = datasets.Dataset.from_dict({"tokens": [["a", "b"]], "ner_tags": [["O"]]})
    with pytest.raises(DataError, match="row 0: 2 tokens but 1 tags"):
        tag_rows.canonicalize(tasks.get("panx"), uneven, "train", "en")
    with pytest.raises(DataError, match=r"columns \['ner_tags'\] missing"):
        tag_rows.canonicalize(tasks.get("panx"), uneven.rename_column("ner_tags", "t"), "train",
                             "en")


# --- CCG: bring your own jiant-format files ---------------------------------------------------

def _write_ccg(folder: Path, dev: str = "the dog\tNP[nb]/N N\n") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ccg.train").write_text(
        "The cat sleeps\tNP[nb]/N N S[dcl]\\NP\nDogs bark .\tN S[dcl]\\NP .\n", encoding="utf-8")
    (folder / "ccg.dev").write_text(dev, encoding="utf-8")


def test_ccg_tag_set_from_the_training_file(tmp_path):
    _write_ccg(tmp_path / "ccg")
    ccg = tasks.get("ccg")
    assert ccg.hub_id is None and ccg.from_raw("en") and ccg.raw_path == "ccg"
    train_rows = sources.load(ccg, "train", "en", raw=tmp_path)
    names = tag_rows.tag_names(train_rows.rows)
    assert names == [".", "N", "NP[nb]/N", "S[dcl]\\NP"]  # sorted tags of ccg.train
    assert tag_rows.references(train_rows.rows) == [["NP[nb]/N", "N", "S[dcl]\\NP"],
                                                   ["N", "S[dcl]\\NP", "."]]
    dev = sources.load(ccg, "validation", "en", raw=tmp_path)
    assert tag_rows.tag_names(dev.rows) == names and dev.rows["tokens"] == [["the", "dog"]]
    with pytest.raises(DataError, match="ccg.test' does not exist; CCG is bring-your-own"):
        sources.load(ccg, "test", "en", raw=tmp_path)


def test_ccg_tags_to_id_and_bad_files(tmp_path):
    _write_ccg(tmp_path / "ccg", dev="a b\tN (S\\NP)/NP\n")
    with pytest.raises(DataError, match=r"ccg\.dev:1: tag '\(S\\\\NP\)/NP' is outside the tag "
                                        r"set \(4 tags from the training file\)"):
        sources.load(tasks.get("ccg"), "validation", "en", raw=tmp_path)
    ids = {t: i for i, t in enumerate(["N", "(S\\NP)/NP", ".", "NP[nb]/N", "S[dcl]\\NP"])}
    (tmp_path / "ccg" / "tags_to_id.json").write_text(json.dumps(ids), encoding="utf-8")
    dev = sources.load(tasks.get("ccg"), "validation", "en", raw=tmp_path)
    assert tag_rows.tag_names(dev.rows) == list(ids) and dev.rows["tags"] == [[0, 1]]
    (tmp_path / "ccg" / "ccg.dev").write_text("a b\tN\nc\tN\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"ccg\.dev:1: 2 words but 1 tags"):
        sources.load(tasks.get("ccg"), "validation", "en", raw=tmp_path)
    (tmp_path / "ccg" / "ccg.dev").write_text("ok\tN\nno tab here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"ccg\.dev:2: expected '<sentence><TAB><tags>'"):
        sources.load(tasks.get("ccg"), "validation", "en", raw=tmp_path)


# --- features: first sub-token labels, windows ------------------------------------------------

HP = Hparams({"learning_rate": 3e-3, "epochs": 3, "batch_size": 16, "max_length": 32,
                        "precision": "fp32"})


def test_first_sub_token_labels_by_hand(tiny_dir):
    _, tok, _ = build(tiny_dir, [tasks.get("panx")], seed=0)
    batch = {"id": ["r0"], "tokens": [["Hello", "world"]], "tags": [[1, 2]]}
    feats = tag_windows.featurize(batch, tok, HP, train=True)
    pieces = tok.convert_ids_to_tokens(feats["input_ids"][0])
    # hand-checked with the tiny byte-level BPE: Hello = ĠH e l lo, world = Ġw or ld
    assert pieces == ["<s>", "ĠH", "e", "l", "lo", "Ġw", "or", "ld", "</s>"]
    assert feats["labels"][0] == [-100, 1, -100, -100, -100, 2, -100, -100, -100]
    assert feats["attention_mask"][0] == [1] * 9 and set(feats) == {
        "input_ids", "attention_mask", "labels"}
    evaluation = tag_windows.featurize(batch, tok, HP, train=False)
    assert evaluation["word_index"][0] == [-1, 0, -1, -1, -1, 1, -1, -1, -1]
    assert evaluation["window"] == [0] and evaluation["example_id"] == ["r0"]
    padded = tag_windows.collator(tok)([{k: evaluation[k][0] for k in evaluation},
                                    {"input_ids": [0, 2], "attention_mask": [1, 1],
                                     "labels": [-100, -100]}])
    assert set(padded) == {"input_ids", "attention_mask", "labels"}
    assert padded["input_ids"][1].tolist() == [0, 2] + [tok.pad_token_id] * 7
    assert padded["labels"][1].tolist() == [-100] * 9


def test_long_sentences_are_windowed_and_every_word_predicted(tiny_dir):
    _, tok, _ = build(tiny_dir, [tasks.get("panx")], seed=0)
    words = [f"w{k}" for k in range(40)]
    hp = HP | {"max_length": 16, "doc_stride": 128}  # room 14, overlap 7 (room // 2)
    batch = {"id": ["long"], "tokens": [words], "tags": [[0] * 40]}
    train_feats = tag_windows.featurize(batch, tok, hp, train=True)
    assert len(train_feats["input_ids"]) == 1 and len(train_feats["input_ids"][0]) == 16
    feats = tag_windows.featurize(batch, tok, hp, train=False)
    n_tokens = len(tok([words], is_split_into_words=True, add_special_tokens=False)
                   ["input_ids"][0])
    assert feats["window"] == list(range(len(tag_windows.window_starts(n_tokens, 14, 7))))
    assert all(len(ids) <= 16 for ids in feats["input_ids"])
    seen = {w for positions in feats["word_index"] for w in positions if w >= 0}
    assert seen == set(range(40))
    # the window where a word sits most centrally wins: tag = the window number
    predicted = [[k] * len(p) for k, p in enumerate(feats["word_index"])]
    tags = tag_windows.word_tags([40], feats["window"], feats["word_index"], predicted, 1, 1)[0]
    assert None not in tags and tags[0] == 0 and tags[-1] == feats["window"][-1]
    assert tags == sorted(tags)  # later words are predicted in later windows


def test_word_tags_handles_unseen_words_and_checks_rows():
    positions = [[-1, 0, -1, 2, -1]]  # word 1 has no sub-token
    assert tag_windows.word_tags([3], [0], positions, [[9, 4, 9, 5, 9]], 1, 1) == [[4, None, 5]]
    with pytest.raises(DataError, match="1 rows, the split 2"):
        tag_windows.word_tags([3, 1], [0], positions, [[9, 4, 9, 5, 9]], 1, 1)
    assert tag_rows.fallback_tag(tagging.NER_TAGS) == "O"
    assert tag_rows.fallback_tag(tagging.UPOS) == "X"


def test_too_small_max_length_is_a_config_error(tiny_dir):
    _, tok, _ = build(tiny_dir, [tasks.get("panx")], seed=0)
    with pytest.raises(ConfigError, match="max_length 3 leaves no room"):
        tag_windows.featurize({"id": ["a"], "tokens": [["x"]], "tags": [[0]]}, tok,
                          HP | {"max_length": 3})


# --- a tiny model learns a toy tagging set (tag = f(word)) and is evaluated -------------------

PEOPLE, PLACES = ("anna", "peter", "maria", "john"), ("paris", "berlin", "tokyo", "lima")
FILLER = ("the", "a", "saw", "went", "to", "and", "from", "with", "in", "today")
TOY = tag_rows.TaggingTask(name="toy-ner", format="tagging", languages=("en", "de"),
                          label_names=tagging.NER_TAGS, hub_id="toy/ner",
                          fields={"tokens": "words", "tags": "ner"}, metric="seqeval_f1")


def _toy_rows(n: int, seed: int) -> dict:
    g = random.Random(seed)
    rows: dict[str, list] = {"words": [], "ner": []}
    for _ in range(n):
        words = [g.choice(PEOPLE + PLACES + FILLER) for _ in range(g.randint(3, 9))]
        rows["words"].append(words)
        rows["ner"].append([1 if w in PEOPLE else 5 if w in PLACES else 0 for w in words])
    return rows


@pytest.fixture(scope="module")
def toy_mirror(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy-tagging")
    features = datasets.Features({"words": datasets.Sequence(datasets.Value("string")),
                                  "ner": datasets.Sequence(datasets.ClassLabel(
                                      names=list(tagging.NER_TAGS)))})
    for language, seed in (("en", 0), ("de", 5)):
        for split, n in (("train", 96), ("validation", 32)):
            folder = root / "toy/ner" / language
            folder.mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_dict(_toy_rows(n, seed + len(split)), features=features
                                       ).to_parquet(str(folder / f"{split}-00000.parquet"))
    return root


def test_tiny_model_learns_toy_tags_and_evaluates(tiny_dir, toy_mirror, tmp_path):
    train_split = sources.load(TOY, "train", "en", toy_mirror)
    dev = sources.load(TOY, "validation", "en", toy_mirror)
    model, tok, _ = build(tiny_dir, [TOY], seed=0)
    result = train.fit(model, tok, TOY, train_split, dev, HP | {"eval_every": 18}, 0,
                       tmp_path / "ckpt", tmp_path / "history.jsonl", {"cell": "toy"})
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(losses) == 18  # 3 epochs x 96 / 16
    assert sum(losses[-4:]) / 4 < 0.3 * sum(losses[:4]) / 4
    assert result.best_score > 60
    splits = [dev, sources.load(TOY, "validation", "de", toy_mirror)]
    records, examples = evaluate.evaluate(model, tok, TOY, splits, HP)
    assert [(r["language"], r["metric"], r["n"]) for r in records] == [
        ("en", "f1", 32), ("en", "token_accuracy", 32), ("de", "f1", 32),
        ("de", "token_accuracy", 32)]
    assert all(r["value"] > 60 for r in records)
    assert len(examples) == 64 and all(len(e["prediction"]) == len(e["reference"])
                                       for e in examples)
    words = sources.load(TOY, "validation", "de", toy_mirror).rows["tokens"]
    assert [len(e["prediction"]) for e in examples[32:]] == [len(w) for w in words]
    assert torch.isfinite(torch.tensor([r["value"] for r in records])).all()


def test_label_goes_past_a_bare_word_start_marker_under_the_content_rule():
    """e5/XLM-R split a CJK character into "▁" + the character: v1's rule labels the character
    (tests/test_protocol.py has both rules on a real SentencePiece-style tokenizer)."""
    from xtl.data.tasks.tagging_windows import _label_positions

    bare = 6
    # word 0 = ["▁", "微"], word 1 = ["▁软"] (content first), word 2 = ["▁"] only
    assert _label_positions([0, 0, 1, 2, -1], [bare, 10, 11, bare, 2], {bare}, "content") == \
        [-1, 0, 1, 2, -1]
    assert _label_positions([0, 0, 1], [5, 10, 11], {bare}, "content") == [0, -1, 1]
    # the official rule (default): the first sub-token, bare or not
    assert _label_positions([0, 0, 1, 2, -1], [bare, 10, 11, bare, 2], {bare}) == \
        [0, -1, 1, 2, -1]
