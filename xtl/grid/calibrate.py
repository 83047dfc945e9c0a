"""The short calibration run behind `xtl plan FILE --estimate`.

For every distinct (model, task, speed settings) of a plan: a few optimizer steps on a sample
of the task's own training rows, with the cell's batch size, max length, precision, frozen
embeddings and length grouping (timed best of `ROUNDS`, as a quiet machine would run them), and
an evaluation of a sample of rows it evaluates; per model a load from a checkpoint, a
checkpoint write and a resume snapshot; per machine the per-cell overhead (a kernel started as
the runner starts one, importing what a kernel imports, plus plots and HTML). Training is timed per
padded token and turned into examples/s with the padded tokens per row of the task's batch
plan (length grouping and QA windows included), so a sample's few batches stand for the whole
epoch.

Figures are cached per machine under `$XTL_CACHE/calibration/` (one JSON file named by a hash
of host, CPU/GPU, torch and xtl versions): a second `--estimate` measures only what is new.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import xtl
from xtl.core.errors import ModelError
from xtl.core.hparams import Hparams
from xtl.core.store import atomic_write_json
from xtl.grid.calibrate_probes import EvalProbe, Stepper, TrainProbe
from xtl.grid.estimate import Item, Work
from xtl.grid.throughput import DEFAULT_RUN_S, ModelFigures, Throughput, speed_key
from xtl.model import zoo
from xtl.model.models import build, save_checkpoint
from xtl.training import devices, resume, train
from xtl.training.devices import resolve_device

CALIBRATION_VERSION = 2  # 2: the per-cell overhead of kernels forked from the fork server
ROUNDS = 3  # each figure is measured this often, spread over the calibration; fastest counts
# papermill's notebook writes, HTML rendering (0.2-0.7 s), plots and status files: what a
# cell costs beyond its kernel's start, imports and shutdown (bench/runner_overhead.py).
KERNEL_EXTRA_S = 1.0
KERNEL_IMPORTS = ("import pandas, IPython.display, matplotlib.pyplot; "
                  "from xtl.cells import phases, retrieval; "
                  "from xtl.evaluation import metrics, plots")
# Settings that make a different model object (the rest vary per task on one model).
MODEL_HPARAMS = ("precision", "device", "freeze_embeddings", "gradient_checkpointing")


def machine() -> dict[str, Any]:
    """What the figures depend on besides the cell: host, processors, library versions."""
    import torch

    gpus = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [])
    return {"host": platform.node(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "gpus": gpus,
            "xtl": xtl.__version__, "version": CALIBRATION_VERSION}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_path(info: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()[:16]
    return zoo.cache_dir() / "calibration" / f"{digest}.json"


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) and doc.get("version") == CALIBRATION_VERSION else {}


def calibrate(works: dict[str, Work], mirror: Path | None, raw: Path | None,
              refresh: bool = False,
              log: Callable[[str], None] = print) -> Throughput:
    """Throughput figures for every (model, task, settings) the cells need; cached."""
    info = machine()
    path = cache_path(info)
    cache = {} if refresh else _load_cache(path)
    cache.update(version=CALIBRATION_VERSION, machine=info)
    models = cache.setdefault("models", {})
    needs = _needs(works)
    _require_weights(needs, models)
    started, measured = time.perf_counter(), 0
    if "overhead_s" not in cache:
        cache["overhead_s"] = round(kernel_overhead(), 2)
        measured += 1
    with _quiet():
        measured += _measure(needs, models, path, cache, mirror, raw, log)
    if measured:
        atomic_write_json(path, cache)
        log(f"calibration took {time.perf_counter() - started:.1f} s (load average "
            f"{_load_average()}); figures cached in {path}")
        if _busy():
            log(f"warning: other jobs kept this machine busy (load average {_load_average()} "
                f"on {os.cpu_count()} cores): the figures are slower than a quiet machine's; "
                "run `xtl plan FILE --estimate --recalibrate` again when it is quiet")
    return _throughput(needs, cache, info, path)


def _busy() -> bool:
    """More runnable work than cores (besides this process) over the last minute."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1) + 1  # + this process itself
    except OSError:
        return False


def _to_measure(group: tuple, wanted: dict, models: dict) -> dict:
    """The (speed key, kind) figures of one model group that the cache lacks."""
    entry = models.get(group[0], {"rates": {}})
    return {(key, kind): v for (key, kind), v in wanted.items()
            if kind not in entry["rates"].get(key, {})}


