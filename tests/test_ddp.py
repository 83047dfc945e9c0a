"""DDP inside a cell: 2 CPU processes (gloo, started with torchrun by `fit`) train like one.

Same global batch, same sampler draws: the losses, dev scores and weights of a 2-process run
match a 1-process run up to float summation order. Dropout is off in both, so the only
difference is where the gradient sums happen.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import assert_same_checkpoint
from safetensors.torch import load_file
from test_multitask import HP, NLI, SIZE, _split

from xtl.core import faults
from xtl.model.models import build, verify_checkpoint
from xtl.training import train
from xtl.training.launch import TrainingError

# two fresh processes importing torch: ~30 s on 2 cores
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def no_dropout_tiny(tiny_dir, tmp_path_factory):
    """The tiny preset with dropout 0, so one process and two draw no different masks."""
    path = tmp_path_factory.mktemp("tiny-no-dropout")
    for f in tiny_dir.iterdir():
        shutil.copy(f, path / f.name)
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return path


def _run(location, out, processes: int):
    model, tok, _ = build(location, [NLI, SIZE], seed=0)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    # 99 and 45 rows in batches of 16: the last batches (3 and 13 rows) split unevenly
    trains = [_split(NLI, "train", 99), _split(SIZE, "train", 45)]
    devs = [_split(NLI, "validation", 32), _split(SIZE, "validation", 16)]
    hp = HP | {"epochs": 2, "grad_accum": 2, "batch_size": 8, "save_every": 5}
    result = train.fit_tasks(model, tok, [NLI, SIZE], trains, devs, hp, 0, out / "ckpt",
                             out / "history.jsonl", {"cell": "ddp-test"}, processes=processes)
    return model, result


def test_two_gloo_processes_match_one(no_dropout_tiny, tmp_path):
    one_model, one = _run(no_dropout_tiny, tmp_path / "one", 1)
    two_model, two = _run(no_dropout_tiny, tmp_path / "two", 2)
    assert two.processes == 2 and one.processes == 1
    assert two.steps == one.steps == 2 * (7 + 3) and two.task_steps == one.task_steps
    loss = {name: [h["loss"] for h in r.history if "loss" in h] for name, r in
            (("one", one), ("two", two))}
    assert loss["two"] == pytest.approx(loss["one"], rel=1e-4, abs=1e-6)
    assert [h.get("task") for h in two.history] == [h.get("task") for h in one.history]
    dev = {name: [h["dev_scores"] for h in r.history if "dev_scores" in h]
           for name, r in (("one", one), ("two", two))}
    assert dev["two"] == dev["one"] and two.best_step == one.best_step
    a, b = one_model.state_dict(), two_model.state_dict()  # `fit` loaded the ranks' weights
    # Attention key biases have an exactly-zero gradient (softmax ignores a shift shared by all
    # keys): what they get is float noise, which AdamW scales up to lr-sized steps. Skip them.
    compared = [k for k in a if not k.endswith("attention.self.key.bias")]
    assert len(compared) == len(a) - 2
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in compared)
    # Only the main rank wrote: one history line per entry, checkpoints, no launch leftovers.
    lines = (tmp_path / "two" / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [h["step"] for h in two.history]
    assert verify_checkpoint(tmp_path / "two" / "ckpt" / "last")["step"] == two.steps
    saved = load_file(tmp_path / "two" / "ckpt" / "last" / "encoder" / "model.safetensors")
    assert all(torch.equal(saved[k], b[f"encoder.{k}"]) for k in saved)
    assert not list((tmp_path / "two" / "ckpt").glob(".launch*"))
    assert not (tmp_path / "two" / "ckpt" / "resume").exists()


def test_two_processes_killed_and_resumed_match_an_uninterrupted_pair(tiny_dir, tmp_path,
                                                                      monkeypatch):
    """Dropout on: each rank's random streams come back from its own file of accelerate's
    (random_states_<rank>.pkl), written into the main rank's temp directory; the resumed pair
    ends in the same losses and byte-identical checkpoints."""
    def run(out):
        model, tok, _ = build(tiny_dir, [NLI, SIZE], seed=0)
        trains = [_split(NLI, "train", 99), _split(SIZE, "train", 45)]
        devs = [_split(NLI, "validation", 32), _split(SIZE, "validation", 16)]
        hp = HP | {"epochs": 1, "grad_accum": 2, "batch_size": 8, "save_every": 4}
        return train.fit_tasks(model, tok, [NLI, SIZE], trains, devs, hp, 0, out / "ckpt",
                               out / "history.jsonl", {"cell": "ddp-resume"}, processes=2)

    monkeypatch.setenv("XTL_CACHE", str(tmp_path / "cache"))
    reference = run(tmp_path / "ref")
    monkeypatch.setenv(faults.ENV, "train_step:6")  # both ranks SIGKILL themselves
    with pytest.raises(TrainingError):
        run(tmp_path / "run")
    state = tmp_path / "run" / "ckpt" / "resume"
    assert json.loads((state / "resume.json").read_text())["step"] == 4
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in state.iterdir()}
    monkeypatch.delenv(faults.ENV)
    again = run(tmp_path / "run")
    assert again.resumed_from == 4 and again.steps == reference.steps == 10
    strip = [{k: v for k, v in h.items() if k != "examples_per_s"} for h in reference.history]
    assert [{k: v for k, v in h.items() if k != "examples_per_s"}
            for h in again.history] == strip
    for which in ("best", "last"):
        assert_same_checkpoint(tmp_path / "ref" / "ckpt" / which,
                               tmp_path / "run" / "ckpt" / which)
