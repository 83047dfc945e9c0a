"""Training and checkpoints on the tiny preset: numbers, not just "it ran"."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from conftest import assert_same_checkpoint

from xtl.cells import phases
from xtl.core.errors import ConfigError, DataError, ModelError
from xtl.core.hparams import Hparams
from xtl.data import sources, tasks
from xtl.data.features import features
from xtl.model.models import XtlModel, build, load_heads, save_checkpoint, verify_checkpoint
from xtl.training import devices, resume, sampling, selection, train, train_data

HP = Hparams({"learning_rate": 2e-3, "epochs": 3, "batch_size": 32, "max_length": 64,
                        "precision": "fp32"})
WORDS = ("red", "blue", "green")


pytestmark = pytest.mark.usefixtures("one_thread")


def _toy_rows(language: str, split: str, n: int, seed: int) -> list[dict]:
    """A learnable toy: the colour word in the premise decides the label."""
    g = torch.Generator().manual_seed(seed + (split == "validation"))
    labels = torch.randint(0, 3, (n,), generator=g).tolist()
    return [{"premise": f"the {WORDS[k]} thing number {i}", "hypothesis": "a thing",
             "label": k} for i, k in enumerate(labels)]


NLI = tasks.Task(name="toy-nli", format="pair_classification", languages=("en",),
                 label_names=("entailment", "neutral", "contradiction"), generator=_toy_rows,
                 fields={"text_a": "premise", "text_b": "hypothesis", "label": "label"})


@pytest.fixture(scope="module")
def data():
    return sources.load(NLI, "train", "en", size=240), sources.load(NLI, "validation", "en",
                                                                    size=90)


def _fit(tiny_dir, data, tmp_path, seed=0, **hp):
    model, tok, _ = build(tiny_dir, [NLI], seed=seed)
    result = train.fit(model, tok, NLI, *data, HP | hp, seed, tmp_path / "ckpt",
                       tmp_path / "history.jsonl", {"cell": "test"})
    return model, tok, result


def test_loss_falls_and_best_is_kept(tiny_dir, data, tmp_path):
    _, _, result = _fit(tiny_dir, data, tmp_path)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(losses) == 24  # 3 epochs x ceil(240 / 32)
    assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:4]) / 4
    assert result.best_score > 90
    dev = [h["dev_score"] for h in result.history if "dev_score" in h]
    assert len(dev) == 3 and result.best_score == max(dev)
    best = verify_checkpoint(tmp_path / "ckpt" / "best")
    assert best["step"] == result.best_step and best["cell"] == "test"
    assert verify_checkpoint(tmp_path / "ckpt" / "last")["step"] == 24
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == result.history
    assert not result.collapsed and result.flags == []
    assert 0 <= result.padded_fraction < 0.5 and result.device == "cpu"
    assert not resume.pending(tmp_path / "ckpt")  # the resume state is gone once complete


def test_same_seed_same_numbers(tiny_dir, data, tmp_path):
    _, _, a = _fit(tiny_dir, data, tmp_path / "a", epochs=1)
    _, _, b = _fit(tiny_dir, data, tmp_path / "b", epochs=1)
    _, _, c = _fit(tiny_dir, data, tmp_path / "c", seed=1, epochs=1)
    strip = [{k: v for k, v in h.items() if k != "examples_per_s"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k != "examples_per_s"} for h in b.history]
    assert [h.get("loss") for h in a.history] != [h.get("loss") for h in c.history]


def test_grad_accumulation_counts_optimizer_steps(tiny_dir, data, tmp_path):
    _, _, result = _fit(tiny_dir, data, tmp_path, epochs=1, batch_size=8, grad_accum=4)
    assert result.steps == 8  # 30 micro-batches of 8 -> ceil(30 / 4) optimizer steps


def test_checkpoint_round_trip_is_bitwise(tiny_dir, tmp_path):
    torch.manual_seed(3)
    model, tok, report = build(tiny_dir, [NLI])
    assert len(report.new) == 4 and report.loaded
    save_checkpoint(model, tok, tmp_path / "c", {"cell": "x"})
    again, _, report2 = build(tiny_dir, [NLI], init_checkpoint=tmp_path / "c")
    assert report2.parent["cell"] == "x"
    load_heads(again, tmp_path / "c")
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_bytes_do_not_depend_on_earlier_encoding_calls(tiny_dir, tmp_path):
    model, tok, _ = build(tiny_dir, [NLI])
    save_checkpoint(model, tok, tmp_path / "fresh", {"cell": "x"})
    # An encoding call leaves its truncation and padding on the tokenizers backend.
    tok(["a b c d e f g"], ["h i"], truncation=True, max_length=4, padding="max_length")
    left = tok.backend_tokenizer.truncation, tok.backend_tokenizer.padding
    assert left[0]["max_length"] == 4 and left[1]["length"] == 4
    save_checkpoint(model, tok, tmp_path / "used", {"cell": "x"})
    assert_same_checkpoint(tmp_path / "fresh", tmp_path / "used")
    assert (tok.backend_tokenizer.truncation, tok.backend_tokenizer.padding) == left  # untouched
    # Loaded and saved again: nothing carried over from the first process either.
    again, tok2, _ = build(tiny_dir, [NLI], init_checkpoint=tmp_path / "used")
    load_heads(again, tmp_path / "used")
    save_checkpoint(again, tok2, tmp_path / "again", {"cell": "x"})
    assert_same_checkpoint(tmp_path / "fresh", tmp_path / "again")
    assert (tmp_path / "again" / "encoder" / "tokenizer.json").read_bytes() == (
        tiny_dir / "tokenizer.json").read_bytes()


def test_fresh_heads_on_a_checkpoint(tiny_dir, tmp_path):
    model, tok, _ = build(tiny_dir, [NLI])
    save_checkpoint(model, tok, tmp_path / "c", {"cell": "x"})
    target, _, report = build(tiny_dir, [tasks.get("xnli")], init_checkpoint=tmp_path / "c")
    assert report.new == sorted(f"heads.{k}" for k in target.heads.state_dict())
    assert "encoder" in report.encoder_source
    enc_a, enc_b = model.encoder.state_dict(), target.encoder.state_dict()
    assert all(torch.equal(enc_a[k], enc_b[k]) for k in enc_a)


def test_corrupt_or_incomplete_checkpoint_is_never_used(tiny_dir, tmp_path):
    model, tok, _ = build(tiny_dir, [NLI])
    save_checkpoint(model, tok, tmp_path / "c", {"cell": "x"})
    weights = tmp_path / "c" / "heads.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(ModelError, match="corrupt"):
        verify_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "checkpoint.json").unlink()
    with pytest.raises(ModelError, match="incomplete"):
        build(tiny_dir, [NLI], init_checkpoint=tmp_path / "c")


def test_target_phase_in_process_on_real_samples(hub_mirror, tmp_path):
    """The target notebook's calls, without a kernel: MNLI (en) -> XNLI in 15 languages."""
    run = phases.start("target", "target-test", tmp_path / "cell", tmp_path / "ckpt",
                       {"epochs": 1, "batch_size": 2, "learning_rate": 1e-3,
                        "precision": "fp32", "max_length": 64}, str(hub_mirror), {},
                       model="tiny", task="xnli", seed=0)
    target, source = run.task("xnli"), run.task("mnli")
    phases.check_compatible(target, source)
    model, tok, report = run.build_model("tiny", [target])
    result = run.fit(model, tok, target, run.load(source, "train"),
                     run.load(source, "validation"))
    assert result.steps == 2  # 3 rows, batch 2
    assert run.finished_checkpoint() == tmp_path / "ckpt" / "best"
    model, tok = run.load_trained([target], run.checkpoint_dir / "best")
    splits = [run.load(target, "validation", lang) for lang in target.languages]
    records, examples = run.evaluate(model, tok, target, splits)
    doc = run.finish(records, examples)
    assert len(records) == 15 and {r["n"] for r in records} == {1}
    assert {r["value"] for r in records} <= {0.0, 100.0}
    assert len(list((tmp_path / "cell" / "predictions").glob("*.jsonl"))) == 15
    assert doc["provenance"]["data"]["mnli/en/train"]["source"] == "mirror"
    assert doc["provenance"]["data"]["xnli/de/validation"]["rows"] == 1
    with pytest.raises(Exception, match="larger than"):
        run.load(source, "train", size=4)


