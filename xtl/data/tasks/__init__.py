"""The task registry: one module per task FORMAT, one short declarative entry per task.

Adding a task means adding a `register(Task(...))` line to the module of its format (or a new
format module in this package): nothing else in the kit names tasks. Users can also declare a
task in their experiment file (`tasks: {name: {format: ..., hub_id: ..., ...}}`).

Each format module defines a `Format` subclass registered with `@register_format`
(`xtl/data/tasks/format.py` declares the hooks, required and optional), and registers its tasks.
A format's `canonicalize` returns (rows, report); `report` maps a reason to a count: reasons
starting with "repaired:" are rows kept after a repair (e.g. a re-located QA answer), reasons
starting with "left out:" are rows of another language in a source that holds several (TyDi QA
GoldP), every other reason counts rows that could not be used.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from xtl.core.errors import ConfigError, unknown

# re-exported: a format module imports what it needs from `xtl.data.tasks`
from xtl.data.tasks.format import FORMATS as FORMATS
from xtl.data.tasks.format import Format as Format
from xtl.data.tasks.format import get_format as get_format
from xtl.data.tasks.format import register_format as register_format

DEFAULT_SPLITS = MappingProxyType({"train": "train", "validation": "validation", "test": "test"})


@dataclass(frozen=True)
class Task:
    """What the kit needs to know about a task; its format knows how to featurise it."""

    name: str
    format: str
    languages: tuple[str, ...]
    label_names: tuple[str, ...] = ()
    hub_id: str | None = None
    # Hub config per language; "{language}" is substituted; "" = the repo's single config.
    config: str = "{language}"
    # canonical split -> the source's split name (e.g. MNLI validation -> validation_matched)
    splits: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SPLITS))
    # canonical field -> the source's column
    fields: Mapping[str, str] = field(default_factory=dict)
    # string labels that mean a canonical label (e.g. XNLI-MT's "contradictory")
    label_aliases: Mapping[str, str] = field(default_factory=dict)
    # where a target's ENGLISH training data comes from (None: the task's own train split)
    train_task: str | None = None
    # stages trained before the target's own English training (XCOPA: Social IQa, then COPA)
    train_prelude: tuple[str, ...] = ()
    train_language: str = "en"
    # a task whose rows are other registered tasks' rows, concatenated per split (ANLI = its
    # three rounds; ANLI+ = ANLI + SNLI + MNLI); members share this task's format and labels
    combine: tuple[str, ...] = ()
    metric: str = "accuracy"
    # synthetic tasks: (language, split, n, seed) -> rows in the Hub schema
    generator: Callable[..., list[dict]] | None = None
    # raw release files, for what the Hub lacks: reader(root / raw_path, split, language) ->
    # (rows with the `fields` columns, the files read); see xtl/data/readers/
    raw_reader: Callable[..., tuple[Any, list]] | None = None
    # the files raw_reader needs: (root / raw_path, split, language) -> paths, so that the plan
    # and run checks name a missing file before any cell starts (None: the folder is checked)
    raw_files: Callable[..., list] | None = None
    raw_path: str = ""
    # the raw files ship inside xtl (xtl/offline/samples/<raw_path>): read there, whatever the
    # experiment's raw_dir says
    bundled: bool = False
    # languages the Hub source has (None: all); the others come from the raw reader
    hub_languages: tuple[str, ...] | None = None
    sizes: Mapping[str, int] = field(default_factory=dict)
    # the task's recipe (epochs, batch, max length, ...) over the kit's defaults
    hparams: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def hub_config(self, language: str) -> str:
        return self.config.format(language=language)

    def from_raw(self, language: str) -> bool:
        """Whether this language's rows come from raw release files rather than the Hub."""
        if self.raw_reader is None:
            return False
        return self.hub_id is None or (self.hub_languages is not None
                                       and language not in self.hub_languages)

    def source_split(self, split: str) -> str:
        if split not in self.splits:
            raise unknown(f"split of task {self.name!r}", split, self.splits)
        return self.splits[split]


REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    if task.name in REGISTRY:
        raise ConfigError(f"task {task.name!r} is registered twice")
    REGISTRY[task.name] = task
    return task


def _import_format_modules() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def get(name: str) -> Task:
    """The registered task called `name`, or an error naming the closest one."""
    if name not in REGISTRY:
        raise unknown("task", name, REGISTRY)
    return REGISTRY[name]


def resolve(name: str, declared: Mapping[str, Mapping[str, Any]]) -> Task:
    """Task `name`: declared in the experiment file (`declared`) or registered."""
    if name in declared:
        return declare(name, declared[name])
    return get(name)


def declare(name: str, spec: Mapping[str, Any]) -> Task:
    """A task declared in an experiment file: a dict of Task fields (format, hub_id, ...)."""
    allowed = {f.name for f in fields(Task)} - {"name", "generator", "raw_reader", "raw_files",
                                               "bundled"}
    for key in spec:
        if key not in allowed:
            raise unknown(f"field in the declaration of task {name!r}", key, allowed)
    for key in ("format", "languages", "hub_id"):
        if key not in spec:
            raise ConfigError(f"task {name!r} declared in the experiment file needs {key!r}")
    _check_declaration(name, spec)
    spec = dict(spec)
    spec["languages"] = tuple(spec["languages"])
    spec["label_names"] = tuple(spec.get("label_names", ()))
    get_format(spec["format"])
    return Task(name=name, **spec)


# Names that end up in file names (predictions, feature caches): one plain path component.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_HUB_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)?")
_STR_LISTS = ("languages", "label_names", "train_prelude", "combine", "hub_languages")
_STR_MAPS = ("splits", "fields", "label_aliases")


def _check_declaration(name: Any, spec: Mapping[str, Any]) -> None:
    """Field types of a declared task, and names that cannot leave a directory ('../x')."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"declared task name {name!r} must be a plain name (letters, digits, "
                          "'_', '-', '.', '+'; no path separators or '..')")
    for key, value in spec.items():
        if key in _STR_LISTS:
            ok = (value is None and key == "hub_languages") or (
                isinstance(value, list) and all(isinstance(v, str) for v in value))
            expected = "a list of strings"
        elif key in _STR_MAPS or key == "sizes":
            kind = int if key == "sizes" else str
            ok = isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, kind)
                                                 for k, v in value.items())
            expected = f"a mapping of strings to {kind.__name__}s"
        else:
            ok = isinstance(value, (str, dict) if key == "hparams" else str) or (
                value is None and key in ("train_task", "hub_id"))
            expected = "a mapping" if key == "hparams" else "a string"
        if not ok:
            raise ConfigError(f"task {name!r} declared in the experiment file: {key} = "
                              f"{value!r}; expected {expected}")
    bad = [lang for lang in spec["languages"] if not SAFE_NAME.fullmatch(lang) or ".." in lang]
    if bad or not spec["languages"]:
        raise ConfigError(f"task {name!r}: languages must be a non-empty list of plain codes, "
                          f"got {spec['languages']!r}")
    hub_id = spec["hub_id"]
    if hub_id is not None and (not _HUB_ID.fullmatch(hub_id) or ".." in hub_id):
        raise ConfigError(f"task {name!r}: hub_id {hub_id!r} is not a Hub dataset id "
                          "('owner/name' or 'name')")


_import_format_modules()
