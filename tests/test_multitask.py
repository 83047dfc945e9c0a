"""Multi-task stages: samplers, two heads on one encoder, MLM mixed in, resume, chains."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from xtl.core import faults
from xtl.core.errors import ConfigError
from xtl.core.hparams import Hparams
from xtl.data import mlm, sources, tasks
from xtl.grid import config
from xtl.model.models import build, verify_checkpoint
from xtl.training import devices, resume, sampling, train

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

HP = Hparams({"learning_rate": 2e-3, "epochs": 2, "batch_size": 16, "max_length": 48,
              "precision": "fp32"})
COLOURS = ("red", "blue", "green")
SIZES = ("klein", "gross")


def _colours(language: str, split: str, n: int, seed: int) -> list[dict]:
    """Learnable: the colour word in the premise decides the label (3 classes)."""
    g = torch.Generator().manual_seed(seed + (split == "validation"))
    labels = torch.randint(0, 3, (n,), generator=g).tolist()
    return [{"premise": f"the {COLOURS[k]} thing number {i}", "hypothesis": "a thing",
             "label": k} for i, k in enumerate(labels)]


def _sizes(language: str, split: str, n: int, seed: int) -> list[dict]:
    """A German single-sentence task: "klein" or "gross" decides the label (2 classes)."""
    g = torch.Generator().manual_seed(seed + 11 + (split == "validation"))
    labels = torch.randint(0, 2, (n,), generator=g).tolist()
    return [{"sentence": f"das ding {i} ist {SIZES[k]} und schwer", "label": k}
            for i, k in enumerate(labels)]


NLI = tasks.Task(name="toy-nli", format="pair_classification", languages=("en",),
                 label_names=("entailment", "neutral", "contradiction"), generator=_colours,
                 fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"})
SIZE = tasks.Task(name="toy-size-de", format="pair_classification", languages=("de",),
                  train_language="de", label_names=SIZES, generator=_sizes,
                  fields={"text_a": "sentence", "label": "label"})
MLM = tasks.get("mlm")


pytestmark = pytest.mark.usefixtures("one_thread")


def _split(task: tasks.Task, split: str, n: int) -> sources.Split:
    return sources.load(task, split, task.train_language, size=n)


@pytest.fixture(scope="module")
def text_root(tmp_path_factory):
    """<raw>/mlm/train/{en,de}.txt: a small multilingual corpus, one sentence per line."""
    root = tmp_path_factory.mktemp("raw")
    folder = root / "mlm" / "train"
    folder.mkdir(parents=True)
    g = np.random.default_rng(0)
    en = [f"the {COLOURS[g.integers(3)]} cat sat on the mat number {i}" for i in range(300)]
    de = [f"die {('rote', 'blaue')[g.integers(2)]} katze sass auf der matte {i}"
          for i in range(300)]
    (folder / "en.txt").write_text("\n".join(en) + "\n\n")  # a blank line: dropped, counted
    (folder / "de.txt").write_text("\n".join(de) + "\n")
    return root


@pytest.fixture(scope="module")
def mlm_data(text_root):
    return (sources.load(MLM, "train", "mul", raw=text_root),
            sources.load(MLM, "validation", "mul", raw=text_root))


# --- samplers and step counts (no model) ------------------------------------------------------

@pytest.mark.parametrize("sampler, cap, expected", [
    ("proportional", 0, [1000, 300, 50]),
    ("proportional", 200, [200, 200, 50]),  # jiant's capped sampler
    ("temperature", 200, [200 ** 0.5, 200 ** 0.5, 50 ** 0.5]),  # T = 2
    ("uniform", 0, [1, 1, 1]),
])
def test_sampled_task_frequencies_match_each_scheme(sampler, cap, expected):
    hp = HP | {"multitask_sampler": sampler, "multitask_cap": cap, "multitask_temperature": 2.0,
               "epochs": 200, "batch_size": 8}
    mix = sampling.mixture(["a", "b", "c"], [1000, 300, 50], [False] * 3, hp)
    p = np.asarray(expected, dtype=float) / sum(expected)
    assert mix.probabilities == pytest.approx(p.tolist())
    counted = [min(n, cap) if cap else n for n in (1000, 300, 50)]
    assert mix.total == sum(200 * math.ceil(n / 8) for n in counted)  # jiant's total
    draws = sampling.schedule(mix, seed=3)
    counts = np.bincount(draws, minlength=3)
    expect = p * mix.total
    chi2 = float(((counts - expect) ** 2 / expect).sum())
    assert chi2 < 13.8  # chi-square, 2 degrees of freedom, p = 0.001
    assert np.array_equal(draws, sampling.schedule(mix, seed=3))  # a function of the seed
    assert not np.array_equal(draws, sampling.schedule(mix, seed=4))


def test_mlm_weight_adds_its_share_on_top_of_the_labelled_steps():
    hp = HP | {"mlm_weight": 0.25, "batch_size": 10, "grad_accum": 2, "epochs": 3}
    mix = sampling.mixture(["nli", "qa", "mlm"], [400, 200, 10_000], [False, False, True], hp)
    assert mix.probabilities == pytest.approx([0.5, 0.25, 0.25])
    assert mix.steps_per_epoch == math.ceil((20 + 10) / 0.75) and mix.total == 120
    plain = sampling.mixture(["nli", "mlm"], [400, 10_000], [False, True], HP)
    assert plain.probabilities == pytest.approx([400 / 10_400, 10_000 / 10_400])
    alone = sampling.mixture(["mlm"], [100], [True], HP | {"mlm_weight": 0.5})
    assert alone.probabilities == (1.0,) and alone.total == 2 * 7


def test_global_batches_split_into_weighted_shares():
    batch = list(range(7))
    shares = [sampling.shard(batch, r, 2) for r in range(2)]
    assert shares == [([0, 2, 4, 6], 8 / 7), ([1, 3, 5], 6 / 7)]
    # every example counts world / batch in its share's weighted mean: averaged over the
    # processes (as DDP does), each counts 1 / batch, as in the whole batch's mean
    assert all(w / len(s) == pytest.approx(2 / 7) for s, w in shares)
    assert sampling.shard([5], 1, 2) == ([5], 0.0)  # an empty share runs one row, weight 0
    plan = sampling.BatchPlan(list(range(1, 41)), 8, seed=0)
    cursor = sampling.Cursor(plan)
    groups = [cursor.take(2) for _ in range(4)]
    assert [len(g) for g in groups] == [2, 2, 1, 2]  # an epoch's last group is short
    assert cursor.state() == [1, 2] and groups[3] == plan.epoch(1)[:2]


def test_fsdp_is_refused_where_it_cannot_work(tiny_dir):
    model, _, _ = build(tiny_dir, [NLI, MLM])
    with pytest.raises(ConfigError, match="needs CUDA"):
        devices.check_fsdp(model, [NLI], torch.device("cpu"))
    with pytest.raises(ConfigError, match="cannot train an MLM task"):
        devices.check_fsdp(model, [NLI, MLM], torch.device("cuda", 0))


def test_multi_task_stages_in_the_experiment_file():
    base = {"xtl": 1, "models": ["tiny"], "targets": ["synth-nli"]}
    exp = config.parse(base | {"intermediate": ["none", ["mnli", "mlm"],
                                                {"chain": [["mnli", "squad"], "synth-nli"]}],
                               "hparams": {"multitask_sampler": "temperature",
                                           "multitask_cap": 1000, "mlm_weight": 0.2},
                               "gpus_per_cell": 2, "distributed": "fsdp"})
    assert config.intermediate_stages(exp["intermediate"][2]) == [["mnli", "squad"],
                                                                  ["synth-nli"]]
    for bad, message in [({"intermediate": [["mnli", "mnli"]]}, "names a task twice"),
                         ({"hparams": {"multitask_sampler": "annealed"}}, "multitask_sampler"),
                         ({"hparams": {"mlm_weight": 1.0}}, "mlm_weight"),
                         ({"hparams": {"multitask_cap": -1}}, "multitask_cap"),
                         ({"gpus_per_cell": 0}, "gpus_per_cell"),
                         ({"distributed": "zero3"}, "distributed")]:
        with pytest.raises(ConfigError, match=message):
            config.parse(base | bad)


# --- training ---------------------------------------------------------------------------------

def _fit(tiny_dir, stage: list[tasks.Task], trains, devs, out, init=None, **hp):
    model, tok, report = build(tiny_dir, stage, init_checkpoint=init, seed=0)
    result = train.fit_tasks(model, tok, stage, trains, devs, HP | hp, 0, out / "ckpt",
                             out / "history.jsonl", {"cell": out.name})
    return model, result, report


def _task_losses(history: list[dict], name: str) -> list[float]:
    return [h["loss"] for h in history if h.get("task") == name]


def test_two_task_stage_trains_both_heads(tiny_dir, tmp_path):
    stage = [NLI, SIZE]
    trains = [_split(NLI, "train", 192), _split(SIZE, "train", 96)]
    devs = [_split(NLI, "validation", 48), _split(SIZE, "validation", 32)]
    model, result, _ = _fit(tiny_dir, stage, trains, devs, tmp_path / "stage",
                            epochs=3, multitask_sampler="uniform")
    assert result.steps == 3 * (12 + 6) == sum(result.task_steps.values())
    assert min(result.task_steps.values()) > 15  # uniform: about half each
    for name in ("toy-nli", "toy-size-de"):  # both heads learn
        losses = _task_losses(result.history, name)
        assert np.mean(losses[-4:]) < 0.6 * np.mean(losses[:4]), name
    evals = [h for h in result.history if "dev_scores" in h]
    assert len(evals) == 3 and all(set(h["dev_scores"]) == {"toy-nli", "toy-size-de"}
                                   for h in evals)
    best = max(evals, key=lambda h: h["dev_score"])
    assert result.best_score == best["dev_score"] == pytest.approx(
        np.mean(list(best["dev_scores"].values())))  # the stated aggregate: the mean
    assert result.best_scores == best["dev_scores"] and min(result.best_scores.values()) > 80
    record = verify_checkpoint(tmp_path / "stage" / "ckpt" / "best")
    assert record["step"] == result.best_step and record["dev_scores"] == result.best_scores
    heads = load_file(tmp_path / "stage" / "ckpt" / "best" / "heads.safetensors")
    assert {k.split(".")[0] for k in heads} == {"toy-nli", "toy-size-de"}
    lines = (tmp_path / "stage" / "history.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == result.history


def test_mlm_mixed_into_a_stage_trains(tiny_dir, tmp_path, mlm_data):
    train_rows, dev_rows = mlm_data
    assert train_rows.unusable == {mlm.EMPTY: 1} and len(dev_rows.rows) == 12  # every 50th
    assert not set(train_rows.rows["text"]) & set(dev_rows.rows["text"])
    stage = [NLI, MLM]
    _, result, report = _fit(tiny_dir, stage, [_split(NLI, "train", 96), train_rows],
                             [_split(NLI, "validation", 32), dev_rows], tmp_path,
                             epochs=4, mlm_weight=0.5, learning_rate=3e-3)
    assert "heads.mlm.bias" in report.new  # the tiny preset has no pretrained MLM head
    assert result.mixture[1]["probability"] == 0.5 and result.steps == 4 * 12
    losses = _task_losses(result.history, "mlm")
    assert losses[0] > 6.5  # ~ ln(vocabulary): the fresh head knows nothing
    assert np.mean(losses[-3:]) < 0.6 * losses[0]
    evals = [h["dev_scores"] for h in result.history if "dev_scores" in h]
    assert evals[-1]["mlm"] > evals[0]["mlm"] > 0  # masked-token accuracy rises
    # The aggregate is the labelled tasks' mean: MLM is trained alongside, not selected on.
    assert result.best_score == result.best_scores["toy-nli"]


def test_mlm_head_is_tied_and_starts_from_a_pretrained_one(tiny_dir, tmp_path):
    from transformers import AutoConfig, XLMRobertaForMaskedLM

    pretrained = XLMRobertaForMaskedLM(AutoConfig.from_pretrained(str(tiny_dir)))
    with torch.no_grad():
        pretrained.lm_head.dense.weight.fill_(0.5)
    pretrained.save_pretrained(tmp_path / "with-head")
    (tmp_path / "with-head" / "tokenizer.json").write_bytes((tiny_dir / "tokenizer.json")
                                                           .read_bytes())
    (tmp_path / "with-head" / "tokenizer_config.json").write_bytes(
        (tiny_dir / "tokenizer_config.json").read_bytes())
    model, _, report = build(tmp_path / "with-head", [MLM])
    head = model.heads["mlm"]
    assert torch.all(head.dense.weight == 0.5) and "heads.mlm.dense.weight" in \
        report.pretrained_heads and not report.new
    emb = model.encoder.get_input_embeddings().weight
    hidden = torch.randn(1, 3, emb.shape[1])
    logits = head(hidden, {"labels": torch.tensor([[-100, 7, -100]])})
    assert logits.shape == (1, emb.shape[0])  # only the masked position reaches the vocabulary
    logits.sum().backward()
    assert emb.grad is not None  # the projection IS the word-embedding matrix


def _crash_fixture(monkeypatch):
    def kill() -> None:
        raise RuntimeError("crash")

    monkeypatch.setattr(faults, "_kill", kill)
    monkeypatch.setattr(faults, "_seen", {})


def test_multi_task_resume_is_bit_identical(tiny_dir, tmp_path, monkeypatch, mlm_data):
    """Killed mid-run (in-process fault hook), resumed: same losses, task draws and weights."""
    stage = [NLI, SIZE, MLM]
    trains = [_split(NLI, "train", 64), _split(SIZE, "train", 48), mlm_data[0]]
    devs = [_split(NLI, "validation", 16), _split(SIZE, "validation", 16), mlm_data[1]]
    hp = {"save_every": 4, "mlm_weight": 0.3, "multitask_sampler": "temperature"}
    _, reference, _ = _fit(tiny_dir, stage, trains, devs, tmp_path / "ref", **hp)
    _crash_fixture(monkeypatch)
    monkeypatch.setenv(faults.ENV, "train_step:10")
    with pytest.raises(RuntimeError, match="crash"):
        _fit(tiny_dir, stage, trains, devs, tmp_path / "run", **hp)
    assert resume.pending(tmp_path / "run" / "ckpt")
    monkeypatch.delenv(faults.ENV)
    _, again, _ = _fit(tiny_dir, stage, trains, devs, tmp_path / "run", **hp)
    assert again.resumed_from == 8 and again.steps == reference.steps
    strip = [{k: v for k, v in h.items() if k != "examples_per_s"} for h in reference.history]
    assert [{k: v for k, v in h.items() if k != "examples_per_s"}
            for h in again.history] == strip
    assert {h.get("task") for h in strip} >= {"toy-nli", "toy-size-de", "mlm"}
    for which in ("best", "last"):
        a = load_file(tmp_path / "ref" / "ckpt" / which / "encoder" / "model.safetensors")
        b = load_file(tmp_path / "run" / "ckpt" / which / "encoder" / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), which
        a = load_file(tmp_path / "ref" / "ckpt" / which / "heads.safetensors")
        b = load_file(tmp_path / "run" / "ckpt" / which / "heads.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), which


def test_a_chain_of_two_stages_starts_from_the_first_checkpoint(tiny_dir, tmp_path):
    first = [_split(NLI, "train", 64), _split(SIZE, "train", 48)]
    first_dev = [_split(NLI, "validation", 16), _split(SIZE, "validation", 16)]
    _fit(tiny_dir, [NLI, SIZE], first, first_dev, tmp_path / "one", epochs=1)
    best = tmp_path / "one" / "ckpt" / "best"
    model, result, report = _fit(tiny_dir, [SIZE], first[1:], first_dev[1:], tmp_path / "two",
                                 init=best, epochs=1, learning_rate=1e-12)
    assert report.parent["cell"] == "one" and report.encoder_source == str(best / "encoder")
    assert report.new == sorted(f"heads.{k}" for k in model.heads.state_dict())  # fresh head
    saved = load_file(best / "encoder" / "model.safetensors")
    now = model.encoder.state_dict()
    # lr ~ 0: the second stage's encoder is still the first stage's best one
    assert all(torch.allclose(saved[k], now[k], atol=1e-6) for k in saved)
    assert result.steps == 3


@pytest.mark.slow
def test_the_intermediate_notebook_trains_a_multi_task_stage(tmp_path, text_root, hub_mirror):
    """papermill: synthetic English NLI + German XNLI rows (declared) + MLM in one stage."""
    import papermill

    german = {"format": "pair_classification", "hub_id": "facebook/xnli", "languages": ["de"],
              "train_language": "de", "label_names": list(NLI.label_names),
              "fields": {"text_a": "premise", "text_b": "hypothesis", "label": "label"},
              "label_aliases": {"contradictory": "contradiction"}}
    cell = tmp_path / "cell"
    cell.mkdir()
    stage = ["synth-nli", "xnli-de", "mlm"]
    params = {"cell_id": "stage-test", "model": "tiny", "tasks": stage, "seed": 0,
              "hparams": {"epochs": 1, "batch_size": 32, "learning_rate": 1e-3,
                          "precision": "fp32", "mlm_weight": 0.3, "max_length": 64},
              "init_checkpoint": None, "cell_dir": str(cell),
              "checkpoint_dir": str(tmp_path / "ckpt"), "mirror": str(hub_mirror),
              "raw_dir": str(text_root), "declared_tasks": {"xnli-de": german}}
    papermill.execute_notebook(str(NOTEBOOKS / "intermediate.ipynb"),
                               str(cell / "notebook.ipynb"), parameters=params,
                               kernel_name="python3", progress_bar=False)
    doc = json.loads((cell / "metrics.json").read_text())
    assert [r["task"] for r in doc["records"]] == stage  # one record per task
    assert [r["language"] for r in doc["records"]] == ["en", "de", "mul"]
    assert doc["records"][2]["metric"] == "mlm_accuracy"
    training = doc["provenance"]["training"]
    assert training["aggregate"] == "mean" and set(training["best_dev_scores"]) == set(stage)
    assert sum(training["task_steps"].values()) == training["steps"]
    assert doc["provenance"]["data"]["xnli-de/de/train"]["source"] == "mirror"
    assert verify_checkpoint(tmp_path / "ckpt" / "best")["tasks"] == stage