# --- length-grouped batches -------------------------------------------------------------------

def _ragged_rows(language: str, split: str, n: int, seed: int) -> list[dict]:
    """Like the toy, with 0-40 filler words: lengths vary five-fold, as in real NLI pairs."""
    g = torch.Generator().manual_seed(seed + 7 * (split == "validation"))
    labels = torch.randint(0, 3, (n,), generator=g).tolist()
    fillers = torch.randint(0, 41, (n,), generator=g).tolist()
    return [{"premise": f"the {WORDS[k]} thing" + " so" * f, "hypothesis": "a thing",
             "label": k} for k, f in zip(labels, fillers, strict=True)]


RAGGED = replace(NLI, name="toy-ragged", generator=_ragged_rows)


def test_length_groups_keep_every_example_once_and_pad_less():
    lengths = torch.randint(5, 200, (1000,), generator=torch.Generator().manual_seed(0)).tolist()
    grouped = sampling.BatchPlan(lengths, 16, seed=3)
    plain = sampling.BatchPlan(lengths, 16, seed=3, group_by_length=False)
    for plan in (grouped, plain):
        for epoch in (0, 1):
            batches = plan.epoch(epoch)
            assert len(batches) == len(plan) == 63 and max(map(len, batches)) == 16
            assert sorted(i for b in batches for i in b) == list(range(1000))
    assert grouped.epoch(0) == sampling.BatchPlan(lengths, 16, seed=3).epoch(0)  # seeded
    assert grouped.epoch(0) != grouped.epoch(1)  # reshuffled every epoch
    assert grouped.epoch(0) != sampling.BatchPlan(lengths, 16, seed=4).epoch(0)
    assert max(lengths[i] for i in grouped.epoch(0)[0]) == max(lengths)  # longest batch first
    padded = {name: sampling.padded_fraction(p.epoch(0), lengths)
              for name, p in (("grouped", grouped), ("plain", plain))}
    assert padded["grouped"] < 0.1 < 0.3 < padded["plain"]


