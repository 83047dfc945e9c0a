"""parameters/demo.yaml (`make demo`): e5-small on the synthetic mini-benchmark, set out in full."""

from __future__ import annotations

from collections import Counter

from conftest import REPO

from xtl import config, plan, tasks

DEMO = REPO / "parameters" / "demo.yaml"


def test_demo_plan_is_the_issue_grid():
    exp = config.load(DEMO)
    cells = plan.build(exp).cells
    assert Counter(c.kind for c in cells) == {"stage": 2, "target": 6, "retrieval": 3}
    assert {c.axes["model"] for c in cells} == {"multilingual-e5-small"}
    assert {str(c.axes["intermediate"]) for c in cells} == {"none", "synth-nli", "synth-qa"}
    assert {c.axes["target"] for c in cells if c.kind != "stage"} == {
        "synth-ner", "synth-qa", "synth-retrieval"}
    assert exp["seeds"] == [0] and exp["train_sizes"] == [200]


def test_demo_hyperparameters_are_explicit():
    raw = config.load(DEMO).raw["hparams"]
    assert raw["precision"] == "bf16" and raw["freeze_embeddings"] is True
    assert raw["learning_rate"] == 1e-4
    # every target language but English is zero-shot; at least six, in at least three scripts
    for name in ("synth-ner", "synth-qa"):
        assert len(set(tasks.get(name).languages) - {"en"}) >= 6
