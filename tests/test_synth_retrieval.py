"""Tests for the synthetic parallel sentence retrieval task in the Tatoeba schema."""

from __future__ import annotations

import re
from pathlib import Path

import datasets
import pytest

from xtl.offline.synth import nli, retrieval

HUB = Path(__file__).resolve().parents[2] / "shared" / "data" / "hub"
TATOEBA_SAMPLES = [HUB / f"google/xtreme/tatoeba.{iso3}/validation-00000-of-00001.parquet"
                   for iso3 in ("deu", "cmn", "ara", "hin")]

# Meanings are hashed into splits and never repeat within one: these bounds are exact.
MAX_SPLIT_OVERLAP = 0.0
MAX_DUPLICATES_IN_SPLIT = 0
# Tatoeba's evaluation sets have 1,000 pairs per language.
TATOEBA_SIZE = 1000

SCRIPTS = {"ru": r"[\u0400-\u04ff]", "zh": r"[\u4e00-\u9fff]", "ar": r"[\u0600-\u06ff]",
           "hi": r"[\u0900-\u097f]"}


@pytest.mark.parametrize("path", TATOEBA_SAMPLES, ids=lambda p: p.parent.name)
def test_features_equal_real_tatoeba(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"shared Tatoeba sample {path} not available")
    real = datasets.load_dataset("parquet", data_files=str(path))["train"]
    assert retrieval.FEATURES == real.features
    iso3 = path.parent.name.split(".")[1]
    language = {v: k for k, v in retrieval.ISO3.items()}[iso3]
    rows = retrieval.generate(language, "validation", 5)
    assert retrieval.to_dataset(rows).features == real.features
    # The same language codes and trailing newlines as the real rows.
    assert {r["source_lang"] for r in rows} == set(real["source_lang"]) == {iso3}
    assert {r["target_lang"] for r in rows} == set(real["target_lang"]) == {"eng"}
    assert all(s.endswith("\n") for s in [*real["source_sentence"], *real["target_sentence"]])


def test_rows_and_dataset() -> None:
    rows = retrieval.generate("fr", "test", 12, seed=2)
    assert len(rows) == 12
    for row in rows:
        assert set(row) == set(retrieval.FEATURES)
        assert row["source_lang"] == "fra" and row["target_lang"] == "eng"
    ds = retrieval.to_dataset(rows)
    assert ds.num_rows == 12 and ds.features == retrieval.FEATURES
    assert ds[0] == rows[0]


@pytest.mark.parametrize("language", retrieval.LANGUAGES)
def test_one_trailing_newline(language: str) -> None:
    for row in retrieval.generate(language, "validation", 200):
        for text in (row["source_sentence"], row["target_sentence"]):
            assert text.endswith("\n") and text.count("\n") == 1 and text.strip() == text[:-1]


@pytest.mark.parametrize("language", retrieval.LANGUAGES)
def test_pairs_aligned(language: str) -> None:
    frames = retrieval.sample_frames("test", 150, seed=4)
    rows = retrieval.generate(language, "test", 150, seed=4)
    english = retrieval.generate("en", "test", 150, seed=4)
    for frame, row, en in zip(frames, rows, english, strict=True):
        assert row["source_sentence"] == nli.render(frame, language) + "\n"
        assert row["target_sentence"] == nli.render(frame, "en") + "\n"
        assert row["target_sentence"] == en["source_sentence"]  # parallel across languages


@pytest.mark.parametrize("language", retrieval.LANGUAGES)
def test_no_duplicates_within_split(language: str) -> None:
    for split in retrieval.SPLITS:
        rows = retrieval.generate(language, split, TATOEBA_SIZE, seed=1)
        for column in ("source_sentence", "target_sentence"):
            texts = [r[column] for r in rows]
            assert len(texts) - len(set(texts)) <= MAX_DUPLICATES_IN_SPLIT, (split, column)


def test_hard_negatives() -> None:
    # Most sentences have a neighbour in the split that differs in a single slot, so topic
    # matching is not enough to retrieve the translation.
    frames = retrieval.sample_frames("test", TATOEBA_SIZE)
    fields = ("form", "negated", "animal", "verb", "colour", "place", "manner", "companion")
    keys = [tuple(getattr(f, name) for name in fields) for f in frames]
    present = set(keys)

    def has_neighbour(key: tuple) -> bool:
        for i, name in enumerate(fields):
            values = (True, False) if name == "negated" else {k[i] for k in present}
            if any(key[:i] + (v,) + key[i + 1 :] in present for v in values if v != key[i]):
                return True
        return False

    assert sum(map(has_neighbour, keys)) / len(keys) > 0.9


def test_splits_disjoint_and_sized() -> None:
    english = {
        split: {r["target_sentence"] for r in retrieval.generate("en", split, TATOEBA_SIZE)}
        for split in retrieval.SPLITS
    }
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert len(english[a] & english[b]) / len(english[b]) <= MAX_SPLIT_OVERLAP, (a, b)
    for split in retrieval.SPLITS:
        assert retrieval.pool_size(split) >= TATOEBA_SIZE


@pytest.mark.parametrize("language", retrieval.LANGUAGES)
def test_deterministic(language: str) -> None:
    first = retrieval.generate(language, "validation", 50, seed=7)
    assert first == retrieval.generate(language, "validation", 50, 7)
    assert first != retrieval.generate(language, "validation", 50, 8)


def test_splits_give_different_rows() -> None:
    train = retrieval.generate("en", "train", 30)
    assert train != retrieval.generate("en", "validation", 30)
    assert train != retrieval.generate("en", "test", 30)


@pytest.mark.parametrize("language", sorted(SCRIPTS))
def test_scripts(language: str) -> None:
    pattern = re.compile(SCRIPTS[language])
    for row in retrieval.generate(language, "test", 60):
        assert pattern.search(row["source_sentence"]), row
        assert not re.search(r"[A-Za-z]", row["source_sentence"]), row


@pytest.mark.parametrize("language", ["de", "es", "fr"])
def test_latin_sources_differ_from_english(language: str) -> None:
    rows = retrieval.generate(language, "test", 60)
    assert all(r["source_sentence"] != r["target_sentence"] for r in rows)


def test_english_pairs_with_itself() -> None:
    rows = retrieval.generate("en", "test", 20)
    assert all(r["source_sentence"] == r["target_sentence"] for r in rows)
    assert {r["source_lang"] for r in rows} == {"eng"}


def test_bad_language() -> None:
    with pytest.raises(ValueError, match="'eng'") as err:
        retrieval.generate("eng", "train", 5)
    assert "en" in str(err.value) and "hi" in str(err.value)


@pytest.mark.parametrize("split", ["dev", "TRAIN"])
def test_bad_split(split: str) -> None:
    with pytest.raises(ValueError, match=repr(split)):
        retrieval.generate("en", split, 5)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_n(n: object) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(n))):
        retrieval.generate("en", "train", n)  # type: ignore[arg-type]


def test_n_larger_than_the_split() -> None:
    size = retrieval.pool_size("test")
    assert len(retrieval.generate("de", "test", size)) == size
    with pytest.raises(ValueError, match=f"n={size + 1}.*{size}"):
        retrieval.generate("de", "test", size + 1)
