"""`freeze_embeddings`: the word-embedding matrix stays fixed while every other weight trains."""

from __future__ import annotations

import pytest
import torch

from xtl.core.errors import ConfigError
from xtl.core.hparams import Hparams
from xtl.data import sources, tasks
from xtl.grid import config, plan
from xtl.model.models import build
from xtl.training import train

HP = Hparams({"learning_rate": 2e-3, "epochs": 1, "batch_size": 16, "max_length": 32,
                        "precision": "fp32"})

pytestmark = pytest.mark.usefixtures("one_thread")


def _rows(language: str, split: str, n: int, seed: int) -> list[dict]:
    words = ("red", "blue", "green")
    return [{"premise": f"the {words[i % 3]} thing {i}", "hypothesis": "a thing", "label": i % 3}
            for i in range(n)]


NLI = tasks.Task(name="toy-freeze", format="pair_classification", languages=("en",),
                 label_names=("entailment", "neutral", "contradiction"), generator=_rows,
                 fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"})


def _fit(tiny_dir, tmp_path, freeze: bool):
    model, tok, _ = build(tiny_dir, [NLI], seed=0)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    train_split = sources.load(NLI, "train", "en", size=32)
    dev_split = sources.load(NLI, "validation", "en", size=16)
    result = train.fit(model, tok, NLI, train_split, dev_split,
                       HP | {"freeze_embeddings": freeze}, 0, tmp_path / "ckpt",
                       tmp_path / "history.jsonl", {"cell": "test"})
    assert result.steps == 2  # 32 rows / batch 16: two optimizer steps
    embedding = model.encoder.get_input_embeddings().weight
    name = next(k for k, v in model.named_parameters() if v is embedding)
    after = dict(model.named_parameters())
    return name, before, after


def _unchanged(before: dict, after: dict) -> list[str]:
    return sorted(k for k in before if torch.equal(after[k], before[k]))


def _pooler(before: dict) -> list[str]:
    # The encoder's pooler feeds no head here, so it gets no gradient in either case.
    return [k for k in before if ".pooler." in k]


def test_frozen_matrix_unchanged_other_weights_change(tiny_dir, tmp_path):
    name, before, after = _fit(tiny_dir, tmp_path, freeze=True)
    assert not after[name].requires_grad
    # every other tensor (layers, position embeddings, LayerNorms, head) took the two steps
    assert _unchanged(before, after) == sorted([name, *_pooler(before)])
    assert len(before) - len(_unchanged(before, after)) > 30


def test_default_trains_the_matrix(tiny_dir, tmp_path):
    name, before, after = _fit(tiny_dir, tmp_path, freeze=False)
    assert after[name].requires_grad
    assert _unchanged(before, after) == sorted(_pooler(before))


def test_type_checked_and_in_ids_only_when_set():
    with pytest.raises(ConfigError, match="freeze_embeddings = 'yes' has the wrong type"):
        config.parse({"models": ["tiny"], "targets": ["synth-nli"],
                      "hparams": {"freeze_embeddings": "yes"}})
    base = {"models": ["tiny"], "targets": ["synth-nli"]}
    ids = [c.id for c in plan.build(config.parse(base)).cells]
    same = [c.id for c in plan.build(config.parse(
        base | {"hparams": {"freeze_embeddings": False}})).cells]
    frozen = [c.id for c in plan.build(config.parse(
        base | {"hparams": {"freeze_embeddings": True}})).cells]
    assert same == ids and set(frozen).isdisjoint(ids)
