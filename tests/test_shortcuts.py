"""Shortcut baselines (evaluation.shortcuts): what each computes, on hand-made rows and on the real
samples, how a cell stores them, and how the reports compare them with the model."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from xtl.analysis import sections
from xtl.cells import phases
from xtl.core import chance
from xtl.data import sources, tasks
from xtl.evaluation import shortcuts


def test_lookup_tags_memorises_the_most_frequent_tag():
    train = [["Anna", "lives", "in", "Paris"], ["Paris", "Hilton", "sings"]]
    tags = [["B-PER", "O", "O", "B-LOC"], ["B-PER", "I-PER", "O"]]
    guess = shortcuts.lookup_tags(train, tags, [["Anna", "sings", "in", "Rome"], ["Paris"]])
    # "Paris" is LOC once and PER once: the tag seen first wins the tie; "Rome" is unseen
    assert guess == [["B-PER", "O", "O", "O"], ["B-LOC"]]
    assert shortcuts.majority_tags(tags, [["a", "b"]]) == [["O", "O"]]


def test_words_are_language_independent():
    assert shortcuts.words("In the garden, the cat is sleeping.") == [
        "in", "the", "garden", "the", "cat", "is", "sleeping"]
    assert shortcuts.words("猫在睡觉。") == ["猫", "在", "睡", "觉"]
    assert shortcuts.words("बिल्ली सो रही है।") == ["बिल्ली", "सो", "रही", "है"]


def test_overlap_features():
    features = dict(zip(shortcuts.FEATURES, shortcuts.overlap_features(
        "The cat is sleeping.", "The cat is not sleeping in the garden."), strict=True))
    assert features["premise words"] == 4 and features["hypothesis words"] == 8
    assert features["difference"] == 4 and features["ratio"] == 2
    assert features["new words"] == 3  # not, in, garden ("the" is shared)
    assert features["dropped words"] == 0
    assert features["hypothesis words in premise"] == pytest.approx(4 / 7)
    assert features["jaccard"] == pytest.approx(4 / 7)


def test_answer_lookup():
    train_q = ["Where is the cat sleeping?", "Where is the dog eating?", "What colour is it?"]
    train_a = ["in the kitchen", "in the kitchen", "black"]
    guess = shortcuts.answer_lookup(
        train_q, train_a,
        ["Where is the bird?", "What colour is the bird?", "Who is it?"],
        ["The bird is in the kitchen.", "The bird is black.", "Nothing known here."])
    assert guess == ["in the kitchen", "black", ""]


def test_random_ranking():
    assert chance.random_ranking(300) == pytest.approx(100 / 300)


def test_real_panx_sample_shortcuts():
    task = tasks.get("panx-sample")
    train = sources.load(task, "train", "en")
    found = {(b.language, b.baseline): b.value
             for lang in task.languages
             for b in shortcuts.for_split(task, train, sources.load(task, "validation", lang))}
    assert {v for (_, name), v in found.items() if name == "majority"} == {0.0}
    # 200 training sentences name few of the dev entities: memory scores little
    assert all(0 <= v < 10 for (_, name), v in found.items() if name == "lookup")
    assert found[("ar", "lookup")] == 0.0  # no Arabic token in English training


def test_tatoeba_sample_random_ranking():
    task = tasks.get("tatoeba-sample")
    [b] = shortcuts.for_split(task, None, sources.load(task, "validation", "de"))
    assert (b.baseline, b.metric, b.n) == ("random ranking", "accuracy", 300)
    assert b.value == pytest.approx(100 / 300)


def test_compare_says_which_shortcut_the_model_does_not_beat():
    records = [{"task": "t", "language": "en", "split": "validation", "metric": "f1",
                "value": 50.0},
               {"task": "t", "language": "de", "split": "validation", "metric": "f1",
                "value": 20.0}]
    baselines = [{"task": "t", "language": lang, "split": "validation", "baseline": name,
                  "metric": "f1", "value": value, "n": 10}
                 for lang, name, value in (("en", "lookup", 30.0), ("en", "majority", 0.0),
                                           ("de", "lookup", 25.0), ("de", "majority", 0.0))]
    frame = shortcuts.compare(records, baselines).set_index("language")
    assert frame.loc["en", "beats"] == "all"
    assert frame.loc["de", "beats"] == "not lookup"
    assert frame.loc["de", shortcuts.SCORE] == 20.0 and frame.loc["de", "lookup"] == 25.0


def test_a_cell_stores_its_baselines_and_keeps_older_languages(tmp_path):
    run = phases.start("target", "c1", str(tmp_path / "c1"), str(tmp_path / "ck"), {},
                       task="panx-sample", train_task="panx-sample")
    base = {"task": "panx-sample", "split": "validation", "metric": "f1", "n": 200}
    rec = {**base, "flags": []}
    run.finish([{**rec, "language": "en", "value": 60.0}],
               baselines=[{**base, "language": "en", "baseline": "lookup", "value": 2.0}])
    doc = run.finish([{**rec, "language": "de", "value": 55.0}],
                     baselines=[{**base, "language": "de", "baseline": "lookup", "value": 1.0}])
    assert [b["language"] for b in doc["baselines"]] == ["en", "de"]
    on_disk = json.loads((tmp_path / "c1" / "metrics.json").read_text())
    assert on_disk["baselines"] == doc["baselines"]


def test_chance_levels_are_the_shortcuts_module_levels():
    scores = pd.DataFrame([
        {"target": "tatoeba-sample", "task": "tatoeba-sample", "language": "de",
         "metric": "accuracy", "n": 300, "kind": "retrieval"},
        {"target": "synth-nli", "task": "synth-nli", "language": "de", "metric": "accuracy",
         "n": 300, "kind": "target"},
        {"target": "panx-sample", "task": "panx-sample", "language": "de", "metric": "f1",
         "n": 200, "kind": "target"},
    ])
    levels = sections.chance_levels(scores).set_index("target")["chance"]
    assert levels["tatoeba-sample"] == pytest.approx(chance.random_ranking(300))
    assert levels["synth-nli"] == pytest.approx(100 / 3)
    assert levels["panx-sample"] == 30


def test_the_tree_fits_a_fixed_sample_of_a_large_training_set(monkeypatch):
    monkeypatch.setattr(shortcuts, "TREE_ROWS", 40)
    a = [f"a cat {i}" for i in range(100)]
    b = [f"a cat {i}" + " x" * (i % 3) for i in range(100)]
    labels = [i % 3 for i in range(100)]
    first, second = (shortcuts.overlap_tree(a, b, labels) for _ in range(2))
    assert first.tree_.n_node_samples[0] == 40
    assert (first.tree_.value == second.tree_.value).all()
