"""What a grid costs before it runs (`xtl plan FILE --estimate`).

The work is counted from the plan alone: per cell, the training examples (rows x epochs of each
task it trains, train sizes and per-task epochs respected), the rows of each dev evaluation
and how many there are, the rows it evaluates per language, its checkpoint writes and model
loads. Seconds come from throughput figures: examples/s per model and task (or format) for
training and evaluation, a model load, a checkpoint write and a fixed per-cell overhead (kernel
start, re-imports, plots, HTML). The figures are either measured by a short calibration run
(`xtl.grid.calibrate`) or written by the user in a YAML/JSON file (`xtl.grid.throughput`). Pure
arithmetic here: nothing imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xtl.core.hparams import Hparams
from xtl.core.tables import plural
from xtl.data import sources
from xtl.data.tasks import Task
from xtl.grid.config import Experiment
from xtl.grid.config import resolve_task as _task
from xtl.grid.plan import Cell, Plan, hparams_of, task_hparams_of
from xtl.grid.throughput import Throughput
from xtl.training.sampling import mixture

# --- the work of each cell ---------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """Rows one head runs over: `task`'s head on rows of `data`/`split`/`language`."""

    task: Task
    data: Task
    split: str
    language: str
    rows: float | None  # None: unknown until the split is downloaded


@dataclass
class Work:
    """What one cell does, counted from the plan: the numbers the seconds are made of."""

    cell: Cell
    model: str
    hp: Hparams
    train: list[Item] = field(default_factory=list)  # rows = examples (rows x epochs)
    dev: list[Item] = field(default_factory=list)  # rows of ONE dev evaluation
    dev_evals: int = 0
    checkpoint_writes: int = 0  # `best` (at most once per dev evaluation) and `last`
    snapshots: int = 0  # resume states (model, optimizer, RNGs), one per dev evaluation
    model_loads: int = 1
    eval: list[Item] = field(default_factory=list)  # the final evaluation, per language
    task_hps: dict[str, Hparams] = field(default_factory=dict)  # a multi-task stage: per task

    def hp_of(self, item: Item) -> Hparams:
        """The hyperparameters `item`'s head runs with (its task's own in a multi-task stage)."""
        return self.task_hps.get(item.task.name, self.hp)

    @property
    def unknown(self) -> list[str]:
        return [f"{i.data.name}/{i.language}/{i.split}"
                for i in self.train + self.dev + self.eval if i.rows is None]


RowCounter = Callable[[Task, str, str], "int | None"]


def counter(mirror: Path | None, raw: Path | None = None) -> RowCounter:
    """Row counts from generator sizes or Parquet footers, each asked once; with `raw`, splits
    read from raw release files (local) are read and counted."""
    seen: dict[tuple[str, str, str], int | None] = {}

    def count(task: Task, split: str, language: str) -> int | None:
        key = (task.name, split, language)
        if key not in seen:
            seen[key] = sources.count_rows(task, split, language, mirror)
            if seen[key] is None and raw is not None and task.from_raw(language):
                seen[key] = len(sources.load(task, split, language, mirror, raw=raw).rows)
        return seen[key]

    return count


def cell_work(cell: Cell, exp: Experiment, count: RowCounter) -> Work:
    """The work of one cell (see `Work`); `count(task, split, language)` gives row counts."""
    work = Work(cell, cell.axes["model"], hparams_of(cell))
    if cell.kind == "stage":
        names = [t if isinstance(t, str) else t["name"] for t in cell.identity["tasks"]]
        pairs = [(t, t) for t in (_task(n, exp.declared) for n in names)]
        if len(names) > 1:
            work.task_hps = {n: task_hparams_of(cell, n) for n in names}
    elif cell.kind == "target":
        target = _task(cell.axes["target"], exp.declared)
        pairs = [(target, _task(target.train_task or target.name, exp.declared))]
    else:
        pairs = []
    if pairs:
        _training(work, pairs, cell.identity.get("train_size"), count)
        work.model_loads = 2  # the fresh model, then the best checkpoint to evaluate
    if cell.kind == "stage":
        work.dev_evals += 1  # the notebook scores the best checkpoint on dev once more
    elif cell.kind == "transferability":
        work.eval = transferability_items(cell, exp, count)
    else:
        task = _task(cell.axes["target"], exp.declared)
        split = cell.evaluation["split"]
        work.eval = [Item(task, task, split, lang, count(task, split, lang))
                     for lang in cell.evaluation["languages"]]
    return work


def transferability_items(cell: Cell, exp: Experiment, count: RowCounter) -> list[Item]:
    """What a transferability cell embeds (one forward pass per row, like an evaluation):
    its English training sample, then each language's validation sample."""
    settings = cell.identity["estimate"]
    target = _task(cell.axes["target"], exp.declared)
    data = _task(target.train_task or target.name, exp.declared)

    def capped(task: Task, split: str, lang: str, cap: int) -> int | None:
        n = count(task, split, lang)
        return None if n is None else min(n, cap)

    return [Item(target, data, "train", data.train_language,
                 capped(data, "train", data.train_language, settings["rows"]))] + [
        Item(target, target, "validation", lang,
             capped(target, "validation", lang, settings["language_rows"]))
        for lang in cell.evaluation["languages"]]