def test_fit_reports_the_padding_of_its_batches(tiny_dir, tmp_path):
    train_rows = sources.load(RAGGED, "train", "en", size=128)
    dev_rows = sources.load(RAGGED, "validation", "en", size=32)
    model, tok, _ = build(tiny_dir, [RAGGED])
    hp = HP | {"epochs": 1, "batch_size": 8}
    result = train.fit(model, tok, RAGGED, train_rows, dev_rows, hp, 0, tmp_path / "ckpt",
                       tmp_path / "history.jsonl", {"cell": "test"})
    lengths = train_data.lengths(features(RAGGED, train_rows, tok, hp, train=True))
    grouped = sampling.BatchPlan(lengths, 8, 0)
    plain = sampling.BatchPlan(lengths, 8, 0, group_by_length=False)
    assert result.padded_fraction == pytest.approx(sampling.padded_fraction(grouped.epoch(0),
                                                                            lengths))
    assert result.padded_fraction < 0.5 * sampling.padded_fraction(plain.epoch(0), lengths)
    steps = [h for h in result.history if "loss" in h]
    assert all(0 <= h["padded_fraction"] < 1 for h in steps)


# --- collapse ---------------------------------------------------------------------------------

def test_a_run_stuck_at_the_majority_class_is_flagged(tiny_dir, data, tmp_path):
    model, tok, _ = build(tiny_dir, [NLI])
    with torch.no_grad():  # a head that always says "entailment", and no lr to unlearn it
        model.heads[NLI.name].out.bias.copy_(torch.tensor([50.0, 0.0, 0.0]))
    result = train.fit(model, tok, NLI, *data, HP | {"epochs": 1, "learning_rate": 1e-9}, 0,
                       tmp_path / "ckpt", tmp_path / "history.jsonl", {"cell": "test"})
    assert result.collapsed and result.flags == ["collapsed"]
    majority = selection.majority_share(NLI, data[1])
    assert result.best_score <= majority + selection.COLLAPSE_MARGIN


# --- precision, devices, gradient checkpointing ----------------------------------------------

def test_devices_and_precisions_resolve_or_fail_clearly():
    assert devices.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        devices.resolve_device("tpu")
    with pytest.raises(ConfigError, match="unknown device 'cuda:x'"):
        devices.resolve_device("cuda:x")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'cuda:1': CUDA is not available"):
            devices.resolve_device("cuda:1")
        with pytest.raises(ConfigError, match="'fp16' needs a CUDA device"):
            devices.resolve_precision("fp16", "cpu")
    assert devices.resolve_precision("fp32", "cpu") == "fp32"
    assert devices.resolve_precision("auto", "cpu") in ("bf16", "fp32")


def test_gradient_checkpointing_changes_memory_not_numbers(tiny_dir, data, tmp_path):
    small = (data[0].rows.select(range(64)), data[1].rows.select(range(32)))
    splits = [sources.Split("toy-nli", s, "en", rows, "synthetic", "x", "f")
              for s, rows in zip(("train", "validation"), small, strict=True)]
    runs = {}
    for on in (False, True):
        model, tok, _ = build(tiny_dir, [NLI])
        runs[on] = train.fit(model, tok, NLI, *splits, HP | {"epochs": 1,
                             "gradient_checkpointing": on}, 0, tmp_path / str(on) / "ckpt",
                             tmp_path / str(on) / "history.jsonl", {"cell": "test"})
        assert model.encoder.is_activation_checkpointing == on
    loss = {on: [h["loss"] for h in r.history if "loss" in h] for on, r in runs.items()}
    assert loss[True] == pytest.approx(loss[False], rel=1e-5)


