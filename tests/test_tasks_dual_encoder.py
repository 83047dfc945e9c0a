"""The dual_encoder format: batches of pairs, the in-batch-negatives loss by hand, streaming
top-k over chunked and memory-mapped pools, and the pool embedding cache."""

from __future__ import annotations

import math

import pytest
import torch

from xtl.core.hparams import Hparams
from xtl.data import embeddings, search
from xtl.data.tasks import dual_encoder as de
from xtl.data.tasks import get

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
    feats = de.featurize(batch, tokenizer, Hparams({"input_prefix": "", "max_length": 32}))
    rows = [{k: v[i] for k, v in feats.items()} for i in range(2)]
    out = de.collator(tokenizer)(rows)
    assert out["input_ids"].shape[0] == 4 and out["attention_mask"].shape == out[
        "input_ids"].shape
    assert out["cand_key"][0] == out["cand_key"][1]  # the same candidate id
    first = tokenizer("who?")["input_ids"]
    assert out["input_ids"][0, :len(first)].tolist() == first
    with pytest.raises(Exception, match=r"need \(query, candidate\) pairs; rows \['b'\]"):
        de.featurize({**batch, "candidate": ["x", None]}, tokenizer,
                     Hparams({"input_prefix": "", "max_length": 32}))


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
    monkeypatch.setattr(search, "INDEX_CHUNK", 64)
    monkeypatch.setattr(search, "QUERY_CHUNK", 7)
    mapped = embeddings.load_embeddings(embeddings.save_embeddings(tmp_path / "pool.npy", index))
    for source in (index, mapped):
        sims, rows = search.knn(queries, source, k)
        assert torch.allclose(sims, brute.values[:, :k], atol=1e-6)
        assert rows[0, 0].item() == 3
        # equal ids except where two similarities tie to rounding
        assert (rows == brute.indices[:, :k]).float().mean() > 0.99


@pytest.mark.usefixtures("one_thread")
def test_pool_cache_hits_until_the_weights_or_the_encoder_change(tiny_dir):
    from xtl.model import models

    model, _, _ = models.build(tiny_dir, [get("lareqa")])
    cache, calls = embeddings.EmbeddingCache(), []

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

    from xtl.grid import config, plan

    exp = config.load(Path(__file__).resolve().parents[1] / "parameters" / "xtreme_r.yaml")
    cells = plan.build(exp, check_models=False).cells
    for target, train_task in (("lareqa", "squad-sentences"), ("mewslix", "mewslix-wikipedia")):
        mine = [c for c in cells if c.axes.get("target") == target]
        assert len(mine) == 11  # none + 9 single stages + the multi-task stage
        assert {c.kind for c in mine} == {"target"}
        assert {c.identity["train_task"] for c in mine} == {train_task}
        assert sum(c.parent is None for c in mine) == 1  # the baseline starts from the model
        assert len(mine[0].evaluation["languages"]) == 11


# --------------------------------------------------------------------------- across processes

def _gather_cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(queries, candidates, keys): 8 rows whose repeated candidate (rows 0 and 3) lands on
    both processes; 3 rows (shares of 2 and 1); 1 row (process 1 runs a stand-in)."""
    gen = torch.Generator().manual_seed(0)
    cases = []
    for keys in ([5, 1, 2, 5, 3, 4, 6, 7], [1, 2, 3], [1]):
        n = len(keys)
        q, c = (torch.nn.functional.normalize(torch.randn(n, 8, generator=gen), dim=-1)
                for _ in range(2))
        cases.append((q, c, torch.tensor(keys)))
    return cases


def _rank(rank: int, world: int, init: str, out: str) -> None:
    """One gloo process: its strided share of each case, loss weighted as `training.train` does."""
    import torch.distributed as dist

    from xtl.training import sampling

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        results = []
        for q, c, keys in _gather_cases():
            rows, weight = sampling.shard(list(range(len(keys))), rank, world)
            mine_q, mine_c = (x[rows].clone().requires_grad_() for x in (q, c))
            batch = {"cand_key": keys[rows]} | ({de.STAND_IN: torch.ones(())} if not weight
                                                else {})
            part = de.loss(torch.cat([mine_q, mine_c]), batch) * weight / world
            part.backward()  # DDP would average over processes: hence / world
            results.append((part.item(), rows if weight else [], mine_q.grad, mine_c.grad))
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_see_every_candidate_as_one_process_does(tmp_path):
    """2 gloo processes x their share give the loss and the gradients of 1 process x all rows:
    the negatives are gathered with their gradient
    (xtl.data.tasks.dual_encoder_gather.gather_candidates)."""
    import torch.multiprocessing as mp

    mp.spawn(_rank, args=(2, f"file://{tmp_path}/init", str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for case, (q, c, keys) in enumerate(_gather_cases()):
        q, c = q.clone().requires_grad_(), c.clone().requires_grad_()
        whole = de.loss(torch.cat([q, c]), {"cand_key": keys})
        whole.backward()
        parts = [r[case] for r in ranks]
        assert sum(p[0] for p in parts) == pytest.approx(whole.item(), rel=1e-5)
        for _, rows, q_grad, c_grad in parts:
            if not rows:  # the stand-in: weight 0, no gradient
                assert not q_grad.any() and not c_grad.any()
                continue
            assert torch.allclose(q_grad, q.grad[rows], atol=1e-6)
            assert torch.allclose(c_grad, c.grad[rows], atol=1e-6)
    # without gathering, the 8-row case would differ: each process sees 4 candidates
    q, c, keys = _gather_cases()[0]
    alone = de.loss(torch.cat([q[0::2], c[0::2]]), {"cand_key": keys[0::2]})
    assert alone.item() != pytest.approx(ranks[0][0][0] * 2, rel=1e-3)
