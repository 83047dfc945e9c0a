"""Parameter files are data, names cannot leave the run directory, imports stay off the network."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

from xtl.core.errors import ConfigError
from xtl.core.store import sha256_tree
from xtl.data import tasks
from xtl.grid import config, index, plan, rundir
from xtl.grid import run as runner
from xtl.training import devices, resume

GOOD = "xtl: 1\nmodels: [tiny]\nintermediate: [none, synth-nli]\ntargets: [synth-nli]\n"

# Each of these runs code under an unsafe YAML loader (yaml.load with Loader=yaml.Loader).
CODE_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/apply:subprocess.call [['touch', '{marker}']]",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
]


@pytest.mark.parametrize("tag", CODE_TAGS)
@pytest.mark.parametrize("where", ["name: {value}\n", "hparams:\n  input_prefix: {value}\n"])
def test_experiment_file_tags_that_run_code_are_refused(tmp_path, tag, where):
    marker = tmp_path / "pwned"
    path = tmp_path / "exp.yaml"
    path.write_text(GOOD + where.format(value=tag.format(marker=marker)))
    with pytest.raises(ConfigError, match=r"exp\.yaml:[56]:\d+: malformed YAML: could not "
                                          r"determine a constructor for the tag .*python/"):
        config.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("tag", CODE_TAGS)
def test_papermill_parameter_files_are_read_safely(tmp_path, tag):
    """`papermill NOTEBOOK OUT -f cells/<id>/params.yaml` (the documented rerun) loads data only."""
    from papermill.iorw import read_yaml_file

    marker = tmp_path / "pwned"
    path = tmp_path / "params.yaml"
    path.write_text(f"cell_id: {tag.format(marker=marker)}\n")
    with pytest.raises(yaml.YAMLError):
        read_yaml_file(str(path))
    assert not marker.exists()


def test_written_parameters_round_trip_as_plain_strings(tmp_path):
    """A value that looks like a tag is written quoted into params.yaml and read back as text."""
    nasty = "!!python/object/apply:os.system ['touch x']"
    text = GOOD + f"hparams: {{input_prefix: {json.dumps(nasty)}}}\n"
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    exp = config.load(path)
    built = plan.build(exp)
    cell = built.cells[-1]
    params = runner.notebook_parameters(cell, rundir.RunDir(tmp_path / "out"), built, exp)
    assert params["hparams"]["input_prefix"] == nasty
    dumped = yaml.safe_dump(params, sort_keys=True, allow_unicode=True)
    assert yaml.safe_load(dumped) == params


@pytest.mark.parametrize("name", ["optimizer.bin", "random_states_0.pkl"])
def test_resume_state_is_loaded_without_running_pickled_code(tmp_path, name):
    """accelerate reads the state files with weights_only=True (xtl's progress is JSON): a file
    whose pickle calls a function is refused, the random streams too (accelerate would only
    log that it could not read them)."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    accelerator = devices.make_accelerator("fp32", torch.device("cpu"))
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    accelerator.prepare(model, optimizer)
    store = resume.ResumeStore(tmp_path, {"cell": "x"})
    store.save(3, accelerator, {"step": 3})
    torch.save({"state": Payload()}, store.path / name)
    record = json.loads((store.path / resume.MARKER).read_text())
    (store.path / resume.MARKER).write_text(json.dumps(
        record | {"checksum": sha256_tree(store.path, exclude=(resume.MARKER,))}))
    with pytest.raises(Exception, match="Weights only load failed|Unsupported global"):
        store.load(accelerator)
    assert not marker.exists()


def test_a_multi_gpu_job_file_is_unpickled_only_from_a_private_launch_directory(tmp_path):
    """job.pt is a full pickle: a rank refuses one in a directory others could have written."""
    from xtl.training import launch

    shared = tmp_path / ".launch-shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(launch.TrainingError, match="not a private launch directory"):
        launch.check_private(shared)
    with pytest.raises(launch.TrainingError, match="not a private launch directory"):
        launch.check_private(tmp_path)  # private, but not one `launch` made
    launch.check_private(Path(tempfile.mkdtemp(prefix=".launch-", dir=tmp_path)))


# --- names and paths ---------------------------------------------------------------------------

NASTY = ["../../../../tmp/escaped", "/etc/passwd", "<script>alert(1)</script>", "a\nb"]


def test_cell_paths_stay_inside_the_run_directory(tmp_path):
    """Cell directories are named by id (a hash), whatever the labels hold."""
    path = tmp_path / "exp.yaml"
    path.write_text(GOOD + f"grid: {{input_prefix: {json.dumps(NASTY)}}}\n")
    exp = config.load(path)
    built = plan.build(exp)
    assert len(built.cells) == 3 * len(NASTY)  # a stage, its target and a baseline each
    root = (tmp_path / "out").resolve()
    run_dir = rundir.RunDir(root)
    for cell in built.cells:
        assert re.fullmatch(r"(stage|target|retrieval)-[0-9a-f]{12}", cell.id)
        params = runner.notebook_parameters(cell, run_dir, built, exp)
        for key in ("cell_dir", "checkpoint_dir", "init_checkpoint"):
            if params.get(key):
                assert Path(params[key]).resolve().is_relative_to(root), (key, params[key])


def test_labels_are_escaped_in_the_index(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(GOOD + f"grid: {{input_prefix: {json.dumps(NASTY)}}}\n")
    built = plan.build(config.load(path))
    root = tmp_path / "out"
    root.mkdir()
    (root / "plan.json").write_text(json.dumps(built.to_json()))
    index.write_index(root)
    page = (root / "index.html").read_text()
    assert "<script>alert(1)</script>" not in page
    assert html.escape("input_prefix=<script>alert(1)</script>") in page


def test_every_registered_name_is_one_plain_path_component():
    """Task, language and split names make file names (predictions/<task>.<lang>.<split>.jsonl,
    feature caches): none may hold a separator or '..'."""
    for task in tasks.REGISTRY.values():
        for name in (task.name, *task.languages, *task.splits):
            assert tasks.SAFE_NAME.fullmatch(name) and ".." not in name, (task.name, name)


# --- the network ---------------------------------------------------------------------------

TRAP = r"""
import importlib, json, pkgutil, socket, sys
attempts = []

def refuse(name):
    def call(*args, **kwargs):
        attempts.append(f"{name}{args[1:] if name.startswith('socket.') else args}"[:120])
        raise OSError("network blocked by test_security")
    return call

socket.socket.connect = refuse("socket.connect")
socket.socket.connect_ex = refuse("socket.connect_ex")
socket.socket.sendto = refuse("socket.sendto")
socket.create_connection = refuse("create_connection")
socket.getaddrinfo = refuse("getaddrinfo")
import xtl
skipped = []
for info in pkgutil.walk_packages(xtl.__path__, "xtl."):
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as err:  # an optional extra (ray, submitit) that is absent
        if err.name.split(".")[0] in ("xtl",):
            raise
        skipped.append(info.name)
from xtl import cli
cli.main(["tasks"])
cli.main(["plan", sys.argv[1], "--out", sys.argv[2]])
print("TRAPPED " + json.dumps({"attempts": attempts, "skipped": skipped}))
"""


def test_import_and_planning_reach_no_network(tmp_path):
    """Every xtl module imported, `xtl tasks` and `xtl plan` run, with the Hub NOT switched
    offline (as a user's shell is): no socket connects and no name is looked up."""
    path = tmp_path / "exp.yaml"
    path.write_text(GOOD)
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")}
    proc = subprocess.run([sys.executable, "-c", TRAP, str(path), str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("TRAPPED "))
    found = json.loads(line.removeprefix("TRAPPED "))
    assert found["attempts"] == []
    assert "synth-nli" in proc.stdout and "3 cells" in proc.stdout
