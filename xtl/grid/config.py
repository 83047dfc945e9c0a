"""The experiment file (contract version 1): keys, types, defaults and validation.

See docs/contracts.md for the prose; this module is its executable form. Everything is checked
here, before any data is read or any model is trained.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from xtl.core import tracking
from xtl.core.errors import ConfigError, unknown
from xtl.core.hparams import SPLITS, check_hparam
from xtl.data import mlm as _mlm  # noqa: F401  (registers the `mlm` format and task)
from xtl.data import tasks as registry
from xtl.data.tasks import resolve as resolve_task
from xtl.evaluation.transferability import transferability_settings
from xtl.grid import executors
from xtl.grid.precedence import canonical, task_overrides

CONTRACT_VERSION = 1


TOP_LEVEL: dict[str, Any] = {
    "xtl": CONTRACT_VERSION,
    "name": None,
    "out": None,
    "mirror": None,
    "raw_dir": None,
    "models": None,
    "intermediate": ["none"],
    "targets": None,
    "seeds": [0],
    "train_sizes": [None],
    "subsample_seed": 0,
    "intermediate_seed": None,
    "hparams": {},
    "tasks": {},
    "grid": {},
    "eval_split": "validation",
    "eval_languages": None,
    "executor": "local",  # local | ray | slurm, or {kind: ..., options} (xtl.grid.executors)
    "keep_checkpoints": "best",
    "gpus_per_cell": 1,  # processes (GPUs) training one cell together (through accelerate)
    "distributed": "ddp",  # with gpus_per_cell > 1: ddp, or fsdp (shards a model too big for one)
    # transferability cells (xtl.cells.transferability_cell): false, true or a mapping of
    # evaluation.transferability.TRANSFERABILITY keys; off by default, so no existing plan changes
    "transferability": False,
    "report_to": None,  # experiment trackers (xtl.core.tracking): tensorboard, wandb, mlflow
}
REQUIRED = ("models", "targets")
RETENTION = ("best", "all", "none")


@dataclass
class Experiment:
    """A validated experiment file with defaults filled in."""

    path: Path | None
    raw: dict[str, Any]
    values: dict[str, Any]
    declared: dict[str, dict]  # tasks declared in the file: name -> Task fields

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load's loader (data only), refusing a key given twice in one mapping: plain
    YAML keeps the last silently, so a second `hparams:` block would drop the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                continue  # unhashable keys: the base loader's own error
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads `1e-5` and `1.0e5` as strings: its floats need a dot and a signed
# exponent. Researchers write learning rates that way, so such a plain scalar is a float here, as
# in YAML 1.2. Copy the resolver table first: PyYAML's own copy is shallow and would change
# yaml.SafeLoader for everyone.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"))


def read_yaml(path: Path, what: str) -> Any:
    """A YAML (or JSON) file as data; errors name the file, line and column."""
    if not path.is_file():
        state = "is not a regular file" if path.exists() else "does not exist"
        raise ConfigError(f"{what} {str(path)!r} {state}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not content
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # safe_load, but a repeated key is an error
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: malformed YAML: {str(err.problem or err)[:300]}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: malformed YAML: {str(err)[:300]}") from None
    except RecursionError:
        raise ConfigError(f"{path}: malformed YAML: nested too deeply") from None
    size = expanded_size(doc, MAX_VALUES)
    if size > MAX_VALUES:
        raise ConfigError(f"{path}: expands to more than {MAX_VALUES:,} values (YAML aliases "
                          "repeated inside one another?); an experiment file is far smaller")
    return doc


# An experiment file, aliases expanded, has hundreds of values; a "billion laughs" file has
# billions, and every later step (copies, ids, error messages) would expand them.
MAX_VALUES = 100_000


def expanded_size(doc: Any, limit: int) -> int:
    """Values in `doc` with every shared (aliased) part counted each time it is used; stops
    counting past `limit`. Linear in the distinct objects, whatever the expansion."""
    sizes: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        if depth > 200:  # an alias that contains itself
            return limit + 1
        sizes[id(node)] = limit + 1  # a cycle reached before this node finishes
        items = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        total = 1
        for item in items:
            total += size(item, depth + 1)
            if total > limit:
                break
        sizes[id(node)] = min(total, limit + 1)
        return sizes[id(node)]

    return size(doc, 0)


def load(path: str | Path) -> Experiment:
    """Read and validate an experiment file; errors name the file, line and column."""
    path = Path(path)
    raw = read_yaml(path, "experiment file")
    exp = parse(raw if raw is not None else {}, source=str(path))
    exp.path = path
    if exp.values["name"] is None:
        if path.stem in ("", ".", "..") or not path.stem.strip():
            raise ConfigError(f"{path}: the file name gives the experiment no usable name "
                              f"({path.stem!r} would name runs/{path.stem}); set 'name'")
        exp.values["name"] = path.stem
    return exp


def parse(raw: Any, source: str = "<experiment>") -> Experiment:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the experiment must be a mapping of keys, got "
                          f"{type(raw).__name__}")
    for key in raw:
        if key not in TOP_LEVEL:
            raise unknown(f"key in {source}", key, TOP_LEVEL)
    values = copy.deepcopy(TOP_LEVEL) | copy.deepcopy(raw)
    for key in REQUIRED:
        if not values.get(key):
            raise ConfigError(f"{source}: {key!r} is required (a non-empty list)")
    if values["xtl"] != CONTRACT_VERSION:
        raise ConfigError(f"{source}: contract version xtl: {values['xtl']!r} is not supported; "
                          f"this xtl reads version {CONTRACT_VERSION} (docs/contracts.md)")
    for key in ("models", "targets", "intermediate", "seeds", "train_sizes"):
        values[key] = _as_list(values[key], key, source)
    values["models"], values["model_hparams"] = _model_entries(values["models"], source)
    _check_shapes(values, source)
    declared = _declared_tasks(values["tasks"], source)
    _check_names(values, declared, source)
    _check_axes(values, source)
    _check_hparams(values["hparams"], f"{source}: hparams")
    for name, spec in values["tasks"].items():
        _check_hparams(task_overrides(spec), f"{source}: tasks.{name}")
    _check_grid(values["grid"], source)
    _canonical_numbers(values)
    if values["eval_split"] not in SPLITS:
        raise unknown(f"eval_split in {source}", values["eval_split"], SPLITS)
    if values["keep_checkpoints"] not in RETENTION:
        raise unknown(f"keep_checkpoints in {source}", values["keep_checkpoints"], RETENTION)
    values["executor"] = executors.parse(values["executor"], source)
    values["transferability"] = transferability_settings(values["transferability"], source)
    values["report_to"] = tracking.parse(values["report_to"], source)
    return Experiment(None, raw, values, declared)


def _model_entries(entries: list, source: str) -> tuple[list, dict[str, dict]]:
    """`models` entries as (names, per-model hyperparameters): a plain name, or a mapping
    `{name: <model>, hparams: {...}}` whose hparams sit above the file's `hparams`."""
    names, recipes = [], {}
    for entry in entries:
        if isinstance(entry, dict):
            extra = set(entry) - {"name", "hparams"}
            if extra or "name" not in entry:
                bad = sorted(extra)[0] if extra else "name"
                raise ConfigError(f"{source}: a models entry given as a mapping takes 'name' and "
                                  f"optionally 'hparams'; got {entry!r}"
                                  + (f" (unknown key {bad!r})" if extra else ""))
            name, hparams = entry["name"], entry.get("hparams", {})
            _check_hparams(hparams, f"{source}: models.{name}.hparams")
        else:
            name, hparams = entry, {}
        if isinstance(name, str) and name in recipes:
            raise ConfigError(f"{source}: model {name!r} is listed twice in models")
        names.append(name)
        if isinstance(name, str):
            recipes[name] = dict(hparams)
    return names, recipes


