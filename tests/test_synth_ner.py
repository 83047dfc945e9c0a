"""Tests for the synthetic parallel NER task in the PAN-X schema (xtl.offline.synth.ner)."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import datasets
import pytest

from xtl.offline.synth import ner

HUB = Path(__file__).resolve().parents[2] / "shared" / "data" / "hub"
PANX_SAMPLES = [HUB / f"google/xtreme/PAN-X.{lang}/validation-00000-of-00001.parquet"
                for lang in ("de", "zh")]
WIKIANN_SAMPLE = HUB / "unimelb-nlp/wikiann/de/validation-00000-of-00001.parquet"

# Names are hashed into parts, so no validation sentence is also a train sentence.
MAX_SPLIT_OVERLAP = 0.0
# Each entity type's share of all entity mentions (PER/ORG/LOC are about a third each).
TYPE_SHARE = (0.25, 0.42)

SCRIPTS = {"ru": r"[\u0400-\u04ff]", "zh": r"[\u4e00-\u9fff]", "ar": r"[\u0600-\u06ff]",
           "hi": r"[\u0900-\u097f]"}


def _entities(row: dict) -> list[tuple[str, str]]:
    """(type, text) of every entity, read from the IOB2 tags."""
    out: list[tuple[str, list[str]]] = []
    for token, tag in zip(row["tokens"], row["ner_tags"], strict=True):
        name = ner.TAGS[tag]
        if name.startswith("B-"):
            out.append((name[2:], [token]))
        elif name.startswith("I-"):
            out[-1][1].append(token)
    return [(etype, " ".join(toks)) for etype, toks in out]


def _load_features(path: Path) -> datasets.Features:
    return datasets.load_dataset("parquet", data_files=str(path))["train"].features


@pytest.mark.parametrize("path", PANX_SAMPLES, ids=lambda p: p.parent.name)
def test_features_equal_real_panx(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"shared PAN-X sample {path} not available")
    real = _load_features(path)
    assert ner.FEATURES == real
    assert ner.to_dataset(ner.generate("de", "validation", 5)).features == real


def test_features_are_wikiann_without_spans() -> None:
    if not WIKIANN_SAMPLE.exists():
        pytest.skip("shared WikiANN sample not available")
    real = dict(_load_features(WIKIANN_SAMPLE))
    del real["spans"]
    assert dict(ner.FEATURES) == real


def test_rows_and_dataset() -> None:
    rows = ner.generate("ru", "train", 12, seed=3)
    assert len(rows) == 12
    for row in rows:
        assert set(row) == {"tokens", "ner_tags", "langs"}
        assert len(row["tokens"]) == len(row["ner_tags"]) == len(row["langs"]) > 0
        assert set(row["langs"]) == {"ru"}
        assert all(tok and not tok.isspace() and " " not in tok for tok in row["tokens"])
    ds = ner.to_dataset(rows)
    assert ds.num_rows == 12 and ds.features == ner.FEATURES
    assert ds[0] == rows[0]


@pytest.mark.parametrize("language", ner.LANGUAGES)
def test_deterministic(language: str) -> None:
    assert ner.generate(language, "train", 40, seed=7) == ner.generate(language, "train", 40, 7)
    assert ner.generate(language, "train", 40, seed=7) != ner.generate(language, "train", 40, 8)


def test_splits_give_different_rows() -> None:
    train = ner.generate("en", "train", 30)
    assert train != ner.generate("en", "validation", 30)
    assert train != ner.generate("en", "test", 30)


@pytest.mark.parametrize("language", ner.LANGUAGES)
def test_iob2_valid(language: str) -> None:
    for row in ner.generate(language, "validation", 300, seed=1):
        previous = "O"
        for tag in row["ner_tags"]:
            name = ner.TAGS[tag]
            if name.startswith("I-"):
                assert previous[2:] == name[2:], row  # continues an entity of the same type
            previous = name
        assert any(row["ner_tags"]), row  # every sentence names an entity


def test_parallel_across_languages() -> None:
    by_lang = {lang: ner.generate(lang, "test", 120, seed=2) for lang in ner.LANGUAGES}
    types = [[t for t, _ in _entities(row)] for row in by_lang["en"]]
    for lang, rows in by_lang.items():
        assert [sorted(t for t, _ in _entities(row)) for row in rows] == [
            sorted(t) for t in types], lang
    sentences = ner.sample_sentences("test", 120, seed=2)
    for lang, rows in by_lang.items():
        rendered = [ner.render(s, lang) for s in sentences]
        assert rendered == [(r["tokens"], r["ner_tags"]) for r in rows], lang


def test_entity_types_balanced_and_multi_token() -> None:
    counts: Counter[str] = Counter()
    multi: Counter[str] = Counter()
    for row in ner.generate("en", "train", 1000):
        for etype, text in _entities(row):
            counts[etype] += 1
            multi[etype] += " " in text
    total = sum(counts.values())
    for etype in ner.ENTITY_TYPES:
        assert TYPE_SHARE[0] <= counts[etype] / total <= TYPE_SHARE[1], counts
        assert multi[etype] > 0.1 * counts[etype], (etype, multi)  # I- tags occur for each


def test_splits_disjoint() -> None:
    sentences = {
        split: {tuple(r["tokens"]) for r in ner.generate("en", split, n)}
        for split, n in (("train", 2000), ("validation", 400), ("test", 400))
    }
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        overlap = len(sentences[a] & sentences[b]) / len(sentences[b])
        assert overlap <= MAX_SPLIT_OVERLAP, (a, b, overlap)


def test_not_trivially_repetitive() -> None:
    for split in ner.SPLITS:
        rows = ner.generate("en", split, 500)
        assert len({tuple(r["tokens"]) for r in rows}) > 400, split


@pytest.mark.parametrize("language", sorted(SCRIPTS))
def test_scripts(language: str) -> None:
    pattern = re.compile(SCRIPTS[language])
    for row in ner.generate(language, "test", 60):
        assert not re.search(r"[A-Za-z]", "".join(row["tokens"])), row
        for _, text in _entities(row):
            assert pattern.search(text), (text, row)  # names are transliterated


def test_chinese_is_one_token_per_character() -> None:
    # as PAN-X.zh: every character a token, names included ("卡鲁·塔米" is five I-/B- tokens)
    rows = ner.generate("zh", "validation", 60)
    assert all(len(tok) == 1 for row in rows for tok in row["tokens"])
    tags = [ner.TAGS[t] for row in rows for t in row["ner_tags"]]
    assert {"I-PER", "I-ORG", "I-LOC"} <= set(tags)
    persons = [text for row in rows for etype, text in _entities(row) if etype == "PER"]
    assert persons and all("·" in text for text in persons)


def test_names_are_spelled_uniquely_in_every_script() -> None:
    # every spelling decodes to one name, so names of different parts never look alike
    assert len(set(ner._HAN.values())) == len(ner._HAN) == 78
    rng = random.Random(0)
    names = {ner._sample_name(rng, part) for part in ner.common.PARTS for _ in range(3000)}
    for language in ner.LANGUAGES:
        spelled = {ner.spell(name, language) for name in names}
        assert len(spelled) == len(names), language


@pytest.mark.parametrize("language", ["de", "es", "fr"])
def test_latin_languages_differ_from_english(language: str) -> None:
    rows, english = ner.generate(language, "test", 60), ner.generate("en", "test", 60)
    same = sum(a["tokens"] == b["tokens"] for a, b in zip(rows, english, strict=True))
    assert same == 0


def test_templates_share_their_entities_across_languages() -> None:
    for name, by_lang in ner.TEMPLATES.items():
        assert set(by_lang) == set(ner.LANGUAGES), name
        variables = {
            lang: {ner._VARIABLE.get(s, s) for s in re.findall(r"\{(\w+)\}", text)}
            for lang, text in by_lang.items()
        }
        assert len({frozenset(v) for v in variables.values()}) == 1, (name, variables)


def test_bad_language() -> None:
    with pytest.raises(ValueError, match="'xx'") as err:
        ner.generate("xx", "train", 5)
    assert "en" in str(err.value) and "hi" in str(err.value)


@pytest.mark.parametrize("split", ["dev", "TRAIN"])
def test_bad_split(split: str) -> None:
    with pytest.raises(ValueError, match=repr(split)):
        ner.generate("en", split, 5)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_n(n: object) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(n))):
        ner.generate("en", "train", n)  # type: ignore[arg-type]