# --- bad input, refused before the first step -------------------------------------------------

@pytest.mark.parametrize("change, error, message", [
    ({"learning_rate": 0.0}, ConfigError, "learning_rate = 0.0 must be > 0"),
    ({"learning_rate": -1e-5}, ConfigError, "learning_rate = -1e-05 must be > 0"),
    ({"batch_size": 0}, ConfigError, "batch_size = 0 must be > 0"),
    ({"device": "gpu"}, ConfigError, "unknown device 'gpu'"),
    ({"precision": "fp8"}, ConfigError, "unknown precision in fit 'fp8'"),
    ({"save_every": -1}, ConfigError, "save_every = -1 must be >= 0"),
])
def test_bad_hyperparameters_are_refused_before_any_work(tiny_dir, data, tmp_path, change,
                                                         error, message):
    model, tok, _ = build(tiny_dir, [NLI])
    with pytest.raises(error, match=message):
        train.fit(model, tok, NLI, *data, {**HP, **change}, 0, tmp_path / "ckpt",
                  tmp_path / "history.jsonl", {"cell": "test"})
    assert not (tmp_path / "ckpt").exists() and not (tmp_path / "history.jsonl").exists()


def test_labels_beyond_the_head_are_refused(tiny_dir, data, tmp_path):
    two = replace(NLI, label_names=("entailment", "not-entailment"))
    model, tok, _ = build(tiny_dir, [two])
    with pytest.raises(DataError, match=r"label id 2 \(\d+ row\(s\)\) is outside the 2 classes"):
        train.fit(model, tok, two, *data, HP, 0, tmp_path / "ckpt", tmp_path / "h.jsonl",
                  {"cell": "test"})
    assert not (tmp_path / "ckpt").exists()


def test_a_checkpoint_of_another_model_is_refused(tiny_dir, tmp_path):
    from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig

    tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    ours = AutoConfig.from_pretrained(str(tiny_dir))
    shape = {k: getattr(ours, k) for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                           "num_attention_heads", "intermediate_size")}
    others = {"bert": BertConfig(**shape),
              "small-vocab": AutoConfig.from_pretrained(str(tiny_dir), vocab_size=999)}
    for name, config in others.items():
        save_checkpoint(XtlModel(AutoModel.from_config(config), [NLI]), tok, tmp_path / name,
                        {"cell": name})
    with pytest.raises(ModelError, match=r"another model.*model_type 'bert' \(expected "
                                         r"'xlm-roberta'\)"):
        build(tiny_dir, [NLI], init_checkpoint=tmp_path / "bert", expect_like=tiny_dir)
    with pytest.raises(ModelError, match=r"vocab_size 999 \(expected \d+\)"):
        build(tiny_dir, [NLI], init_checkpoint=tmp_path / "small-vocab", expect_like=tiny_dir)
    build(tiny_dir, [NLI], init_checkpoint=tmp_path / "small-vocab")  # unchecked, as before
    grown = AutoTokenizer.from_pretrained(str(tiny_dir))
    grown.add_tokens(["zzz-new-token"])
    save_checkpoint(XtlModel(AutoModel.from_config(ours), [NLI]), grown, tmp_path / "tok", {})
    with pytest.raises(ModelError, match=r"another tokenizer.*vocabulary size (\d+) \(expected"):
        build(tiny_dir, [NLI], init_checkpoint=tmp_path / "tok", expect_like=tiny_dir)


def test_train_size_subsets_are_nested_and_independent_of_the_training_seed(tmp_path):
    ids = {}
    for size in (10, 20, 40):
        for seed in (0, 1):
            run = phases.start("target", "t", tmp_path / f"c{size}{seed}", tmp_path / "k",
                               {}, model="tiny", task="synth-nli", seed=seed)
            rows = run.load(tasks.get("synth-nli"), "train", size=size, subsample_seed=3).rows
            ids[size, seed] = list(rows["id"])
    assert ids[10, 0] == ids[10, 1] and ids[40, 0] == ids[40, 1]
    assert set(ids[10, 0]) < set(ids[20, 0]) < set(ids[40, 0])
    other = phases.start("target", "t", tmp_path / "o", tmp_path / "k", {}, model="tiny",
                         task="synth-nli", seed=0)
    assert list(other.load(tasks.get("synth-nli"), "train", size=10, subsample_seed=4)
                .rows["id"]) != ids[10, 0]