def _require_weights(needs: dict, models: dict) -> None:
    """Before measuring anything: every model with figures still to measure has its weights
    here (cached figures need none). Otherwise one line naming the models and the fixes."""
    lacking = []
    for group, wanted in needs.items():
        entry = models.get(group[0], {})
        if not _to_measure(group, wanted, models) and "load_s" in entry and "snapshot_s" in entry:
            continue
        name = group[1]
        if name not in lacking and zoo.unavailable(zoo.reference(name)) is not None:
            lacking.append(name)
    if lacking:
        names = ", ".join(repr(n) for n in lacking)
        downloads = "; ".join(f"`hf download {n}`" for n in lacking)
        raise ModelError(f"--estimate calibrates on this machine, but the weights of model "
                          f"{names} are not here: run {downloads} (offline: on a machine with "
                          "Hub access, then copy the Hugging Face cache), or pass figures "
                          "measured elsewhere with `xtl plan FILE --throughput FIGURES.yaml` "
                          "(README, 'throughput file')")


def _measure(needs: dict, models: dict, path: Path, cache: dict, mirror: Path | None,
             raw: Path | None, log: Callable[[str], None]) -> int:
    """Measure what the cache lacks, model by model; returns the number of measurements."""
    measured = 0
    for group, wanted in needs.items():
        identity, name, model_hp = group
        entry = models.setdefault(identity, {"rates": {}})
        todo = _to_measure(group, wanted, models)
        if not todo and "load_s" in entry and "snapshot_s" in entry:
            continue
        log(f"calibrating {name} ({', '.join(f'{k}={v}' for k, v in model_hp)}): "
            f"{len(todo)} measurement(s)")
        _measure_group(name, dict(model_hp), todo, entry, mirror, raw, log)
        measured += len(todo) + 1
        cache["measured"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        cache["load_average"] = _load_average()
        atomic_write_json(path, cache)  # each model's figures as soon as they exist
    return measured


def _throughput(needs: dict, cache: dict, info: dict, path: Path) -> Throughput:
    models = cache["models"]
    figures: dict[str, ModelFigures] = {}
    for (identity, name, _), _wanted in needs.items():
        entry = models[identity]
        fig = figures.setdefault(name, ModelFigures(entry["load_s"], entry["checkpoint_s"], {},
                                                    entry.get("snapshot_s")))
        for key, rates in entry["rates"].items():
            fig.rates.setdefault(key, {}).update(rates)
    device = "cuda" if any(dict(hp)["device"] == "cuda" for _, _, hp in needs) else "cpu"
    when = cache.get("measured", "earlier")
    return Throughput(f"calibration on {info['host']} ({when}, load average "
                      f"{cache.get('load_average', '?')}; cached in {path})", device,
                      cache["overhead_s"], DEFAULT_RUN_S, figures)


def _load_average() -> str:
    try:
        return "/".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _needs(works: dict[str, Work]) -> dict[tuple, dict[tuple[str, str], tuple[Item, Hparams]]]:
    """(model identity, name, model settings) -> (speed key, kind) -> (item to sample, hparams).

    An evaluation is sampled from a language other than English where the cells have one
    (most evaluated rows are; dev evaluations are English and use the same figure)."""
    needs: dict[tuple, dict[tuple[str, str], tuple[Item, Hparams]]] = {}
    for work in works.values():
        hp = dict(work.hp)
        hp["device"] = resolve_device(hp["device"]).type
        group = (work.cell.identity["model"], work.model,
                 tuple((k, hp[k]) for k in MODEL_HPARAMS))
        wanted = needs.setdefault(group, {})
        for kind, items in (("train", work.train), ("eval", work.dev + work.eval)):
            for item in items:
                key = (speed_key(item.task, work.hp_of(item)), kind)
                old = wanted.get(key)
                if old is None or (old[0].language == "en" and item.language != "en"):
                    wanted[key] = (item, work.hp_of(item))
    return needs


def kernel_overhead() -> float:
    """Seconds a cell spends outside its notebook's own work: a one-cell notebook with the
    phase notebooks' imports, run as the runner runs a cell (its kernel forked from the fork
    server, core.kernels; the faster of two, as the first also starts the server, once per
    process), plus `KERNEL_EXTRA_S`."""
    import nbformat
    import papermill as pm

    from xtl.core import kernels
    from xtl.grid import run

    times = []
    with tempfile.TemporaryDirectory(prefix="xtl-overhead-") as tmp:
        source = Path(tmp) / "imports.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            KERNEL_IMPORTS)]), source)
        for attempt in range(2):
            started = time.perf_counter()
            with kernels.engine_options(None, run.kernel_preload()) as options:
                pm.execute_notebook(str(source), str(Path(tmp) / f"out-{attempt}.ipynb"),
                                    kernel_name=run.kernel_name(), progress_bar=False,
                                    cwd=tmp, **options)
            times.append(time.perf_counter() - started)
    return min(times) + KERNEL_EXTRA_S


# --- one model: its fixed costs and each task's rates ------------------------------------------

def _measure_group(name: str, model_hp: dict, todo: dict[tuple[str, str], tuple[Item, Hparams]],
                   entry: dict, mirror: Path | None, raw: Path | None,
                   log: Callable[[str], None]) -> None:
    """Fixed costs, then every rate: each probe runs once per round, rounds one after another,
    so the repeats of one figure are spread over the whole calibration and the fastest (the
    one least disturbed by other jobs on the machine) is kept."""
    import torch

    location, _ = zoo.materialize(name)
    heads = list({item.task.name: item.task for item, _ in todo.values()
                  if item.task.format != "retrieval"}.values())
    net, tokenizer = _fixed_costs(location, heads, entry)
    device = devices.resolve_device(model_hp["device"])
    precision = devices.resolve_precision(model_hp["precision"], device)
    if model_hp["freeze_embeddings"]:
        train.freeze_word_embeddings(net)
    if model_hp["gradient_checkpointing"]:
        train._enable_gradient_checkpointing(net)
    net.to(device)
    step = Stepper(net, tokenizer, device, precision) if any(
        kind == "train" for _, kind in todo) else None
    probes = {}
    for (key, kind), (item, hp) in todo.items():
        probes[(key, kind)] = (TrainProbe(step, item, hp, mirror, raw) if kind == "train"
                               else EvalProbe(net, tokenizer, item, hp, precision, mirror, raw))
    best: dict[tuple[str, str], float] = {}
    for _ in range(ROUNDS):
        for key, probe in probes.items():
            best[key] = max(best.get(key, 0.0), probe())
            if device.type == "cuda":
                torch.cuda.empty_cache()
    entry["snapshot_s"] = round(_snapshot_seconds(step), 3) if step else entry["checkpoint_s"]
    for (key, kind), rate in best.items():
        item = todo[(key, kind)][0]
        entry["rates"].setdefault(key, {})[kind] = round(rate, 3)
        log(f"  {kind} {item.task.name} ({item.data.name}/{item.language}): {rate:,.1f} "
            "examples/s")


def _fixed_costs(location: Path, heads: list, entry: dict) -> tuple[Any, Any]:
    """A checkpoint write (the mean of `ROUNDS`: disk writes and fsync vary more than they
    queue behind other jobs) and a load from a checkpoint (checksum verified, as targets and
    evaluations load); returns the loaded model."""
    net, tokenizer, _ = build(location, heads, seed=0)
    with tempfile.TemporaryDirectory(prefix="xtl-calibrate-") as tmp:
        writes = []
        for i in range(ROUNDS):
            t0 = time.perf_counter()
            save_checkpoint(net, tokenizer, Path(tmp) / f"c{i}", {"cell": "calibration"})
            writes.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        net, tokenizer, _ = build(location, heads, Path(tmp) / "c0", seed=0)
        entry["load_s"] = round(time.perf_counter() - t0, 3)
        entry["checkpoint_s"] = round(sum(writes) / len(writes), 3)
    return net, tokenizer


def _snapshot_seconds(step: Stepper) -> float:
    """A resume snapshot as `xtl.training.train` writes one at each dev evaluation: accelerate's
    state (model, optimizer with the state the probes' steps gave it, scheduler, random streams)
    and the progress file, checksummed (mean of 2)."""
    times = []
    with tempfile.TemporaryDirectory(prefix="xtl-calibrate-") as tmp:
        store = resume.ResumeStore(Path(tmp), {"calibration": True})
        for i in range(2):
            t0 = time.perf_counter()
            store.save(i + 1, step.accelerator, {"step": i + 1})
            times.append(time.perf_counter() - t0)
    return sum(times) / len(times)


@contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars from datasets and transformers while measuring (restored after)."""
    import datasets
    from transformers.utils import logging as hf_logging

    was = datasets.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was[0]:
            datasets.enable_progress_bars()
        if was[1]:
            hf_logging.enable_progress_bar()
