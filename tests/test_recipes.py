"""The recipes of docs/architecture.md section 3, each followed once with a toy: a task in an
existing format, a metric and a model preset, added in the one place the recipe names."""

from __future__ import annotations

import pytest

from xtl import config, metrics, sources, tasks, zoo
from xtl.errors import ModelError

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