def _as_list(value: Any, key: str, source: str) -> list:
    if value is None:
        return [None]
    return list(value) if isinstance(value, list) else [value]


def _declared_tasks(spec: Any, source: str) -> dict[str, dict]:
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: 'tasks' must map task names to overrides or declarations")
    declared = {}
    for name, entry in spec.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{source}: tasks.{name} must be a mapping, got {entry!r}")
        if "format" in entry:
            if not isinstance(entry.get("hparams", {}), dict):
                raise ConfigError(f"{source}: tasks.{name}.hparams must be a mapping of "
                                  f"hyperparameters, got {entry['hparams']!r}")
            fields = {k: v for k, v in entry.items() if k != "hparams"}
            registry.declare(name, fields)  # validates now; rebuilt where it is used
            declared[name] = fields
        elif name not in registry.REGISTRY:
            raise unknown(f"task in {source}: tasks", name, registry.REGISTRY)
    return declared


def task_names(values: dict, declared: dict) -> set[str]:
    return set(registry.REGISTRY) | set(declared)


def intermediate_stages(entry: Any, source: str = "<experiment>", _depth: int = 0
                        ) -> list[list[str]]:
    """An `intermediate` axis value as stages, each a list of tasks trained together.

    none -> []; "mnli" -> [["mnli"]]; ["mnli", "squad"] -> [["mnli", "squad"]] (multi-task);
    {"chain": ["siqa", "copa"]} -> [["siqa"], ["copa"]] (each stage starts from the last).
    """
    if entry is None or entry == "none":
        return []
    if isinstance(entry, str):
        return [[entry]]
    if isinstance(entry, list) and entry and all(isinstance(t, str) for t in entry):
        return [list(entry)]
    if isinstance(entry, dict) and set(entry) == {"chain"} and isinstance(entry["chain"], list):
        if _depth > 16:  # a YAML alias can make a chain contain itself
            raise ConfigError(f"{source}: intermediate chains nested more than 16 deep")
        if not entry["chain"]:  # not silently the baseline: `none` says that
            raise ConfigError(f"{source}: intermediate entry {entry!r} is an empty chain; "
                              "write 'none' for no intermediate task")
        stages = []
        for step in entry["chain"]:
            stages += intermediate_stages(step, source, _depth + 1)
        return stages
    raise ConfigError(f"{source}: intermediate entry {entry!r} is not 'none', a task name, a "
                      "list of task names (multi-task) or {chain: [...]}")