def _training(work: Work, pairs: list[tuple[Task, Task]], size: int | None,
              count: RowCounter) -> None:
    """Examples, dev evaluations and checkpoint writes of a fit (`xtl.training.train.fit_tasks`)."""
    hp = work.hp
    rows = [size if size is not None else count(data, "train", data.train_language)
            for _, data in pairs]
    work.dev = [Item(head, data, "validation", data.train_language,
                     _first(count(data, "validation", data.train_language), hp.dev_subset))
                for head, data in pairs]
    known = [(pair, n) for pair, n in zip(pairs, rows, strict=True) if n is not None]
    if not known:
        work.train = [Item(h, d, "train", d.train_language, None) for h, d in pairs]
        return
    # Tasks of unknown size are left out of the mixture (and counted as 0 rows).
    epochs = [work.task_hps.get(h.name, hp).epochs for (h, _), _ in known]
    mix = mixture([h.name for (h, _), _ in known], [n for _, n in known],
                  [h.format == "mlm" for (h, _), _ in known], hp, epochs)
    per_step = hp.batch_size * hp.grad_accum
    # One task: its rows x epochs. Several: each task's expected share of the steps' examples.
    shares = iter([n * epochs[0] for _, n in known] if len(known) == 1 else
                  [p * mix.total * per_step for p in mix.probabilities])
    work.train = [Item(h, d, "train", d.train_language, None if n is None else next(shares))
                  for (h, d), n in zip(pairs, rows, strict=True)]
    every = hp.eval_every or mix.steps_per_epoch
    evals = mix.total // every + (mix.total % every != 0)  # and one at the very end
    work.dev_evals = evals
    work.snapshots = mix.total // hp.save_every if hp.save_every else evals
    work.checkpoint_writes = evals + 1  # `best` at most at every evaluation (an upper bound)


def _first(rows: int | None, subset: int) -> int | None:
    """Dev rows one selection evaluation scores (`dev_subset`: the first N; 0: all)."""
    return rows if rows is None or not subset else min(rows, subset)


def plan_work(plan: Plan, exp: Experiment, mirror: Path | None,
              raw: Path | None = None) -> dict[str, Work]:
    count = counter(mirror, raw)
    return {c.id: cell_work(c, exp, count) for c in plan.cells}


# --- seconds -----------------------------------------------------------------------------------

PARTS = ("fixed", "train", "dev", "eval")


def cell_seconds(work: Work, tp: Throughput) -> dict[str, float]:
    """Seconds by part: fixed (overhead, loads, checkpoint writes), train, dev, eval.

    Unknown row counts count as 0 (the caller reports them)."""
    fig = tp.model(work.model)

    def spend(items: list[Item], kind: str) -> float:
        return sum((i.rows or 0) / tp.rate(work.model, i.task, kind, work.hp_of(i))
                   for i in items)

    return {"fixed": tp.overhead_s + work.model_loads * fig.load_s
            + work.checkpoint_writes * fig.checkpoint_s + work.snapshots * fig.snapshot,
            "train": spend(work.train, "train"),
            "dev": work.dev_evals * spend(work.dev, "eval"),
            "eval": spend(work.eval, "eval")}


def wall_time(plan: Plan, seconds: dict[str, float], slots: int = 1) -> float:
    """Makespan of the cells on `slots` parallel workers: each starts once its parent is done
    and a worker is free, in plan order (what `xtl run`'s executors do)."""
    free = [0.0] * max(1, slots)
    done: dict[str, float] = {}
    for cell in plan.cells:
        k = min(range(len(free)), key=free.__getitem__)
        start = max(free[k], done.get(cell.parent, 0.0) if cell.parent else 0.0)
        done[cell.id] = free[k] = start + seconds.get(cell.id, 0.0)
    return max(done.values(), default=0.0)


@dataclass
class Reuse:
    stages: int  # stage cells (each trained once)
    trainings_without: int  # stage trainings if every dependant trained its chain itself
    seconds_with: float
    seconds_without: float

    @property
    def saved(self) -> float:
        return self.seconds_without - self.seconds_with


def reuse(plan: Plan, seconds: dict[str, float]) -> Reuse:
    """Checkpoint reuse: each stage trains once for all the cells that start from it; without
    it, every target (and retrieval) cell would train its whole chain of stages itself."""
    by_id = plan.by_id()
    ends = [c for c in plan.cells if c.kind not in ("stage", "transferability")]
    chains = []
    for cell in ends:
        chain, parent = [], cell.parent
        while parent:
            chain.append(parent)
            parent = by_id[parent].parent
        chains.append(chain)
    stages = [c.id for c in plan.cells if c.kind == "stage"]
    return Reuse(len(stages), sum(map(len, chains)),
                 sum(seconds[s] for s in stages),
                 sum(seconds[s] for chain in chains for s in chain))


