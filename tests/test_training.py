"""Training and checkpoints on the tiny preset: numbers, not just "it ran"."""

from __future__ import annotations

import json

import pytest
import torch

from xtl import phases, sources, tasks, train
from xtl.config import HPARAM_DEFAULTS
from xtl.errors import ModelError
from xtl.models import build, load_heads, save_checkpoint, verify_checkpoint

HP = HPARAM_DEFAULTS | {"learning_rate": 2e-3, "epochs": 3, "batch_size": 32, "max_length": 64,
                        "precision": "fp32"}
WORDS = ("red", "blue", "green")


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
