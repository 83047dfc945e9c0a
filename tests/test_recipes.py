"""The recipes of docs/architecture.md section 3, each followed once with a toy: a task in an
existing format, a format, a metric and a model preset, added in the one place the recipe
names."""

from __future__ import annotations

import pytest
import torch

from xtl.core.errors import ModelError
from xtl.core.hparams import Hparams
from xtl.data import features, sources, tasks
from xtl.evaluation import evaluate, metrics
from xtl.grid import config
from xtl.model import models, zoo

ROWS = [("the cat sleeps", "a cat sleeps", 0), ("the cat sleeps", "no animal sleeps", 1),
        ("it rains", "water falls", 0), ("it rains", "the sun is out", 1)]


def _toy_rows(language: str, split: str, n: int, seed: int) -> list[dict]:
    return [{"a": f"{language}: {a}", "b": b, "y": y} for a, b, y in ROWS[:n]]


TOY_TASK = tasks.Task(name="toy-nli", format="pair_classification", languages=("en", "de"),
                      label_names=("entailment", "contradiction"),
                      fields={"text_a": "a", "text_b": "b", "label": "y"},
                      generator=_toy_rows, sizes={"train": 4, "validation": 4, "test": 4})


def test_a_task_is_one_registry_entry(monkeypatch):
    monkeypatch.setitem(tasks.REGISTRY, TOY_TASK.name, TOY_TASK)
    exp = config.parse({"xtl": 1, "name": "toy", "models": ["tiny"], "targets": ["toy-nli"]})
    assert exp["targets"] == ["toy-nli"]
    split = sources.load(tasks.get("toy-nli"), "validation", "de")
    assert split.rows["label"] == [0, 1, 0, 1]
    assert split.rows["text_a"][0] == "de: the cat sleeps"


def test_a_metric_is_one_scorer_entry(monkeypatch):
    def exact(task, predictions, references, language):
        hits = sum(p == r for p, r in zip(predictions, references, strict=True))
        return {"f1": 100.0 * hits / len(references)}

    monkeypatch.setitem(metrics.METRICS, "toy_exact", exact)
    task = tasks.Task(name="toy", format="pair_classification", languages=("en",),
                      metric="toy_exact")
    scores = metrics.score(task, [1, 0, 1, 1], [1, 0, 0, 1])
    assert scores == {"f1": 75.0} and metrics.headline(task, scores) == 75.0


def test_a_preset_is_one_zoo_entry(monkeypatch):
    with pytest.raises(ModelError, match="not a preset"):
        zoo.validate("toy-encoder")
    monkeypatch.setitem(zoo.PRESETS, "toy-encoder",
                        zoo.Preset("toy-encoder", "toy-v1", hub_id="org/toy-encoder",
                                   hparams={"input_prefix": "query: "}))
    ref = zoo.validate("toy-encoder")
    assert ref.kind == "preset" and ref.identity == "preset:toy-encoder@toy-v1:built"
    assert ref.hparams == {"input_prefix": "query: "}


class _ToyHead(torch.nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.out = torch.nn.Linear(hidden, 2)

    def forward(self, hidden, batch):
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return self.out((hidden * mask).sum(1) / mask.sum(1))


class ToyLength(tasks.Format):
    """A format as docs/architecture.md shows it: is a sentence longer than 3 words?"""

    name, canonical_fields = "toy_length", ("text", "label")

    @staticmethod
    def featurize(batch, tokenizer, hp, train=False):
        enc = tokenizer([hp["input_prefix"] + t for t in batch["text"]], truncation=True,
                        max_length=hp["max_length"])
        return dict(enc) | {"labels": list(batch["label"])}

    @staticmethod
    def collator(tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    @staticmethod
    def make_head(task, hidden_size):
        return _ToyHead(hidden_size)

    @staticmethod
    def loss(logits, batch):
        return torch.nn.functional.cross_entropy(logits, batch["labels"])

    @staticmethod
    def decode(logits):
        return logits.argmax(-1).tolist()


def test_a_format_is_one_registered_class(formats, monkeypatch, tiny_dir):
    tasks.register_format(ToyLength)
    fmt = tasks.get_format("toy_length")
    sentences = ["a b", "a b c d e", "one", "the cat sat on the mat", "x y z", "w x y z v u"]

    def rows(language, split, n, seed):
        return [{"sentence": s, "long": int(len(s.split()) > 3)} for s in sentences[:n]]

    task = tasks.Task(name="toy-length", format=fmt.name, languages=("en",),
                      label_names=("short", "long"), fields={"text": "sentence", "label": "long"},
                      generator=rows, sizes={"validation": 6})
    monkeypatch.setitem(tasks.REGISTRY, task.name, task)
    split = sources.load(task, "validation", "en")
    model, tokenizer, _ = models.build(tiny_dir, [task], seed=0)
    hp = Hparams({"max_length": 16, "batch_size": 4})
    records, examples = evaluate.evaluate(model, tokenizer, task, [split], hp)
    [record] = records
    assert record["metric"] == "accuracy" and record["n"] == 6 and 0 <= record["value"] <= 100
    assert [e["reference"] for e in examples] == ["short", "long", "short", "long", "short",
                                                  "long"]
    batch = fmt.collator(tokenizer)(list(features.features(task, split, tokenizer, hp)))
    logits = model(task.name, batch)
    assert logits.shape == (6, 2) and fmt.loss(logits, batch).item() > 0
