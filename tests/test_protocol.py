"""Protocol fidelity (contract v1 revision 3): the tagging label position, per-task recipes in
multi-task stages, the precedence of hyperparameter layers, per-model recipes, the identity
rule for post-v1 keys, the epochs/steps arithmetic, checkpoint selection and XTREME-R's
Tatoeba after SQuAD."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from xtl.cells import phases
from xtl.core.errors import ConfigError
from xtl.core.hparams import HPARAM_DEFAULTS, POST_V1, TASK_KEYS, V1_HPARAMS, Hparams
from xtl.data import sources, tasks
from xtl.data.tasks import tagging_windows as tag_windows
from xtl.grid import config, plan, precedence, run, rundir
from xtl.training import sampling, train, train_data

REPO = Path(__file__).resolve().parents[1]
BASE = {"xtl": 1, "name": "t", "models": ["tiny"], "intermediate": ["none"],
        "targets": ["synth-nli"], "seeds": [0]}
# Ids computed by the code before revision 3 (contract v1 revision 2, commit d4abb63), for the
# identity rule. Registered Hub tasks: generated ones also carry the generators' revision (rev. 5).
V1_IDS = {"panx target": "target-cbf24995d976", "xnli target": "target-9fa052034748",
          "mnli stage": "stage-cc7109af1422"}


def cells(check_models: bool = True, **changes) -> list[plan.Cell]:
    exp = config.parse({**BASE, **changes})
    return plan.build(exp, check_models=check_models).cells


# --- 1. tagging: which sub-token carries the label -------------------------------------------

def sentencepiece_like() -> PreTrainedTokenizerFast:
    """A Unigram tokenizer with Metaspace pre-tokenisation, as XLM-R's and e5's: "微" is not a
    piece with the marker, so the word 微软 becomes "▁" + "微" + "软"."""
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", "微", "软", "\u2581Hello", "\u2581New",
              "York", "\u2581query", ":"]
    model = models.Unigram([(p, -1.0 if p.startswith("\u2581") else -2.0) for p in pieces],
                           unk_id=3)
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


@pytest.mark.parametrize("rule, labelled", [("first", "\u2581"), ("content", "微")])
def test_a_word_starting_with_a_bare_marker_is_labelled_by_the_rule(rule, labelled):
    tok = sentencepiece_like()
    batch = {"id": ["r"], "tokens": [["微软", "Hello", "NewYork"]], "tags": [[5, 0, 1]]}
    hp = Hparams({"tag_subtoken": rule})
    feats = tag_windows.featurize(batch, tok, hp, train=True)
    pieces = tok.convert_ids_to_tokens(feats["input_ids"][0])
    assert pieces == ["<s>", "\u2581", "微", "软", "\u2581Hello", "\u2581New", "York", "</s>"]
    labels = feats["labels"][0]
    assert [(pieces[k], t) for k, t in enumerate(labels) if t != tag_windows.IGNORE] == [
        (labelled, 5), ("\u2581Hello", 0), ("\u2581New", 1)]
    # prediction reads the word's tag at the position training labelled
    evaluation = tag_windows.featurize(batch, tok, hp, train=False)
    assert [k for k, w in enumerate(evaluation["word_index"][0]) if w >= 0] == [
        k for k, t in enumerate(labels) if t != tag_windows.IGNORE]


def test_label_positions_by_rule():
    bare = 6
    # word 0 = ["▁", "微"], word 1 = ["▁软"], word 2 = ["▁"] only, then a special token
    words, ids = [0, 0, 1, 2, -1], [bare, 10, 11, bare, 2]
    assert tag_windows._label_positions(words, ids, {bare}, "first") == [0, -1, 1, 2, -1]
    assert tag_windows._label_positions(words, ids, {bare}, "content") == [-1, 0, 1, 2, -1]
    assert tag_windows._label_positions([0, 0, 1], [5, 10, 11], {bare}, "first") == [0, -1, 1]
    with pytest.raises(ConfigError, match="unknown tag_subtoken rule 'last'"):
        tag_windows._label_positions(words, ids, {bare}, "last")


def test_the_rule_is_part_of_the_feature_cache_key(tiny_dir):
    from xtl.data.features import cache_key

    split = sources.Split("panx", "train", "en", None, "mirror", "x", "fp")
    tok = sentencepiece_like()
    keys = {cache_key(tasks.get("panx"), split, tok, Hparams({"tag_subtoken": r}), True)
            for r in ("first", "content")}
    assert len(keys) == 2


# --- 2. precedence: one function, one test per layer boundary --------------------------------

def resolve(key, *, phase="target", task="xnli", preset=None, hparams=None, model_hparams=None,
            task_overrides=None, grid=None):
    values = {"hparams": hparams or {}, "tasks": task_overrides or {},
              "model_hparams": {"m": model_hparams or {}}}
    got = precedence.resolve_hparams(phase, tasks.get(task), preset or {}, values, grid or {}, "m")
    return got.values[key], got.sources[key]


def test_precedence_kit_then_preset():
    assert resolve("weight_decay") == (0.01, "kit")
    assert resolve("weight_decay", preset={"weight_decay": 0.1}) == (0.1, "preset")


def test_precedence_preset_then_task_recipe():
    # XNLI's recipe says 2 epochs and max length 256: it beats a preset's 128
    assert resolve("max_length", preset={"max_length": 128}) == (256, "task")
    assert resolve("epochs", preset={"epochs": 7}) == (2, "task")
    assert resolve("learning_rate", task="xcopa", preset={"learning_rate": 1e-4}) == (3e-5, "task")


def test_precedence_model_intrinsic_keys_preset_beats_task():
    retrieval = {"layer": -1, "pooling": "cls", "input_prefix": "query: "}
    assert resolve("layer", task="tatoeba") == (14 / 24, "task")
    assert resolve("layer", task="tatoeba", preset=retrieval) == (-1, "preset")
    assert resolve("pooling", task="tatoeba", preset=retrieval) == ("cls", "preset")
    assert resolve("input_prefix", preset=retrieval) == ("query: ", "preset")
    # ... but not the file: it beats both
    assert resolve("layer", task="tatoeba", preset=retrieval,
                   hparams={"layer": 0.5}) == (0.5, "file")
    # and the task recipe still beats the preset for everything else (Tatoeba's 512 tokens)
    assert resolve("max_length", task="tatoeba", preset={"max_length": 256}) == (512, "task")


def test_precedence_task_recipe_then_file():
    assert resolve("epochs", hparams={"epochs": 4}) == (4, "file")
    assert resolve("epochs", hparams={"intermediate.epochs": 4}) == (2, "task")  # other phase


def test_precedence_file_then_model():
    assert resolve("learning_rate", hparams={"learning_rate": 3e-5},
                   model_hparams={"learning_rate": 2e-5}) == (2e-5, "model")
    # scoped keys work in the model layer too, and beat its plain key
    assert resolve("learning_rate", model_hparams={"learning_rate": 2e-5,
                                                   "target.learning_rate": 7e-6}) == (7e-6, "model")
    assert resolve("learning_rate", phase="intermediate", model_hparams={
        "learning_rate": 2e-5, "target.learning_rate": 7e-6}) == (2e-5, "model")


def test_precedence_model_then_tasks_overrides():
    assert resolve("learning_rate", model_hparams={"learning_rate": 2e-5},
                   task_overrides={"xnli": {"learning_rate": 5e-6}}) == (5e-6, "tasks.xnli")
    # another task's overrides do not apply
    assert resolve("learning_rate", model_hparams={"learning_rate": 2e-5},
                   task_overrides={"mnli": {"learning_rate": 5e-6}}) == (2e-5, "model")


def test_precedence_tasks_overrides_then_grid():
    assert resolve("learning_rate", task_overrides={"xnli": {"learning_rate": 5e-6}},
                   grid={"target.learning_rate": 4e-5}) == (4e-5, "grid")
    assert resolve("learning_rate", task_overrides={"xnli": {"learning_rate": 5e-6}},
                   grid={"intermediate.learning_rate": 4e-5}) == (5e-6, "tasks.xnli")


def test_scoped_key_beats_plain_key_whatever_the_order():
    for hparams in ({"target.epochs": 5, "epochs": 1}, {"epochs": 1, "target.epochs": 5}):
        assert resolve("epochs", hparams=hparams) == (5, "file")


def test_e5_preset_no_longer_cuts_a_tasks_own_length():
    from xtl.model import zoo

    e5 = zoo.PRESETS["multilingual-e5-small"].hparams
    assert resolve("max_length", task="tatoeba", preset=e5) == (512, "task")
    assert resolve("max_length", task="squad", phase="intermediate", preset=e5) == (384, "task")
    assert resolve("input_prefix", task="squad", phase="intermediate", preset=e5) == (
        "query: ", "preset")
    assert resolve("learning_rate", task="panx", preset=e5) == (1e-4, "preset")


# --- 3. per-model recipes ----------------------------------------------------------------------

def test_per_model_recipes_reach_their_cells_only():
    built = cells(check_models=False,
                  models=[{"name": "small", "hparams": {"target.learning_rate": 2e-5}},
                          "large", {"name": "xl"}],
                  hparams={"learning_rate": 1e-5}, intermediate=["none", "synth-nli"])
    by = {(c.axes["model"], c.kind): c for c in built}
    assert by[("small", "target")].identity["hparams"]["learning_rate"] == 2e-5
    assert by[("small", "target")].recipe["sources"]["learning_rate"] == "model"
    assert by[("small", "stage")].identity["hparams"]["learning_rate"] == 1e-5  # target. only
    assert by[("large", "target")].identity["hparams"]["learning_rate"] == 1e-5
    assert by[("xl", "target")].recipe["sources"]["learning_rate"] == "file"
    # the model axis keeps plain names (labels, results)
    assert {c.axes["model"] for c in built} == {"small", "large", "xl"}


def test_rq_files_give_each_model_its_own_learning_rate():
    for name in ("rq_scale", "rq_scale_lowresource", "rq_robustness"):
        exp = config.load(REPO / "parameters" / f"{name}.yaml")
        rates = {m: hp.get("learning_rate") for m, hp in exp["model_hparams"].items()}
        assert rates["xlm-roberta-large"] == 1e-5  # jiant's X-STILTs rate
        assert rates["xlm-roberta-base"] == rates["bert-base-multilingual-cased"] == 2e-5
        assert not exp["grid"], name  # no grid overrides the per-model rates
        built = plan.build(exp, check_models=False)
        seen = {(c.axes["model"], c.identity["hparams"]["learning_rate"]) for c in built.cells}
        assert all(rate == rates[model] for model, rate in seen), name


def test_rq_lowresource_sizes_stay_below_every_full_training_set():
    exp = config.load(REPO / "parameters" / "rq_lowresource.yaml")
    full = {"panx_r": 20_000, "udpos_r": 21_253, "xnli": 392_702}  # English train rows
    assert set(exp["targets"]) == set(full)
    sizes = [s for s in exp["train_sizes"] if s is not None]
    assert None in exp["train_sizes"] and max(sizes) < min(full.values())


# --- 4. the identity rule for post-v1 keys ------------------------------------------------------

def test_tag_subtoken_renames_tagging_cells_only_when_it_differs_from_v1():
    default = cells(check_models=False, targets=["panx"])[0]
    content = cells(check_models=False, targets=["panx"], hparams={"tag_subtoken": "content"})[0]
    assert content.id == V1_IDS["panx target"]  # v1's rule: v1's id
    assert default.id != content.id and default.identity["hparams"]["tag_subtoken"] == "first"
    assert "tag_subtoken" not in content.identity["hparams"]
    assert content.recipe["hparams"]["tag_subtoken"] == "content"  # the notebook still gets it


@pytest.mark.parametrize("rule", [None, "first", "content"])
def test_non_tagging_ids_never_change(rule):
    hp = {} if rule is None else {"tag_subtoken": rule}
    built = cells(False, intermediate=["mnli"], targets=["xnli"], hparams=hp)
    assert [c.id for c in built] == [V1_IDS["mnli stage"], "target-b0c4f01ba983"]
    assert cells(False, targets=["xnli"], hparams=hp)[0].id == V1_IDS["xnli target"]
    assert all("tag_subtoken" not in c.identity["hparams"] for c in built)


def test_a_tagging_stage_renames_what_starts_from_it():
    old = cells(False, intermediate=["panx"], targets=["xnli"], hparams={"tag_subtoken": "content"})
    new = cells(False, intermediate=["panx"], targets=["xnli"])
    assert old[0].id != new[0].id and old[1].id != new[1].id
    assert [c.id for c in old] == ["stage-444997fb0c2f", "target-115b2b64a808"]  # v1's


def test_every_post_v1_key_has_its_v1_behaviour():
    assert set(HPARAM_DEFAULTS) - V1_HPARAMS == set(POST_V1)
    assert POST_V1 == {"freeze_embeddings": False, "tag_subtoken": "content",
                              "dev_subset": 0}
    assert precedence.identity_hparams(Hparams({"dev_subset": 500}), {"x"})["dev_subset"] \
        == 500


# --- 5. multi-task stages: each task its own recipe ---------------------------------------------

def test_multi_task_stage_identity_holds_each_tasks_values():
    built = cells(intermediate=[["synth-nli", "synth-qa"]],
                  tasks={"synth-qa": {"doc_stride": 32, "learning_rate": 9e-4}})
    stage = built[0]
    per_task = stage.identity["task_hparams"]
    assert per_task["synth-nli"]["max_length"] == 128 and per_task["synth-qa"]["max_length"] == 256
    assert per_task["synth-qa"]["doc_stride"] == 32 and per_task["synth-nli"]["doc_stride"] == 128
    assert stage.recipe["task_sources"]["synth-qa"]["doc_stride"] == "tasks.synth-qa"
    # LOOP values are the cell's: no per-task layer (tasks.synth-qa's rate does not apply)
    assert stage.identity["hparams"]["learning_rate"] == 5e-4  # tiny preset
    assert set(TASK_KEYS).isdisjoint(stage.identity["hparams"])
    # a single-task stage keeps the v1 shape
    single = cells(intermediate=["synth-nli"])[0]
    assert "task_hparams" not in single.identity and "epochs" in single.identity["hparams"]


def test_multi_task_notebook_parameters_carry_per_task_values(tmp_path):
    exp = config.parse({**BASE, "intermediate": [["synth-nli", "synth-qa"]]})
    built = plan.build(exp)
    params = run.notebook_parameters(built.cells[0], rundir.RunDir(tmp_path), built, exp)
    assert params["task_hparams"]["synth-qa"]["max_length"] == 256
    assert params["hparam_sources"]["synth-qa"]["max_length"] == "task"
    cell = phases.start("stage", "c", str(tmp_path / "c"), str(tmp_path / "k"), params["hparams"],
                        task_hparams=params["task_hparams"],
                        hparam_sources=params["hparam_sources"], model="tiny",
                        tasks=params["tasks"], seed=0)
    assert cell.hparams_for(tasks.get("synth-qa"))["max_length"] == 256
    assert cell.hparams_for(tasks.get("synth-nli"))["max_length"] == 128
    table = phases.recipe_table(cell, [tasks.get("synth-nli"), tasks.get("synth-qa")])
    assert table.loc[("synth-qa", "max_length"), "from"] == "task"
    assert table.loc[("stage", "learning_rate"), "from"] == "preset"
    assert ("synth-nli", "doc_stride") not in table.index  # pair classification never reads it
    with pytest.raises(ConfigError, match="'learning_rate' is one value per cell"):
        phases.start("stage", "c", str(tmp_path / "c"), str(tmp_path / "k"), {},
                     task_hparams={"synth-qa": {"learning_rate": 1e-3}}, model="tiny",
                     tasks=params["tasks"], seed=0)


@pytest.mark.usefixtures("one_thread")
def test_multi_task_stage_featurises_and_decodes_each_task_with_its_own_values(
        tiny_dir, tmp_path, monkeypatch):
    from xtl.data import features
    from xtl.evaluation import evaluate
    from xtl.model.models import build

    nli, qa = tasks.get("synth-nli"), tasks.get("synth-qa")
    trains = [sources.load(nli, "train", "en", size=32), sources.load(qa, "train", "en", size=16)]
    devs = [sources.load(nli, "validation", "en", size=8),
            sources.load(qa, "validation", "en", size=8)]
    featurised, scored = [], []
    real_features, real_predict = features.features, evaluate.predict

    def spy_features(task, split, tokenizer, hp, train=False, cache=True):
        featurised.append((task.name, split.split, hp["max_length"], hp["doc_stride"]))
        feats = real_features(task, split, tokenizer, hp, train, cache)
        assert max(len(ids) for ids in feats["input_ids"]) <= hp["max_length"]
        return feats

    def spy_predict(model, tokenizer, task, split, hp, precision="fp32"):
        scored.append((task.name, hp["max_length"], hp["max_answer_length"]))
        return real_predict(model, tokenizer, task, split, hp, precision)

    monkeypatch.setattr(train_data, "features", spy_features)
    monkeypatch.setattr(evaluate, "features", spy_features)
    monkeypatch.setattr(evaluate, "predict", spy_predict)
    model, tok, _ = build(tiny_dir, [nli, qa], seed=0)
    hp = Hparams({"batch_size": 8, "max_length": 200, "precision": "fp32",
                            "learning_rate": 1e-4})
    own = [{"epochs": 1, "max_length": 48}, {"epochs": 2, "max_length": 96, "doc_stride": 24,
                                             "max_answer_length": 7}]
    result = train.fit_tasks(model, tok, [nli, qa], trains, devs, hp, 0, tmp_path / "ck",
                             tmp_path / "h.jsonl", {"cell": "t"}, task_hps=own)
    assert ("synth-nli", "train", 48, 128) in featurised
    assert ("synth-qa", "train", 96, 24) in featurised
    assert {("synth-nli", 48, 30), ("synth-qa", 96, 7)} <= set(scored)
    # steps: 1 x ceil(32 / 8) + 2 x ceil(qa features / 8); every step one task
    qa_feats = sum(1 for name, split, *_ in featurised if (name, split) == ("synth-qa", "train"))
    assert qa_feats >= 1 and result.steps == sum(result.task_steps.values())
    assert result.mixture[0]["epochs"] == 1 and result.mixture[1]["epochs"] == 2


# --- 6. the epochs / steps arithmetic -----------------------------------------------------------

HP = Hparams({"batch_size": 8, "grad_accum": 2})


def test_each_task_contributes_its_epochs_times_its_batches():
    mix = sampling.mixture(["a", "b", "c"], [1000, 300, 50], [False] * 3, HP, epochs=[2, 5, 10])
    steps = [math.ceil(n / 16) for n in (1000, 300, 50)]  # 63, 19, 4
    assert mix.total == 2 * 63 + 5 * 19 + 10 * 4 == 261
    assert mix.steps_per_epoch == sum(steps)
    weights = np.array([2 * 1000, 5 * 300, 10 * 50], dtype=float)
    assert mix.probabilities == pytest.approx((weights / weights.sum()).tolist())
    # whole batches: each task is expected to get exactly its own epochs x batches
    even = sampling.mixture(["a", "b", "c"], [1600, 480, 160], [False] * 3, HP, epochs=[2, 5, 10])
    assert even.total == 2 * 100 + 5 * 30 + 10 * 10
    assert [p * even.total for p in even.probabilities] == pytest.approx([200, 150, 100])


def test_equal_epochs_give_jiants_proportional_sampler_exactly():
    a = sampling.mixture(["a", "b"], [1000, 300], [False] * 2, HP | {"epochs": 3})
    b = sampling.mixture(["a", "b"], [1000, 300], [False] * 2, HP, epochs=[3, 3])
    assert a == b and a.probabilities == (1000 / 1300, 300 / 1300)
    assert a.total == 3 * (63 + 19)
    third = sampling.mixture(["a", "b"], [1000, 300], [False] * 2, HP, epochs=[0.75, 0.75])
    assert third.total == math.ceil(0.75 * 82)


def test_temperature_uniform_cap_and_mlm_weight_with_own_epochs():
    temp = sampling.mixture(["a", "b"], [1000, 100], [False] * 2,
                            HP | {"multitask_sampler": "temperature", "multitask_temperature": 2.0,
                                  "multitask_cap": 400}, epochs=[1, 4])
    assert temp.counted == (400, 100)
    w = np.sqrt([1 * 400, 4 * 100])
    assert temp.probabilities == pytest.approx((w / w.sum()).tolist())
    assert temp.total == 1 * 25 + 4 * 7
    uniform = sampling.mixture(["a", "b"], [1000, 100], [False] * 2,
                               HP | {"multitask_sampler": "uniform"}, epochs=[1, 4])
    assert uniform.probabilities == (0.5, 0.5) and uniform.total == 63 + 4 * 7
    mlm = sampling.mixture(["a", "mlm"], [160, 10_000], [False, True],
                           HP | {"mlm_weight": 0.2}, epochs=[3, 1])
    assert mlm.probabilities == pytest.approx([0.8, 0.2])
    assert mlm.steps_per_epoch == math.ceil(10 / 0.8) and mlm.total == math.ceil(3 * 13)


# --- 7. checkpoint selection ------------------------------------------------------------------

def test_dev_subset_takes_the_first_rows_and_names_them():
    dev = sources.load(tasks.get("synth-nli"), "validation", "en", size=50)
    first = train_data.selection_split(dev, 20)
    assert first.rows["id"] == dev.rows["id"][:20] and first.fingerprint.endswith("|first=20")
    assert train_data.selection_split(dev, 0) is dev and train_data.selection_split(dev, 500) is dev


@pytest.mark.usefixtures("one_thread")
def test_the_report_states_the_selection_rule(tiny_dir, tmp_path):
    from xtl.model.models import build

    nli = tasks.get("synth-nli")
    model, tok, _ = build(tiny_dir, [nli], seed=0)
    tr = sources.load(nli, "train", "en", size=48)
    dev = sources.load(nli, "validation", "en", size=30)
    hp = {"epochs": 2, "batch_size": 8, "max_length": 48, "precision": "fp32",
          "eval_every": 4, "patience": 3, "dev_subset": 10}
    result = train.fit(model, tok, nli, tr, dev, hp, 0, tmp_path / "ck", tmp_path / "h.jsonl",
                       {"cell": "t"})
    assert result.selection == (
        f"best English dev accuracy of synth-nli, evaluated every 4 optimizer steps and at the "
        f"end on the first 10 synth-nli dev rows; early stop after 3 evaluations without "
        f"improvement; chosen at step {result.best_step} of {result.steps}")
    assert phases.fit_summary(result)["selection"] == result.selection
    plain = train.fit(model, tok, nli, tr, dev, {**hp, "eval_every": 0, "patience": 0,
                                                 "dev_subset": 0}, 0, tmp_path / "ck2",
                      tmp_path / "h2.jsonl", {"cell": "t2"})
    assert "at the end of every epoch (6 optimizer steps) on all 30 synth-nli dev rows; no " \
        "early stopping" in plain.selection


def test_paper_files_put_jiants_selection_rule_in_the_recipe():
    for name in ("paper", "paper_variants", "xtreme_r"):
        hp = config.load(REPO / "parameters" / f"{name}.yaml")["hparams"]
        assert (hp["eval_every"], hp["patience"], hp["dev_subset"]) == (1000, 30, 500), name


# --- 8. the paper's variants and XTREME-R's Tatoeba ----------------------------------------------

def test_paper_variants_share_the_papers_cells():
    main = config.load(REPO / "parameters" / "paper.yaml")
    variants = config.load(REPO / "parameters" / "paper_variants.yaml")
    for key in ("name", "models", "targets", "seeds", "eval_split", "hparams"):
        assert main[key] == variants[key], key
    ids = {}
    for exp in (main, variants):
        for c in plan.build(exp, check_models=False).cells:
            ids.setdefault(c.label, set()).add(c.id)
    assert all(len(found) == 1 for found in ids.values())  # a shared label is the same cell
    labels = {c.axes["intermediate"] for c in plan.build(variants, check_models=False).cells}
    assert {"mnli+mlm", "squad+mlm", "hellaswag+mlm", "mnli", "squad", "hellaswag"} <= labels
    assert any(label.startswith("mnli+mnli_mt_ar") for label in labels)
    assert any(label.startswith("squad+squad_mt_ar") for label in labels)


def test_tatoeba_r_retrieves_after_a_squad_stage():
    built = cells(check_models=False, models=["xlm-roberta-large"], targets=["tatoeba_r"],
                  intermediate=["none", "mnli"])
    by_label = {c.label: c for c in built}
    squad_alone = by_label["xlm-roberta-large | squad_xtreme_r | seed 0"]
    after_mnli = by_label["xlm-roberta-large | mnli>squad_xtreme_r | seed 0"]
    none_row = by_label["xlm-roberta-large | none -> tatoeba_r | seed 0"]
    assert none_row.kind == "retrieval" and none_row.parent == squad_alone.id
    assert by_label["xlm-roberta-large | mnli -> tatoeba_r | seed 0"].parent == after_mnli.id
    # XTREME-R's SQuAD recipe for its Tatoeba checkpoint; retrieval at layer 14 of 24, 512 tokens
    hp = squad_alone.identity["hparams"]
    assert (hp["learning_rate"], hp["epochs"], hp["max_length"], hp["batch_size"]) == (
        3e-5, 2, 384, 32)
    assert none_row.identity["hparams"]["layer"] == 14 / 24
    assert none_row.identity["hparams"]["max_length"] == 512
    xtreme_r = config.load(REPO / "parameters" / "xtreme_r.yaml")
    assert "tatoeba_r" in xtreme_r["targets"] and "tatoeba" not in xtreme_r["targets"]


def test_xtreme_r_score_counts_tatoeba_after_squad_only():
    from xtl.analysis import results

    assert results.BENCHMARK_TASKS["xtreme-r"]["tatoeba_r"] == "tatoeba"
    assert results.BENCHMARK_TASKS["xtreme-r"]["tatoeba"] is None
    assert results.BENCHMARK_TASKS["xtreme"]["tatoeba_r"] is None


# --- 9. a run directory made before revision 3 still loads --------------------------------------

def test_a_plan_without_recipes_still_loads(tmp_path):
    exp = config.parse({**BASE, "intermediate": ["none", "synth-nli"]})
    built = plan.build(exp)
    doc = built.to_json()
    for c in doc["cells"]:
        del c["recipe"]
    root = tmp_path / "old"
    root.mkdir()
    (root / "plan.json").write_text(json.dumps(doc))
    old = plan.Plan.from_json(json.loads((root / "plan.json").read_text()))
    assert [c.id for c in old.cells] == [c.id for c in built.cells]
    params = run.notebook_parameters(old.cells[1], rundir.RunDir(root), old, exp)
    assert params["hparams"] == HPARAM_DEFAULTS | old.cells[1].identity["hparams"]
    assert "3 pending" in rundir.status_table(root)


def test_the_generators_revision_renames_generated_cells_only(monkeypatch):
    """Contract v1 revision 5: what a generator produces is part of a generated task's identity."""
    from xtl.offline import synth

    def ids() -> dict[str, str]:
        return {c.axes["target"]: c.id for c in cells(False, targets=["synth-nli", "xnli"])}

    before = ids()
    monkeypatch.setattr(synth, "REVISION", synth.REVISION + 1)
    after = ids()
    assert before["synth-nli"] != after["synth-nli"]
    assert before["xnli"] == after["xnli"] == V1_IDS["xnli target"]
