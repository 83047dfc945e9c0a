"""Step-level resume: a run killed anywhere continues to the same bits as an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import assert_same_checkpoint
from safetensors.torch import load_file

from xtl.core import atomicdir, faults
from xtl.core.errors import ConfigError, ModelError
from xtl.core.hparams import Hparams
from xtl.data import sources, tasks
from xtl.model.models import build, verify_checkpoint
from xtl.training import devices, resume, train

TASK = tasks.get("synth-nli")
HP = Hparams({"learning_rate": 2e-3, "epochs": 2, "batch_size": 16, "max_length": 64,
                        "precision": "fp32", "save_every": 3})


pytestmark = pytest.mark.usefixtures("one_thread")


class Crash(Exception):
    """Stands in for SIGKILL in-process, so the fast tier needs no subprocess."""


@pytest.fixture(scope="module")
def data():
    return (sources.load(TASK, "train", "en", size=96),
            sources.load(TASK, "validation", "en", size=48))


@pytest.fixture
def crash_here(monkeypatch):
    """`XTL_FAULT` raising `Crash` instead of killing pytest; returns a setter for the spec."""
    def kill() -> None:
        raise Crash

    monkeypatch.setattr(faults, "_kill", kill)
    monkeypatch.setattr(faults, "_seen", {})

    def arm(spec: str | None) -> None:
        faults._seen.clear()
        if spec:
            monkeypatch.setenv(faults.ENV, spec)
        else:
            monkeypatch.delenv(faults.ENV, raising=False)
    return arm


def _fit(tiny_dir, data, out: Path, **hp) -> train.FitResult:
    model, tok, _ = build(tiny_dir, [TASK], seed=0)
    return train.fit(model, tok, TASK, *data, HP | hp, 0, out / "ckpt", out / "history.jsonl",
                     {"cell": "resume-test"})


def _losses(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "examples_per_s"} for h in history]


def _tensors(ckpt: Path) -> dict[str, torch.Tensor]:
    return load_file(ckpt / "encoder" / "model.safetensors") | {
        f"heads.{k}": v for k, v in load_file(ckpt / "heads.safetensors").items()}


def assert_same_run(a: Path, b: Path) -> None:
    """Same losses and scores in history.jsonl, and byte-identical best and last checkpoints."""
    ha = [json.loads(x) for x in (a / "history.jsonl").read_text().splitlines()]
    hb = [json.loads(x) for x in (b / "history.jsonl").read_text().splitlines()]
    assert _losses(ha) == _losses(hb)
    assert len({h["step"] for h in hb if "loss" in h}) == len([h for h in hb if "loss" in h])
    for which in ("best", "last"):
        ta, tb = _tensors(a / "ckpt" / which), _tensors(b / "ckpt" / which)
        assert ta.keys() == tb.keys()
        assert all(torch.equal(ta[k], tb[k]) for k in ta), which
        assert verify_checkpoint(a / "ckpt" / which)["step"] == verify_checkpoint(
            b / "ckpt" / which)["step"]
        assert_same_checkpoint(a / "ckpt" / which, b / "ckpt" / which)


def test_crash_then_rerun_is_bit_identical(tiny_dir, data, tmp_path, crash_here, monkeypatch):
    # The reference tokenises (a cold feature cache); the crashed run and its rerun read the cache.
    monkeypatch.setenv("XTL_CACHE", str(tmp_path / "cache"))
    reference = _fit(tiny_dir, data, tmp_path / "ref")
    crash_here("train_step:8")
    with pytest.raises(Crash):
        _fit(tiny_dir, data, tmp_path / "run")
    assert resume.pending(tmp_path / "run" / "ckpt")
    saved = json.loads((tmp_path / "run" / "ckpt" / "resume" / "resume.json").read_text())
    assert saved["step"] == 6  # save_every 3: the last state before step 8
    crash_here(None)
    again = _fit(tiny_dir, data, tmp_path / "run")
    assert again.resumed_from == 6 and again.steps == reference.steps == 12
    assert _losses(again.history) == _losses(reference.history)
    assert again.best_score == reference.best_score
    assert again.padded_fraction == reference.padded_fraction
    assert_same_run(tmp_path / "ref", tmp_path / "run")
    assert not resume.pending(tmp_path / "run" / "ckpt")  # deleted once complete
    assert not (tmp_path / "run" / "ckpt" / "resume").exists()


def test_changed_settings_refuse_to_resume(tiny_dir, data, tmp_path, crash_here):
    crash_here("train_step:4")
    with pytest.raises(Crash):
        _fit(tiny_dir, data, tmp_path)
    crash_here(None)
    with pytest.raises(ConfigError, match=r"hparams.learning_rate: saved 0.002, now 0.001"):
        _fit(tiny_dir, data, tmp_path, learning_rate=1e-3)
    # The cadence of saving changes no result: a rerun may change it.
    assert _fit(tiny_dir, data, tmp_path, save_every=5).resumed_from == 3


def test_crash_before_the_first_save_marks_the_fit_started(tiny_dir, data, tmp_path,
                                                           crash_here):
    crash_here("train_step:1")
    with pytest.raises(Crash):
        _fit(tiny_dir, data, tmp_path, save_every=0)
    assert resume.pending(tmp_path / "ckpt") and not (tmp_path / "ckpt" / "best").exists()
    crash_here(None)
    assert _fit(tiny_dir, data, tmp_path, save_every=0).resumed_from == 0


def test_death_inside_a_checkpoint_write_keeps_the_previous_one(tiny_dir, data, tmp_path,
                                                                crash_here):
    # Checkpoint writes: resume at step 3 (1), best at step 6 (2): dies inside the second.
    crash_here("checkpoint_write:2")
    with pytest.raises(Crash):
        _fit(tiny_dir, data, tmp_path)
    record = json.loads((tmp_path / "ckpt" / "resume" / "resume.json").read_text())
    assert record["step"] == 3
    crash_here(None)
    assert _fit(tiny_dir, data, tmp_path).resumed_from == 3


@pytest.mark.parametrize("damage", ["flip a byte", "delete"])
@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.bin", "random_states_0.pkl",
                                  resume.PROGRESS])
def test_a_damaged_state_file_is_refused_never_loaded(tmp_path, name, damage):
    """Every file beside the marker is under its checksum: accelerate's and xtl's alike."""
    accelerator = devices.make_accelerator("fp32", torch.device("cpu"))
    model = torch.nn.Linear(2, 2)
    accelerator.prepare(model, torch.optim.AdamW(model.parameters()))
    store = resume.ResumeStore(tmp_path, {"cell": "x"})
    store.save(3, accelerator, {"step": 3})
    path = store.path / name
    if damage == "delete":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1
        path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"is corrupt \(its files are missing or do not match "
                       r"their checksum\); delete it to start over"):
        store.load(accelerator)


def test_a_resume_state_of_an_older_xtl_says_delete_it(tmp_path):
    """Format 2 (one state.pt of xtl's own) is not read by this xtl: the cell's training restarts
    once the directory is deleted (docs/contracts.md, section 3)."""
    store = resume.ResumeStore(tmp_path, {"cell": "x"})
    store.save(0)
    record = json.loads((store.path / resume.MARKER).read_text())
    (store.path / resume.MARKER).write_text(json.dumps(record | {"format": 2, "step": 6}))
    (store.path / "state.pt").write_bytes(b"format 2")
    with pytest.raises(ModelError, match=r"has format 2; this xtl reads 3\. Delete it to start "
                       "over"):
        store.load(None)


def test_a_swap_interrupted_between_its_renames_is_recovered(tmp_path):
    dest = tmp_path / "best"
    atomicdir.replace_dir(dest, lambda tmp: (tmp / "f").write_text("old"))
    dest.rename(tmp_path / ".best.old")  # the state a kill between the two renames leaves
    atomicdir.replace_dir(tmp_path / "other", lambda tmp: None)
    assert not dest.exists()
    atomicdir.recover(dest)
    assert (dest / "f").read_text() == "old" and not (tmp_path / ".best.old").exists()
    (tmp_path / ".best.tmp-x").mkdir()  # a temp dir from a crashed write
    atomicdir.replace_dir(dest, lambda tmp: (tmp / "f").write_text("new"))
    assert (dest / "f").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "other"]


# --- real processes, real kills (slow) --------------------------------------------------------

CHILD = """
import json, sys
from pathlib import Path
from xtl.data import sources, tasks
from xtl.training import train
from xtl.core.hparams import HPARAM_DEFAULTS, Hparams
from xtl.model.models import build
tiny, out, hp = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
task = tasks.get("synth-nli")
data = sources.load(task, "train", "en", size=96), sources.load(task, "validation", "en", size=48)
model, tok, _ = build(tiny, [task], seed=0)
r = train.fit(model, tok, task, *data, HPARAM_DEFAULTS | hp, 0, out / "ckpt",
              out / "history.jsonl", {"cell": "resume-test"})
print(json.dumps({"steps": r.steps, "resumed_from": r.resumed_from}))
"""


def _child(tiny_dir: Path, out: Path, hp: dict, fault: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    env["XTL_CACHE"] = str(out.parent / "cache")  # the first child tokenises, the others read
    if fault:
        env[faults.ENV] = fault
    return subprocess.run([sys.executable, "-c", CHILD, str(tiny_dir), str(out), json.dumps(hp)],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("fault, resumed_from", [("train_step:7", 4), ("checkpoint_write:3", 4)])
def test_killed_process_resumes_bit_identical(tiny_dir, tmp_path, fault, resumed_from):
    """SIGKILL at a step, or inside a checkpoint write; bf16, length groups, accumulation."""
    hp = {**{k: v for k, v in HP.items() if k != "save_every"}, "save_every": 4,
          "precision": "bf16", "grad_accum": 2, "batch_size": 8, "group_by_length": True}
    ref = _child(tiny_dir, tmp_path / "ref", hp)
    assert ref.returncode == 0, ref.stderr[-2000:]
    killed = _child(tiny_dir, tmp_path / "run", hp, fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    ckpt = tmp_path / "run" / "ckpt"
    assert verify_checkpoint(ckpt / "best")["step"] == 6  # the dev evaluation at epoch end
    assert json.loads((ckpt / "resume" / "resume.json").read_text())["step"] == resumed_from
    if fault.startswith("checkpoint_write"):  # died inside the step-8 write: its temp is left
        assert list(ckpt.glob(".resume.tmp-*"))
    rerun = _child(tiny_dir, tmp_path / "run", hp)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    result = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert result == {"steps": 12, "resumed_from": resumed_from}
    assert_same_run(tmp_path / "ref", tmp_path / "run")