def _check_names(values: dict, declared: dict, source: str) -> None:
    known = task_names(values, declared)
    for target in values["targets"]:
        if target not in known:
            raise unknown(f"target task in {source}", target, known)
    for entry in values["intermediate"]:
        for stage in intermediate_stages(entry, source):
            for name in stage:
                if name not in known:
                    raise unknown(f"intermediate task in {source}", name, known)
            # A multi-task stage trains one head per task on the shared encoder.
            if len(set(stage)) != len(stage):
                raise ConfigError(f"{source}: multi-task stage {stage} names a task twice")
            for name in stage:
                if resolve_task(name, declared).format == "retrieval":
                    raise ConfigError(f"{source}: {name!r} is a retrieval task (no training); "
                                      "it cannot be an intermediate task")
    # Not names, but the execution keys this check owns: processes per cell, and how.
    gpus = values["gpus_per_cell"]
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1:
        raise ConfigError(f"{source}: gpus_per_cell must be an integer >= 1, got "
                          f"{values['gpus_per_cell']!r}")
    if values["distributed"] not in ("ddp", "fsdp"):
        raise unknown(f"distributed in {source}", values["distributed"], ("ddp", "fsdp"))
    if values["eval_languages"] is not None:
        langs = _as_list(values["eval_languages"], "eval_languages", source)
        values["eval_languages"] = langs
        allowed = set()
        for target in values["targets"]:
            allowed |= set(resolve_task(target, declared).languages)
        for lang in langs:
            if lang not in allowed:
                raise unknown(f"language in {source}: eval_languages", lang, allowed)


# An experiment name becomes a directory under runs/: one plain path component.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]*")