# --- the report --------------------------------------------------------------------------------

@dataclass
class Estimate:
    plan: Plan
    works: dict[str, Work]
    parts: dict[str, dict[str, float]]
    throughput: Throughput
    pending: set[str]  # cells not done yet
    gpus_per_cell: int = 1
    slots: int = 1
    # CPU cells at a time that share the cores (the local executor's cpu_cells): each runs its
    # compute on 1/shared of the threads the calibration had; the fixed part does not shrink
    shared: int = 1

    @property
    def seconds(self) -> dict[str, float]:
        return {cid: sum(p.values()) for cid, p in self.parts.items()}

    def total(self, only: set[str] | None = None) -> float:
        return sum(s for cid, s in self.seconds.items() if only is None or cid in only)


def estimate(plan: Plan, works: dict[str, Work], tp: Throughput, pending: set[str] | None = None,
             gpus_per_cell: int = 1, slots: int = 1, shared: int = 1) -> Estimate:
    parts = {cid: cell_seconds(w, tp) for cid, w in works.items()}
    return Estimate(plan, works, parts, tp, set(works) if pending is None else pending,
                    gpus_per_cell, slots, shared if tp.device == "cpu" else 1)


def slowed(parts: dict[str, dict[str, float]], shared: int) -> dict[str, float]:
    """Each cell's seconds when `shared` cells split the CPU cores: compute is `shared` times
    slower, the fixed part (mostly single-threaded start-up) is not."""
    return {cid: sum(v if k == "fixed" else v * shared for k, v in p.items())
            for cid, p in parts.items()}


def duration(seconds: float) -> str:
    """'45 s', '3 min 05 s', '2 h 10 min'."""
    s = int(seconds + 0.5)  # half up: 108.5 s is "1 min 49 s"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def cell_line(est: Estimate, cell_id: str) -> str:
    """'about 1 min 52 s (train 95 s, dev 3 s, eval 0 s, fixed 14 s)', for the plan's tree."""
    p = est.parts[cell_id]
    unknown_rows = est.works[cell_id].unknown
    text = (f"about {duration(sum(p.values()))} ("
            + ", ".join(f"{k} {duration(p[k])}" for k in PARTS if p[k] or k == "fixed") + ")")
    if unknown_rows:
        text += f"; rows of {', '.join(unknown_rows)} unknown (counted as 0)"
    return text


def summary(est: Estimate) -> str:
    """The totals: cell time, wall time, GPU hours, and what checkpoint reuse saves."""
    seconds, tp = est.seconds, est.throughput
    grid = sum(seconds.values())
    left = est.total(est.pending)
    run_s = tp.run_s if est.pending else 0.0
    lines = [f"estimate from {tp.source} (device {tp.device}):"]
    by_part = {k: sum(p[k] for p in est.parts.values()) for k in PARTS}
    lines.append(f"  whole grid: {plural(len(seconds), 'cell')}, {duration(grid)} of cell time ("
                 + ", ".join(f"{k} {duration(v)}" for k, v in by_part.items()) + ")")
    if len(est.pending) != len(seconds):
        lines.append(f"  still to run: {plural(len(est.pending), 'cell')}, {duration(left)}")
    pending_plan = Plan(est.plan.experiment, [c for c in est.plan.cells if c.id in est.pending],
                        est.plan.mirror)
    wall = wall_time(pending_plan, slowed(est.parts, est.shared), est.slots) + run_s
    sharing = f", each on 1/{est.shared} of the cores" if est.shared > 1 else ""
    lines.append(f"  wall time of `xtl run`: about {duration(wall)} ({est.slots} cell(s) at a "
                 f"time{sharing}, + {duration(run_s)} planning and report)")
    if tp.device == "cuda":
        lines.append(f"  GPU hours: {left * est.gpus_per_cell / 3600:.2f} "
                     f"({est.gpus_per_cell} GPU(s) per cell)")
    else:
        lines.append("  GPU hours: none (the figures are for cells running on the CPU)")
    r = reuse(est.plan, seconds)
    if r.stages:
        share = r.saved / (grid + r.saved) if grid + r.saved else 0.0
        lines.append(f"  checkpoint reuse: {r.stages} stage training{'s' * (r.stages != 1)} "
                     f"instead of "
                     f"{r.trainings_without} (one chain per target); saves "
                     f"{duration(r.saved)} ({share:.0%} of the grid without reuse, "
                     f"{duration(grid + r.saved)})")
    unknown_cells = sum(bool(w.unknown) for w in est.works.values())
    if unknown_cells:
        lines.append(f"  {unknown_cells} cell(s) read splits of unknown size (counted as 0): "
                     "fill a mirror (`xtl data download`) for their row counts")
    return "\n".join(lines)
