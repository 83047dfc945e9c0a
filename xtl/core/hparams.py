"""The hyperparameters a cell trains with: one declaration (`Spec`) per hyperparameter, its
default, types, bounds, one-line doc, which formats read it, whether it is per task, and its
contract-v1 status (docs/contracts.md section 1; the recipe: docs/protocol.md).

The kit's own keys are declared below; a key only one format reads is declared in that
format's module and listed in its `Format.hparams`, which `register_format` passes to
`declare`. Every table callers read (HPARAM_DEFAULTS, TASK_KEYS, ...) is derived from the
declarations and kept up to date in place as formats register. The experiment file
(`xtl.grid.config`), the plan, the cells and training read them; this module imports no format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from xtl.core.errors import ConfigError, unknown

# A bound: (key as written, value, where) -> None, raising ConfigError with the message.
Bound = Callable[[str, Any, str], None]


class _InV1:
    """`Spec.v1_value` of a key contract v1 already had (always in a cell's identity)."""

    def __repr__(self) -> str:
        return "IN_V1"


IN_V1: Any = _InV1()


@dataclass(frozen=True)
class Spec:
    """One hyperparameter."""

    name: str
    default: Any
    types: tuple[type, ...]  # accepted types (bool only where listed)
    doc: str  # one line
    bound: Bound | None = None  # None: any value of the types
    per_task: bool = False  # TASK value (one per task of a multi-task stage), else LOOP
    multitask: bool = False  # read only by multi-task stages (xtl.training.sampling)
    intrinsic: bool = False  # the model preset beats the task's recipe (e5's prefix, pooling)
    # IN_V1: contract v1 had the key. Otherwise the value reproducing what every v1 cell
    # computed: the key enters a cell's identity only where its tasks read it and its value
    # differs from that (docs/contracts.md), so adding a key renames no cell.
    v1_value: Any = IN_V1
    formats: tuple[str, ...] = ()  # the formats that read it; () = every trained cell


def above(low: float) -> Bound:
    def check(key: str, value: Any, where: str) -> None:
        if value <= low:
            raise ConfigError(f"{where}: {key} = {value!r} must be > {low}")
    return check


def at_least(low: float, note: str = "") -> Bound:
    def check(key: str, value: Any, where: str) -> None:
        if value < low:
            raise ConfigError(f"{where}: {key} = {value!r} must be >= {low}{note}")
    return check


def within(low: float, high: float, closed_low: bool) -> Bound:
    """low <= value < high (closed_low) or low < value < high."""
    shown = f"{'[' if closed_low else '('}{low}, {high})"

    def check(key: str, value: Any, where: str) -> None:
        if not (low <= value if closed_low else low < value) or not value < high:
            raise ConfigError(f"{where}: {key} = {value!r} must be in {shown}")
    return check


def one_of(choices: tuple[str, ...]) -> Bound:
    def check(key: str, value: Any, where: str) -> None:
        if value not in choices:
            raise unknown(f"{split_scope(key)[1]} in {where}", value, choices)
    check.choices = choices  # type: ignore[attr-defined]
    return check


def _device(key: str, value: Any, where: str) -> None:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise ConfigError(f"{where}: unknown device {value!r}; expected auto, cpu, cuda or "
                          "cuda:N")


MULTITASK_SAMPLERS = ("proportional", "temperature", "uniform")
PHASES = ("intermediate", "target")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SPLITS = ("validation", "test")
NUMBER = (float, int)

# The kit's keys. The paper's recipe (jiant's released X-STILTs settings; docs/protocol.md):
# the optimisation block; a task's recipe (xtl/data/tasks/*.py) overrides epochs, batch size, ...
KIT_SPECS = (
    Spec("learning_rate", 1e-5, NUMBER, "peak learning rate (AdamW)", above(0)),
    Spec("epochs", 3, (int, float), "passes over the training data", above(0), per_task=True),
    Spec("batch_size", 32, (int,), "examples per optimizer step (over every process)",
         above(0)),
    Spec("grad_accum", 1, (int,), "micro-batches per optimizer step", above(0)),
    Spec("max_length", 256, (int,), "longest input in tokens", above(0), per_task=True),
    Spec("warmup_ratio", 0.1, NUMBER, "share of the steps with a linear warm-up",
         within(0, 1, closed_low=True)),
    Spec("weight_decay", 0.01, NUMBER, "AdamW's decoupled weight decay", at_least(0)),
    Spec("max_grad_norm", 1.0, NUMBER, "gradient clipping norm", above(0)),
    Spec("adam_epsilon", 1e-8, (float,), "AdamW's epsilon", above(0)),
    # Evaluation, checkpoints and the machine.
    Spec("eval_every", 0, (int,), "steps between dev evaluations; 0 = at the end of every epoch",
         at_least(0)),
    Spec("patience", 0, (int,),
         "dev evaluations without improvement before stopping; 0 = never stop", at_least(0)),
    Spec("precision", "auto", (str,),
         "auto (bf16 where the device has it, CPU included) | bf16 | fp16 | fp32",
         one_of(PRECISIONS)),
    Spec("input_prefix", "", (str,), 'text put before every input, e.g. "query: " for e5',
         per_task=True, intrinsic=True),
    Spec("group_by_length", True, (bool,), "batches of similar length: less padding"),
    Spec("gradient_checkpointing", False, (bool,),
         "recompute activations: less memory, ~30% slower"),
    Spec("save_every", 0, (int,),
         "optimizer steps between resumable checkpoints; 0 = at each dev evaluation",
         at_least(0)),
    Spec("device", "auto", (str,), "auto | cpu | cuda | cuda:N", _device),
    # Multi-task stages (xtl.training.sampling): which task each optimizer step trains on.
    Spec("multitask_sampler", "proportional", (str,),
         "proportional | temperature | uniform (jiant's)", one_of(MULTITASK_SAMPLERS),
         multitask=True),
    Spec("multitask_cap", 0, (int,),
         "examples counted per task (sampling AND step count); 0 = no cap",
         at_least(0, " (0 = no cap)"), multitask=True),
    Spec("multitask_temperature", 2.0, NUMBER,
         "temperature sampler: p ~ (epochs x min(n, cap))^(1/T)", above(0), multitask=True),
    Spec("multitask_aggregate", "mean", (str,),
         "dev score for best/patience: mean of the tasks, or a task", multitask=True),
    Spec("mlm_weight", 0.0, NUMBER,
         "MLM tasks' share of the steps, on top of the labelled tasks'; 0 = sampled",
         within(0, 1, closed_low=True), multitask=True),
    # Added after contract v1, each with the value that reproduces v1.
    Spec("freeze_embeddings", False, (bool,),
         "keep the word embeddings fixed (e5-small: 96 M of 118 M parameters; faster on CPU)",
         v1_value=False),
    Spec("dev_subset", 0, (int,),
         "dev rows the checkpoint selection evaluates: the first N (jiant: 500); 0 = all",
         at_least(0, " (0 = the whole dev set)"), v1_value=0),
)

# The declarations, and the tables derived from them (updated in place by `declare`).
SPECS: dict[str, Spec] = {}
HPARAM_DEFAULTS: dict[str, Any] = {}
V1_HPARAMS: set[str] = set()  # keys contract v1 had: always in a cell's identity
POST_V1: dict[str, Any] = {}  # later keys -> the value that reproduces v1
# TASK values: one per task of a cell (a multi-task stage featurises, decodes and counts the
# epochs of each task with its own); every other key is a LOOP value, one per cell.
TASK_KEYS: list[str] = []
MULTITASK_KEYS: list[str] = []
# How a model wants its inputs and sentence embeddings (e5: "query: " prefixes, last-layer
# mean pooling): the preset beats the task's recipe for these (still below the file).
MODEL_INTRINSIC: list[str] = []


def declare(spec: Spec, fmt: str | None = None) -> None:
    """Add `spec` to the schema; `fmt`: the format that declares it (only its tasks read it).
    Several formats may declare the same Spec."""
    old = SPECS.get(spec.name)
    if old is not None and (fmt is None or replace(old, formats=()) != spec):
        raise ConfigError(f"hyperparameter {spec.name!r} is declared twice, differently")
    formats = (old.formats if old else ()) + ((fmt,) if fmt else ())
    SPECS[spec.name] = replace(spec, formats=formats)
    if old is not None:
        return
    HPARAM_DEFAULTS[spec.name] = spec.default
    if spec.v1_value is IN_V1:
        V1_HPARAMS.add(spec.name)
    else:
        POST_V1[spec.name] = spec.v1_value
    for flag, keys in ((spec.per_task, TASK_KEYS), (spec.multitask, MULTITASK_KEYS),
                       (spec.intrinsic, MODEL_INTRINSIC)):
        if flag:
            keys.append(spec.name)


for _spec in KIT_SPECS:
    declare(_spec)


def split_scope(key: str) -> tuple[str | None, str]:
    """'target.learning_rate' -> ('target', 'learning_rate'); 'epochs' -> (None, 'epochs')."""
    if "." in key:
        phase, name = key.split(".", 1)
        if phase not in PHASES:
            raise unknown("hyperparameter scope", phase, PHASES)
        return phase, name
    return None, key


def check_hparam(key: str, value: Any, where: str) -> None:
    """Name, type, finiteness and bound of one value (`key` may be phase-scoped)."""
    _, name = split_scope(key)
    if name not in SPECS:
        raise unknown(f"hyperparameter in {where}", name, SPECS)
    spec = SPECS[name]
    if (isinstance(value, bool) and bool not in spec.types) or not isinstance(value, spec.types):
        expected = " or ".join(t.__name__ for t in spec.types)
        raise ConfigError(f"{where}: {key} = {value!r} has the wrong type; expected {expected}")
    if isinstance(value, float) and not math.isfinite(value):  # YAML's .nan / .inf
        raise ConfigError(f"{where}: {key} = {value!r} must be a finite number")
    if spec.bound is not None:
        spec.bound(key, value, where)


def reads(key: str, formats: set[str] | frozenset[str]) -> bool:
    """Whether a cell whose tasks have `formats` reads hyperparameter `key`."""
    readers = SPECS[key].formats
    return not readers or bool(set(readers) & set(formats))


class Hparams(Mapping[str, Any]):
    """A cell's resolved hyperparameters: every declared key, each value checked once, when
    built; frozen. Read a named value as an attribute (`hp.learning_rate`); `hp[key]` is for
    keys chosen at run time (a table of TASK_KEYS). `to_dict` / `from_dict` cross the
    plan, JSON and notebook boundary (cell ids hash that dict, xtl.grid.precedence)."""

    __slots__ = ("_values",)
    _values: dict[str, Any]

    if TYPE_CHECKING:  # every declared key as a typed attribute, for type checkers and editors
        # (tests/test_hparam_schema.py holds this list to the Specs: names and types)
        learning_rate: float
        epochs: int | float
        batch_size: int
        grad_accum: int
        max_length: int
        warmup_ratio: float
        weight_decay: float
        max_grad_norm: float
        adam_epsilon: float
        eval_every: int
        patience: int
        precision: str
        input_prefix: str
        group_by_length: bool
        gradient_checkpointing: bool
        save_every: int
        device: str
        multitask_sampler: str
        multitask_cap: int
        multitask_temperature: float
        multitask_aggregate: str
        mlm_weight: float
        freeze_embeddings: bool
        dev_subset: int
        pooling: str
        layer: int | float
        doc_stride: int
        max_answer_length: int
        tag_subtoken: str
        mlm_probability: float

    def __init__(self, values: Mapping[str, Any] | None = None, where: str = "hparams") -> None:
        given = dict(values or {})
        for key, value in given.items():
            check_hparam(key, value, where)
            if split_scope(key)[0] is not None:
                raise ConfigError(f"{where}: {key} is scoped to a phase; a cell's resolved "
                                  "hyperparameters name plain keys")
        object.__setattr__(self, "_values", {**HPARAM_DEFAULTS, **given})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "hparams") -> Hparams:
        """Checked values over the kit's defaults (a partial dict: ad-hoc use)."""
        return values if isinstance(values, Hparams) else cls(values, where)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def replace(self, changes: Mapping[str, Any], where: str = "hparams") -> Hparams:
        """A copy with `changes` (checked) over these values."""
        return Hparams({**self._values, **changes}, where) if changes else self

    def __or__(self, changes: Mapping[str, Any]) -> Hparams:
        return self.replace(changes)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no hyperparameter {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Hparams are frozen; use .replace({{{name!r}: ...}})")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Hparams({self._values!r})"

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        return Hparams, (self._values,)  # pickles (datasets' map, launch) as a plain dict
