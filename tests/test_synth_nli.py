"""Tests for the synthetic parallel NLI task (xtl.offline.synth.nli)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import datasets
import pytest

from xtl.offline.synth import nli

XNLI_SAMPLE = (
    Path(__file__).resolve().parents[2]
    / "shared/data/hub/facebook/xnli/de/validation-00000-of-00001.parquet"
)

# Largest tolerated share of validation (premise, hypothesis) pairs also found in train.
MAX_SPLIT_OVERLAP = 0.01

SCRIPTS = {
    "zh": r"[\u4e00-\u9fff]",
    "ru": r"[\u0400-\u04ff]",
    "ar": r"[\u0600-\u06ff]",
    "hi": r"[\u0900-\u097f]",
}


def test_public_constants() -> None:
    assert nli.LABELS == ("entailment", "neutral", "contradiction")
    assert {"en", "de", "es", "fr", "ru", "zh", "ar", "hi"} <= set(nli.LANGUAGES)
    assert nli.LANGUAGES[0] == "en"


def test_features_match_mnli_schema() -> None:
    features = nli.FEATURES
    assert list(features) == ["premise", "hypothesis", "label"]
    assert features["premise"] == datasets.Value("string")
    assert features["hypothesis"] == datasets.Value("string")
    assert features["label"].names == ["entailment", "neutral", "contradiction"]


@pytest.mark.skipif(not XNLI_SAMPLE.exists(), reason="shared XNLI sample not available")
def test_features_equal_real_xnli() -> None:
    real = datasets.load_dataset("parquet", data_files=str(XNLI_SAMPLE))["train"].features
    assert nli.FEATURES == real
    assert nli.to_dataset(nli.generate("de", "validation", 6)).features == real


def test_rows_and_dataset() -> None:
    rows = nli.generate("fr", "train", 12, seed=5)
    assert len(rows) == 12
    for row in rows:
        assert set(row) == {"premise", "hypothesis", "label"}
        assert isinstance(row["premise"], str) and row["premise"]
        assert isinstance(row["hypothesis"], str) and row["hypothesis"]
        assert row["label"] in (0, 1, 2)
        assert row["premise"] != row["hypothesis"]
    ds = nli.to_dataset(rows)
    assert ds.num_rows == 12
    assert ds.features == nli.FEATURES
    assert ds[0] == rows[0]


@pytest.mark.parametrize("language", nli.LANGUAGES)
def test_deterministic(language: str) -> None:
    assert nli.generate(language, "train", 50, seed=7) == nli.generate(language, "train", 50, 7)
    assert nli.generate(language, "train", 50, seed=7) != nli.generate(language, "train", 50, 8)


def test_splits_give_different_rows() -> None:
    # Same seed, different split: a different stream, not the same rows.
    train = nli.generate("en", "train", 30)
    assert train != nli.generate("en", "validation", 30)
    assert train != nli.generate("en", "test", 30)


def test_parallel_across_languages() -> None:
    by_lang = {lang: nli.generate(lang, "validation", 90, seed=3) for lang in nli.LANGUAGES}
    labels = [row["label"] for row in by_lang["en"]]
    for lang, rows in by_lang.items():
        assert [row["label"] for row in rows] == labels, lang
    # Identical English premises map to identical premises in every language (same meaning).
    frames = nli.sample_frames("validation", 90, seed=3)
    for lang, rows in by_lang.items():
        rendered = [(nli.render(p, lang), nli.render(h, lang)) for p, h, _ in frames]
        assert rendered == [(r["premise"], r["hypothesis"]) for r in rows], lang


@pytest.mark.parametrize("n", [1, 2, 3, 10, 301])
def test_label_balance(n: int) -> None:
    for split in nli.SPLITS:
        counts = Counter(row["label"] for row in nli.generate("en", split, n, seed=1))
        full = [counts.get(i, 0) for i in range(3)]
        assert sum(full) == n
        assert max(full) - min(full) <= 1, (split, full)


def test_splits_disjoint() -> None:
    train = nli.generate("en", "train", 1200)
    val = nli.generate("en", "validation", 300)
    test = nli.generate("en", "test", 300)
    premises = {
        split: {r["premise"] for r in rows}
        for split, rows in (("train", train), ("validation", val), ("test", test))
    }
    # Sentence meanings are hashed into parts, so premises never cross splits.
    assert not premises["train"] & premises["validation"]
    assert not premises["train"] & premises["test"]
    assert not premises["validation"] & premises["test"]
    pairs_train = {(r["premise"], r["hypothesis"]) for r in train}
    overlap = sum((r["premise"], r["hypothesis"]) in pairs_train for r in val) / len(val)
    assert overlap <= MAX_SPLIT_OVERLAP


def test_not_trivially_repetitive() -> None:
    rows = nli.generate("en", "train", 600)
    assert len({r["premise"] for r in rows}) > 300
    assert len({(r["premise"], r["hypothesis"]) for r in rows}) > 550


@pytest.mark.parametrize("language", sorted(SCRIPTS))
def test_scripts(language: str) -> None:
    pattern = re.compile(SCRIPTS[language])
    for row in nli.generate(language, "test", 40):
        assert pattern.search(row["premise"]), row
        assert pattern.search(row["hypothesis"]), row
        assert not re.search(r"[A-Za-z]", row["premise"] + row["hypothesis"]), row


@pytest.mark.parametrize("language", ["en", "de", "es", "fr"])
def test_latin_languages_differ_from_english(language: str) -> None:
    rows = nli.generate(language, "test", 40)
    assert all(re.search(r"[A-Za-z]", r["premise"]) for r in rows)
    if language != "en":
        english = nli.generate("en", "test", 40)
        assert sum(a["premise"] == b["premise"] for a, b in zip(rows, english, strict=True)) == 0


def test_bad_language() -> None:
    with pytest.raises(ValueError, match="'xx'") as err:
        nli.generate("xx", "train", 5)
    assert "en" in str(err.value) and "hi" in str(err.value)


@pytest.mark.parametrize("split", ["dev", "validation_matched", "TRAIN"])
def test_bad_split(split: str) -> None:
    with pytest.raises(ValueError, match=repr(split)):
        nli.generate("en", split, 5)


@pytest.mark.parametrize("n", [0, -3])
def test_bad_n(n: int) -> None:
    with pytest.raises(ValueError, match=str(n)):
        nli.generate("en", "train", n)


def test_first_rows_do_not_depend_on_how_many_were_asked_for() -> None:
    nli._STREAMS.clear()
    few = nli.sample_frames("test", 10, seed=4)
    nli._STREAMS.clear()
    many = nli.sample_frames("test", 40, seed=4)
    assert many[:10] == few and nli.sample_frames("test", 10, seed=4) == few
