"""The cell-id rule: ids hash what changes results, so growing a grid reuses existing cells."""

from __future__ import annotations

import json
from pathlib import Path

from xtl.core import hparams
from xtl.grid import config, plan

BASE = {"xtl": 1, "name": "t", "models": ["tiny"], "intermediate": ["none", "synth-nli"],
        "targets": ["synth-nli"], "seeds": [0]}
GOLDEN = Path(__file__).parent / "golden"


def cells(**changes):
    exp = config.parse({**BASE, **changes})
    exp.values["name"] = "t"
    return plan.build(exp).cells


def ids(**changes):
    return {c.id for c in cells(**changes)}


def test_stage_trained_once_and_reused_by_every_target():
    built = cells(targets=["synth-nli", "xnli"], intermediate=["none", "synth-nli"])
    stages = [c for c in built if c.kind == "stage"]
    targets = [c for c in built if c.kind == "target"]
    assert len(stages) == 1 and len(targets) == 4
    assert sum(c.parent == stages[0].id for c in targets) == 2
    assert built.index(stages[0]) < min(built.index(t) for t in targets)


def test_adding_axis_values_keeps_existing_ids():
    base = ids()
    assert base < ids(seeds=[0, 1])
    assert base < ids(targets=["synth-nli", "xnli"])
    assert base < ids(train_sizes=[None, 100])
    assert base == ids(eval_languages=["de"])
    assert base == ids(eval_split="test")
    assert base == ids(out="/somewhere/else", mirror=None)


def test_seeds_multiply_stages_unless_shared():
    per_seed = cells(seeds=[0, 1, 2])
    assert sum(c.kind == "stage" for c in per_seed) == 3
    shared = cells(seeds=[0, 1, 2], intermediate_seed=0)
    assert sum(c.kind == "stage" for c in shared) == 1
    assert sum(c.kind == "target" for c in shared) == 6


def test_defaults_are_resolved_before_hashing():
    assert ids() == ids(hparams={"weight_decay": 0.01, "warmup_ratio": 0.1})
    assert ids() != ids(hparams={"weight_decay": 0.0})


def test_a_hyperparameter_added_after_v1_renames_no_cell(monkeypatch):
    base = ids()
    knob = hparams.Spec("new_knob", False, (bool,), "a knob", v1_value=False)
    # what `hparams.declare(knob)` adds, undone after the test
    monkeypatch.setitem(hparams.SPECS, "new_knob", knob)
    monkeypatch.setitem(hparams.HPARAM_DEFAULTS, "new_knob", False)
    monkeypatch.setitem(hparams.POST_V1, "new_knob", False)
    assert ids() == base
    assert ids(hparams={"new_knob": False}) == base
    assert ids(hparams={"new_knob": True}).isdisjoint(base)


def test_scoped_hyperparameters_touch_only_their_phase():
    base = cells()
    scoped = cells(hparams={"target.learning_rate": 3e-5})
    stage = {c.id for c in base if c.kind == "stage"}
    assert stage == {c.id for c in scoped if c.kind == "stage"}
    assert {c.id for c in base if c.kind == "target"}.isdisjoint(
        {c.id for c in scoped if c.kind == "target"})


def test_grid_axis_and_precedence():
    built = cells(grid={"target.learning_rate": [1e-5, 3e-5]}, intermediate=["none"],
                  hparams={"learning_rate": 7e-5}, tasks={"synth-nli": {"learning_rate": 2e-5}})
    assert sorted(c.identity["hparams"]["learning_rate"] for c in built) == [1e-5, 3e-5]
    plain = cells(intermediate=["none"], hparams={"learning_rate": 7e-5},
                  tasks={"synth-nli": {"learning_rate": 2e-5}})
    assert plain[0].identity["hparams"]["learning_rate"] == 2e-5  # task override > file hparams


def test_preset_defaults_apply_and_task_recipe_is_the_targets():
    built = cells(targets=["xnli"], intermediate=["none"])
    hp = built[0].identity["hparams"]
    assert hp["learning_rate"] == 5e-4  # tiny preset
    assert hp["epochs"] == 2  # XNLI recipe, though it trains on MNLI
    assert built[0].identity["train_task"] == "mnli"


def test_chain_of_stages():
    built = cells(intermediate=[{"chain": ["mnli", "synth-nli"]}])
    first, second, target = built
    assert (first.kind, second.kind, target.kind) == ("stage", "stage", "target")
    assert second.parent == first.id and target.parent == second.id
    assert target.axes["intermediate"] == "mnli>synth-nli"


def test_ids_are_pinned_by_the_golden_file():
    """Changing the id rule is a contract change: bump the version and update the golden."""
    golden = json.loads((GOLDEN / "plan_ids.json").read_text())
    built = cells(**golden["experiment"])
    assert [[c.id, c.label, c.parent] for c in built] == golden["cells"]
