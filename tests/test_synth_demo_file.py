"""parameters/demo.yaml (`make demo`): e5-small, real PAN-X and Tatoeba samples and the
synthetic benchmark, set out in full; and the synthetic tasks stay out of reach of their
shortcut baselines (xtl.evaluation.shortcuts), against the model's English scores of the demo run
pinned in tests/golden/demo_reference.json."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import REPO

from xtl.data import sources, tasks
from xtl.data.languages import LANGUAGES
from xtl.evaluation import shortcuts
from xtl.grid import config, plan

DEMO = REPO / "parameters" / "demo.yaml"
REFERENCE = json.loads((REPO / "tests" / "golden" / "demo_reference.json").read_text())
# A synthetic task is "solved by a shortcut" when the shortcut comes within this many points
# of the model's English score.
MARGIN = 5


def test_demo_plan_is_the_issue_grid():
    exp = config.load(DEMO)
    cells = plan.build(exp).cells
    assert Counter(c.kind for c in cells) == {"stage": 2, "target": 6, "retrieval": 3,
                                              "transferability": 6}
    assert {c.axes["model"] for c in cells} == {"multilingual-e5-small"}
    assert {str(c.axes["intermediate"]) for c in cells} == {"none", "synth-nli", "synth-qa"}
    assert {c.axes["target"] for c in cells if c.kind != "stage"} == {
        "panx-sample", "synth-qa", "tatoeba-sample"}
    assert exp["seeds"] == [0] and exp["train_sizes"] == [200]


def test_demo_hyperparameters_are_explicit():
    exp = config.load(DEMO)
    raw = exp.raw["hparams"]
    assert raw["precision"] == "bf16" and raw["freeze_embeddings"] is True
    assert raw["learning_rate"] == 1e-4
    # retrieval from e5's own (last) layer, written in the file whatever the precedence
    assert exp.raw["tasks"]["tatoeba-sample"]["layer"] == -1


@pytest.mark.parametrize("name", ["panx-sample", "synth-qa", "tatoeba-sample"])
def test_every_target_is_zero_shot_in_several_scripts(name):
    others = set(tasks.get(name).languages) - {"en"}
    assert len(others) >= 5
    assert len({LANGUAGES[lang].script for lang in others}) >= 4


def test_the_demo_runs_offline_on_real_and_generated_rows():
    exp = config.load(DEMO)
    names = {c.axes["target"] for c in plan.build(exp).cells if c.kind != "stage"}
    names |= {"synth-nli", "synth-qa"}
    for name in names:
        task = tasks.get(name)
        assert task.bundled or task.generator is not None, name
    assert {tasks.get(n).bundled for n in ("panx-sample", "tatoeba-sample")} == {True}


def _shortcut_scores(name: str) -> dict[str, dict[str, float]]:
    """language -> shortcut -> score, each fit on the FULL English training split the demo's
    cell draws from (more memory than the demo's 200 rows can only help a shortcut)."""
    task = tasks.get(name)
    role = REFERENCE[name]["role"]
    source = task if role == "stage" else tasks.get(task.train_task or name)
    train = sources.load(source, "train", "en")
    languages = ["en"] if role == "stage" else task.languages
    return {lang: {b.baseline: b.value for b in shortcuts.for_split(
        task, train, sources.load(task, "validation", lang))} for lang in languages}


@pytest.mark.parametrize("name", sorted(k for k in REFERENCE if not k.startswith("_")))
def test_no_synthetic_task_is_solved_by_its_shortcut(name):
    reference = REFERENCE[name]
    scores = _shortcut_scores(name)
    for language, found in scores.items():
        assert found, (name, language)
        for baseline, value in found.items():
            assert value <= reference["en"] - MARGIN, (name, language, baseline, value,
                                                       reference["en"])
