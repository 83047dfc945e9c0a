"""The dual_encoder format: batches of pairs, the in-batch-negatives loss by hand, streaming
top-k over chunked and memory-mapped pools, and the pool embedding cache."""

from __future__ import annotations

import math

import pytest
import torch

from xtl import retrieval
from xtl.tasks import dual_encoder as de
from xtl.tasks import get

# task -> [(canonical split, language, the (repo id, config, split) the kit must request)]
HUB_REQUESTS = {
    # SQuAD v1.1 has no rows in the Hub sample (as the `squad` task); its SQuAD-schema rows are
    # tested through XQuAD-R's English paragraphs (test_lareqa.py)
    "squad-sentences": [],
}


def test_registry_entries():
    lareqa, mewsli = get("lareqa"), get("mewslix")
    assert (lareqa.format, lareqa.metric, lareqa.train_task) == ("dual_encoder", "map@20",
                                                                "squad-sentences")
    assert len(lareqa.languages) == 11 and lareqa.source_split("test") == "validation"
    assert (mewsli.train_task, len(mewsli.languages)) == ("mewslix-wikipedia", 11)
    assert get("squad-sentences").hub_id == "rajpurkar/squad"


def test_collator_stacks_queries_then_candidates(tiny_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir))
    batch = {"id": ["a", "b"], "query": ["who?", "where is it?"], "query_context": [None, None],
             "candidate": ["x", "y"], "candidate_context": ["ctx one", None],
             "candidate_id": ["c1", "c1"]}
    feats = de.featurize(batch, tokenizer, {"input_prefix": "", "max_length": 32})
    rows = [{k: v[i] for k, v in feats.items()} for i in range(2)]
    out = de.collator(tokenizer)(rows)
    assert out["input_ids"].shape[0] == 4 and out["attention_mask"].shape == out[
        "input_ids"].shape
    assert out["cand_key"][0] == out["cand_key"][1]  # the same candidate id
    first = tokenizer("who?")["input_ids"]
    assert out["input_ids"][0, :len(first)].tolist() == first
    with pytest.raises(Exception, match=r"need \(query, candidate\) pairs; rows \['b'\]"):
        de.featurize({**batch, "candidate": ["x", None]}, tokenizer,
                     {"input_prefix": "", "max_length": 32})


def test_loss_by_hand_and_repeated_candidates_masked():
    q = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=-1)
    c = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    logits = torch.cat([q, c])
    t = de.TEMPERATURE
    cos = q @ c.T
    by_hand = sum(-math.log(math.exp(cos[i, i] / t) / sum(math.exp(cos[i, j] / t)
                                                          for j in range(2))) for i in range(2))
    loss = de.loss(logits, {"cand_key": torch.tensor([1, 2])})
    assert loss.item() == pytest.approx(by_hand / 2, rel=1e-5)
    # the same candidate twice: neither is the other's negative -> log(1) = 0 each
    same = de.loss(logits, {"cand_key": torch.tensor([7, 7])})
    assert same.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("k", [1, 3, 20])
def test_streaming_knn_equals_brute_force_on_chunks_and_memmaps(monkeypatch, tmp_path, k):
    gen = torch.Generator().manual_seed(0)
    index = torch.nn.functional.normalize(torch.randn(1000, 16, generator=gen), dim=-1)
    index[500] = index[3]  # an exact tie: the lower row wins
    queries = torch.cat([index[3:4], torch.nn.functional.normalize(
        torch.randn(49, 16, generator=gen), dim=-1)])
    brute = (queries @ index.T).sort(dim=1, descending=True, stable=True)
    monkeypatch.setattr(retrieval, "INDEX_CHUNK", 64)
    monkeypatch.setattr(retrieval, "QUERY_CHUNK", 7)
    mapped = retrieval.load_embeddings(retrieval.save_embeddings(tmp_path / "pool.npy", index))
    for source in (index, mapped):
        sims, rows = retrieval.knn(queries, source, k)
        assert torch.allclose(sims, brute.values[:, :k], atol=1e-6)
        assert rows[0, 0].item() == 3
        # equal ids except where two similarities tie to rounding
        assert (rows == brute.indices[:, :k]).float().mean() > 0.99


@pytest.mark.usefixtures("one_thread")
def test_pool_cache_hits_until_the_weights_or_the_encoder_change(tiny_dir):
    from xtl import models

    model, _, _ = models.build(tiny_dir, [get("lareqa")])
    cache, calls = retrieval.EmbeddingCache(), []

    def compute():
        calls.append(1)
        return torch.zeros(2, 2)

    cache.get(model.encoder, "pool", compute)
    cache.get(model.encoder, "pool", compute)
    assert (len(calls), cache.hits, cache.misses) == (1, 1, 1)
    cache.get(model.encoder, "another pool", compute)
    assert len(calls) == 2
    optimizer = torch.optim.SGD(model.encoder.parameters(), lr=0.1)
    out = model.encoder(input_ids=torch.tensor([[0, 5, 2]])).last_hidden_state.sum()
    out.backward()
    optimizer.step()  # in-place update: a new weights token
    cache.get(model.encoder, "another pool", compute)
    assert len(calls) == 3
    with torch.no_grad():  # a write through .data bumps no counter: the checksum sees it
        next(model.encoder.parameters()).data.add_(1.0)
    cache.get(model.encoder, "another pool", compute)
    assert len(calls) == 4
    other, _, _ = models.build(tiny_dir, [get("lareqa")])
    cache.get(other.encoder, "another pool", compute)
    assert len(calls) == 5


def test_xtreme_r_parameters_make_lareqa_and_mewslix_ordinary_target_cells():
    """X-STILTs on XTREME-R is one file: its dual-encoder targets are trained target cells
    that start from each intermediate stage and train on their English data."""
    from pathlib import Path

    from xtl import config, plan

    exp = config.load(Path(__file__).resolve().parents[1] / "parameters" / "xtreme_r.yaml")
    cells = plan.build(exp, check_models=False).cells
    for target, train_task in (("lareqa", "squad-sentences"), ("mewslix", "mewslix-wikipedia")):
        mine = [c for c in cells if c.axes.get("target") == target]
        assert len(mine) == 11  # none + 9 single stages + the multi-task stage
        assert {c.kind for c in mine} == {"target"}
        assert {c.identity["train_task"] for c in mine} == {train_task}
        assert sum(c.parent is None for c in mine) == 1  # the baseline starts from the model
        assert len(mine[0].evaluation["languages"]) == 11
