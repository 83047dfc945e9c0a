"""Tests for the synthetic parallel extractive QA task (xtl.offline.synth.qa)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import datasets
import pytest

from xtl.offline.synth import nli, qa

HUB = Path(__file__).resolve().parents[2] / "shared" / "data" / "hub"
SQUAD_SAMPLE = HUB / "rajpurkar/squad_v2/squad_v2/validation-00000-of-00001.parquet"
XQUAD_SAMPLES = [HUB / "google/xquad/xquad.de/validation-00000-of-00001.parquet",
                 HUB / "google/xtreme/XQuAD.de/validation-00000-of-00001.parquet"]

# A context's animals and activities are hashed into splits: no context is in two splits.
MAX_SPLIT_OVERLAP = 0.0

SCRIPTS = {"ru": r"[\u0400-\u04ff]", "zh": r"[\u4e00-\u9fff]", "ar": r"[\u0600-\u06ff]",
           "hi": r"[\u0900-\u097f]"}


def _load_features(path: Path) -> datasets.Features:
    return datasets.load_dataset("parquet", data_files=str(path))["train"].features


def test_features_equal_real_squad() -> None:
    if not SQUAD_SAMPLE.exists():
        pytest.skip("shared SQuAD sample not available")
    real = _load_features(SQUAD_SAMPLE)
    assert qa.FEATURES == real
    assert qa.to_dataset(qa.generate("de", "validation", 5)).features == real


@pytest.mark.parametrize("path", XQUAD_SAMPLES, ids=lambda p: p.parent.name)
def test_features_are_xquad_plus_title(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"shared XQuAD sample {path} not available")
    ours = dict(qa.FEATURES)
    del ours["title"]
    assert ours == dict(_load_features(path))


def test_rows_and_dataset() -> None:
    rows = qa.generate("es", "train", 12, seed=4)
    assert len(rows) == 12
    for row in rows:
        assert set(row) == {"id", "title", "context", "question", "answers"}
        assert row["title"] == qa.TITLES["es"]
        assert len(row["answers"]["text"]) == len(row["answers"]["answer_start"]) == 1
    assert len({row["id"] for row in rows}) == 12
    ds = qa.to_dataset(rows)
    assert ds.num_rows == 12 and ds.features == qa.FEATURES
    assert ds[0] == rows[0]


@pytest.mark.parametrize("language", qa.LANGUAGES)
def test_every_answer_span_decodes(language: str) -> None:
    for split in qa.SPLITS:
        for row in qa.generate(language, split, 150, seed=5):
            (text,), (start,) = row["answers"]["text"], row["answers"]["answer_start"]
            assert text and text.strip() == text, row
            assert row["context"][start : start + len(text)] == text, row


@pytest.mark.parametrize("language", qa.LANGUAGES)
def test_answer_is_the_asked_slot(language: str) -> None:
    items = qa.sample_items("validation", 120, seed=6)
    for item, row in zip(items, qa.generate(language, "validation", 120, seed=6), strict=True):
        frame = item.sentences[item.target]
        surface = qa.answer_surface(frame, item.qtype, language)
        text = row["answers"]["text"][0]
        assert text in (surface, surface[:1].upper() + surface[1:]), (item, row)
        sentence = nli.render(frame, language)
        assert text in sentence and text in row["context"]
        if item.qtype != "activity":  # several animals may do the same thing
            assert row["context"].count(text) == 1, row  # one unambiguous answer


@pytest.mark.parametrize("language", qa.LANGUAGES)
def test_deterministic(language: str) -> None:
    assert qa.generate(language, "train", 40, seed=7) == qa.generate(language, "train", 40, 7)
    assert qa.generate(language, "train", 40, seed=7) != qa.generate(language, "train", 40, 8)


def test_splits_give_different_rows() -> None:
    train = qa.generate("en", "train", 30)
    assert train != qa.generate("en", "validation", 30)
    assert train != qa.generate("en", "test", 30)


def test_parallel_across_languages() -> None:
    by_lang = {lang: qa.generate(lang, "test", 90, seed=3) for lang in qa.LANGUAGES}
    ids = [row["id"] for row in by_lang["en"]]
    items = qa.sample_items("test", 90, seed=3)
    for lang, rows in by_lang.items():
        assert [row["id"] for row in rows] == ids, lang  # XQuAD: one id per question
        rendered = [qa.render_item(item, lang) for item in items]
        assert [(c, q) for c, q, _, _ in rendered] == [
            (r["context"], r["question"]) for r in rows], lang


def test_contexts_have_two_to_four_sentences() -> None:
    sizes = Counter(len(item.sentences) for item in qa.sample_items("train", 600))
    assert set(sizes) == {2, 3, 4}
    english = qa.generate("en", "train", 100)
    assert all(2 <= row["context"].count(". ") + 1 <= 4 for row in english)


@pytest.mark.parametrize("n", [1, 5, 6, 7, 301])
def test_question_types_balanced(n: int) -> None:
    counts = Counter(item.qtype for item in qa.sample_items("train", n, seed=1))
    full = [counts.get(t, 0) for t in qa.QUESTION_TYPES]
    assert sum(full) == n and max(full) - min(full) <= 1, full


def test_splits_disjoint() -> None:
    contexts = {
        split: {r["context"] for r in qa.generate("en", split, n)}
        for split, n in (("train", 2000), ("validation", 400), ("test", 400))
    }
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        overlap = len(contexts[a] & contexts[b]) / len(contexts[b])
        assert overlap <= MAX_SPLIT_OVERLAP, (a, b, overlap)


def test_not_trivially_repetitive() -> None:
    rows = qa.generate("en", "test", 500)
    assert len({r["context"] for r in rows}) > 490


@pytest.mark.parametrize("language", sorted(SCRIPTS))
def test_scripts(language: str) -> None:
    pattern = re.compile(SCRIPTS[language])
    for row in qa.generate(language, "test", 60):
        text = row["context"] + row["question"] + row["answers"]["text"][0] + row["title"]
        assert pattern.search(row["question"]) and pattern.search(row["answers"]["text"][0])
        assert not re.search(r"[A-Za-z]", text), row


@pytest.mark.parametrize("language", ["de", "es", "fr"])
def test_latin_languages_differ_from_english(language: str) -> None:
    rows, english = qa.generate(language, "test", 60), qa.generate("en", "test", 60)
    assert sum(a["question"] == b["question"] for a, b in zip(rows, english, strict=True)) == 0


def test_bad_language() -> None:
    with pytest.raises(ValueError, match="'xx'") as err:
        qa.generate("xx", "train", 5)
    assert "en" in str(err.value) and "hi" in str(err.value)


@pytest.mark.parametrize("split", ["dev", "TRAIN"])
def test_bad_split(split: str) -> None:
    with pytest.raises(ValueError, match=repr(split)):
        qa.generate("en", split, 5)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_n(n: object) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(n))):
        qa.generate("en", "train", n)  # type: ignore[arg-type]
