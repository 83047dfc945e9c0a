"""The synthetic benchmark measures transfer, not memory: disjoint parts of the meaning space
(an intermediate stage never trains on what its targets train or evaluate on), an open NER
vocabulary (no evaluation name is ever trained on, in any language) and NLI labels that
length/overlap features cannot predict (xtl/offline/synth/common.py, ner.py, nli.py)."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from xtl.data import sources, tasks
from xtl.evaluation import shortcuts
from xtl.offline.synth import common, ner, nli, qa, retrieval

STAGE_TASKS = ("synth-nli", "synth-qa", "synth-ner")  # the offline intermediate tasks
CHANCE = 100 / 3
MARGIN = 5  # points above chance a surface shortcut may reach


# --------------------------------------------------------------------------- wiring


@pytest.mark.parametrize("name", STAGE_TASKS)
def test_a_target_fine_tunes_on_its_own_part(name):
    task = tasks.get(name)
    variant = tasks.get(task.train_task)
    assert variant.name == f"{name}_target-train" and variant.languages == ("en",)
    assert variant.format == task.format and variant.label_names == task.label_names
    stage = sources.load(task, "train", "en", size=50).rows.to_list()
    target = sources.load(variant, "train", "en", size=50).rows.to_list()
    # validation and test are the task's own: both roles evaluate the same rows
    assert sources.load(variant, "validation", "en", size=20).rows.to_list() == \
        sources.load(task, "validation", "en", size=20).rows.to_list()
    text = {name: {str(r) for r in rows} for name, rows in (("stage", stage), ("target", target))}
    assert not text["stage"] & text["target"]


def test_parts_split_the_meaning_space():
    counts = Counter(common.part_of(f"meaning {i}") for i in range(20_000))
    assert set(counts) == set(common.PARTS)
    shares = {part: counts[part] / 20_000 for part in common.PARTS}
    assert shares["stage"] == pytest.approx(0.4, abs=0.02)
    for part in ("target", "validation", "test"):
        assert shares[part] == pytest.approx(0.2, abs=0.02)


def test_bad_train_part():
    with pytest.raises(ValueError, match="'eval'"):
        nli.generate("en", "train", 3, train_part="eval")


# --------------------------------------------------------------------------- disjoint parts


def _nli_keys(split, n, train_part="stage"):
    return {nli.key(f) for p, h, _ in nli.sample_frames(split, n, 0, train_part) for f in (p, h)}


def _qa_keys(split, n, train_part="stage"):
    return {nli.key(f) for item in qa.sample_items(split, n, 0, train_part)
            for f in item.sentences}


def _retrieval_keys(split, n):
    return {nli.key(f) for f in retrieval.sample_frames(split, n)}


def test_no_sentence_meaning_crosses_parts():
    # every sentence of the frame-based tasks (nli, qa, retrieval), by part
    parts = {
        "stage": _nli_keys("train", 1200) | _qa_keys("train", 1000),
        "target": _nli_keys("train", 1200, "target") | _qa_keys("train", 1000, "target"),
        "validation": (_nli_keys("validation", 300) | _qa_keys("validation", 200)
                       | _retrieval_keys("validation", 200)),
        "test": _nli_keys("test", 300) | _qa_keys("test", 200) | _retrieval_keys("test", 1000),
    }
    for a, b in itertools.combinations(parts, 2):
        assert not parts[a] & parts[b], (a, b)
    for part, keys in parts.items():
        assert all(common.part_of(k) == part for k in keys), part


@pytest.mark.parametrize("language", nli.LANGUAGES)
def test_nli_sentences_never_cross_parts_in_any_language(language):
    frames = {"stage": nli.sample_frames("train", 1200),
              "target": nli.sample_frames("train", 1200, 0, "target"),
              "validation": nli.sample_frames("validation", 300),
              "test": nli.sample_frames("test", 300)}
    text = {part: {nli.render(f, language) for p, h, _ in rows for f in (p, h)}
            for part, rows in frames.items()}
    for a, b in itertools.combinations(text, 2):
        assert not text[a] & text[b], (language, a, b)


# --------------------------------------------------------------------------- open vocabulary


def _entities(row):
    out = []
    for token, tag in zip(row["tokens"], row["ner_tags"], strict=True):
        name = ner.TAGS[tag]
        if name.startswith("B-"):
            out.append([token])
        elif name.startswith("I-"):
            out[-1].append(token)
    return {("" if row["langs"][0] == "zh" else " ").join(e) for e in out}


@pytest.mark.parametrize("language", ner.LANGUAGES)
def test_no_evaluation_entity_occurs_in_training(language):
    trained = set()
    for part in common.TRAIN_PARTS:
        for row in ner.generate(language, "train", 1000, train_part=part):
            trained |= _entities(row)
    for split in ("validation", "test"):
        evaluated = set().union(*(_entities(r) for r in ner.generate(language, split, 200)))
        assert evaluated and not evaluated & trained, (language, split)


def test_names_belong_to_one_part():
    names = {}
    for split, part in (("train", "stage"), ("train", "target"), ("validation", None),
                        ("test", None)):
        sentences = ner.sample_sentences(split, 600, train_part=part or "stage")
        names[part or split] = {n for s in sentences for n in s.names()}
    for a, b in itertools.combinations(names, 2):
        assert not names[a] & names[b], (a, b)
    assert all(ner.name_part(n) == part for part, found in names.items() for n in found)


def test_memorising_english_training_tags_finds_no_evaluation_entity():
    train = ner.generate("en", "train", 1000, train_part="target")
    fit = [[ner.TAGS[t] for t in r["ner_tags"]] for r in train]
    for language in ner.LANGUAGES:
        rows = ner.generate(language, "validation", 200)
        guess = shortcuts.lookup_tags([r["tokens"] for r in train], fit,
                                      [r["tokens"] for r in rows])
        found = {(i, j, t) for i, tags in enumerate(guess) for j, t in enumerate(tags)
                 if t.startswith("B-")}
        gold = {(i, j, ner.TAGS[t]) for i, r in enumerate(rows)
                for j, t in enumerate(r["ner_tags"]) if ner.TAGS[t].startswith("B-")}
        assert not found & gold, language  # not one entity start is remembered


# --------------------------------------------------------------------------- NLI balance


def test_nli_rows_come_in_label_triples_with_one_signature():
    rows = nli.sample_frames("train", 1200)
    for k in range(0, 1200, 3):
        triple = rows[k:k + 3]
        assert sorted(label for *_, label in triple) == [0, 1, 2]
        assert len({nli.signature(p, h) for p, h, _ in triple}) == 1


def test_english_words_match_the_shortcut_tokenizer():
    for p, h, _ in nli.sample_frames("validation", 300):
        for frame in (p, h):
            text = nli.render(frame, "en")
            assert nli._english_words(text) == shortcuts.words(text)


def test_overlap_and_length_cannot_predict_nli_labels():
    train = nli.generate("en", "train", 1200)
    tree = shortcuts.overlap_tree([r["premise"] for r in train], [r["hypothesis"] for r in train],
                                  [r["label"] for r in train])
    for language in nli.LANGUAGES:
        rows = nli.generate(language, "validation", 300)
        guess = shortcuts.tree_predict(tree, [r["premise"] for r in rows],
                                       [r["hypothesis"] for r in rows])
        accuracy = 100 * sum(g == r["label"] for g, r in zip(guess, rows, strict=True)) / 300
        assert accuracy <= CHANCE + MARGIN, (language, accuracy)


def test_the_tree_would_catch_the_old_cues():
    # the same shortcut on rows whose labels follow their lengths: it is not blind
    train = nli.generate("en", "train", 600)
    hyps = [r["premise"] + " x" * r["label"] for r in train]
    tree = shortcuts.overlap_tree([r["premise"] for r in train], hyps, [r["label"] for r in train])
    guess = shortcuts.tree_predict(tree, [r["premise"] for r in train], hyps)
    assert sum(g == r["label"] for g, r in zip(guess, train, strict=True)) == 600