def _check_shapes(values: dict, source: str) -> None:
    """Types the later checks rely on: paths are strings, axes non-empty, names strings."""
    for key in ("name", "out", "mirror", "raw_dir"):
        if values[key] is not None and (not isinstance(values[key], str) or not values[key]):
            raise ConfigError(f"{source}: {key} must be a non-empty string or null, got "
                              f"{values[key]!r}")
    name = values["name"]
    if name is not None and (not _PLAIN_NAME.fullmatch(name) or ".." in name):
        raise ConfigError(f"{source}: name {name!r} must be a plain name (letters, digits, "
                          "'_', '-', '.', no path separators or '..'): it names runs/<name>; "
                          "use 'out' for another directory")
    for key in ("models", "targets", "intermediate", "seeds", "train_sizes"):
        if not values[key]:
            raise ConfigError(f"{source}: {key} must be a non-empty list (leave it out for "
                              f"the default {TOP_LEVEL[key]!r})")
    for key in ("targets",) + (("eval_languages",) if values["eval_languages"] else ()):
        for entry in _as_list(values[key], key, source):
            if not isinstance(entry, str):
                raise ConfigError(f"{source}: {key} entries must be names, got {entry!r}")
    if values["eval_languages"] == []:
        raise ConfigError(f"{source}: eval_languages must be a non-empty list, or null for "
                          "all of the target's languages")


def _check_axes(values: dict, source: str) -> None:
    for seed in values["seeds"]:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError(f"{source}: seeds must be integers, got {seed!r}")
        _check_seed_range("seeds", seed, values, source)
    for size in values["train_sizes"]:
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise ConfigError(f"{source}: train_sizes entries must be positive integers or null "
                              f"(full data), got {size!r}")
    for model in values["models"]:
        if not isinstance(model, str) or not model:
            raise ConfigError(f"{source}: models entries must be names or paths, got {model!r}")
    for key in ("subsample_seed",):
        if not isinstance(values[key], int) or isinstance(values[key], bool):
            raise ConfigError(f"{source}: {key} must be an integer, got {values[key]!r}")
        _check_seed_range(key, values[key], values, source)
    if values["intermediate_seed"] is not None and (
            not isinstance(values["intermediate_seed"], int)
            or isinstance(values["intermediate_seed"], bool)):
        raise ConfigError(f"{source}: intermediate_seed must be an integer or null")
    if values["intermediate_seed"] is not None:
        _check_seed_range("intermediate_seed", values["intermediate_seed"], values, source)


# numpy's legacy seeding (accelerate's set_seed, which adds the process index) takes
# 0 <= seed < 2**32; torch and numpy's Generator accept that range too.
SEED_LIMIT = 2**32


def _check_seed_range(key: str, seed: int, values: dict, source: str) -> None:
    gpus = values["gpus_per_cell"] if isinstance(values["gpus_per_cell"], int) else 1
    top = SEED_LIMIT - max(gpus, 1)  # each process of a cell seeds with seed + its rank
    if not 0 <= seed <= top:
        raise ConfigError(f"{source}: {key} value {seed} is out of range; expected an integer "
                          f"from 0 to {top} (numpy and torch seeds are 32-bit unsigned)")


def _canonical_numbers(values: dict) -> None:
    """Every hyperparameter the file gives, in canonical form (see `canonical`)."""
    def fix(layer: dict) -> None:
        for key in list(layer):
            layer[key] = canonical(key, layer[key])

    fix(values["hparams"])
    for recipe in values["model_hparams"].values():
        fix(recipe)
    for entry in values["tasks"].values():
        fix(entry.get("hparams", {}) if "format" in entry else entry)
    for key, options in values["grid"].items():
        values["grid"][key] = [canonical(key, v) for v in options]


def _check_hparams(hparams: Any, where: str) -> None:
    if not isinstance(hparams, dict):
        raise ConfigError(f"{where} must be a mapping of hyperparameters, got {hparams!r}")
    for key, value in hparams.items():
        check_hparam(key, value, where)


def _check_grid(grid: Any, source: str) -> None:
    if not isinstance(grid, dict):
        raise ConfigError(f"{source}: grid must map hyperparameter names to lists of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: grid.{key} must be a non-empty list, got {values!r}")
        for value in values:
            check_hparam(key, value, f"{source}: grid")
