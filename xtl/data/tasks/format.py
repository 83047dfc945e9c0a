"""The task-format interface and its registry (docs/architecture.md section 3, "Add a format").

A format is a subclass of `Format` registered with `@register_format`: it names its hooks,
the required ones (abstract below) and any optional one it overrides. The kit calls the hooks
of `get_format(task.format)` directly. Hooks are static: a format holds no state, and its
module's functions stay importable on their own (the tests call them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import xtl  # annotations only: `xtl.data.tasks.Task` (xtl.data.tasks imports this module)
from xtl.core.errors import ConfigError, unknown
from xtl.core.hparams import Hparams, Spec, declare


class Format(ABC):
    """How tasks of one format become features, logits, a loss and predictions."""

    name: ClassVar[str]
    """The format's name, as tasks give it in their `format` field."""
    canonical_fields: ClassVar[tuple[str, ...]]
    """The canonical row's fields besides `id` (what `canonicalize` produces)."""

    canonicalize: ClassVar[Callable[..., tuple[Any, dict[str, int]]] | None] = None
    """(task, raw, split, language) -> (rows, report) where the generic column renaming
    (`xtl.data.sources.canonicalize`, the default: None) is not enough; `report` maps a reason to
    a count: "repaired: ..." reasons are rows kept after a repair, others rows dropped."""
    check_source: ClassVar[Callable[..., None] | None] = None
    """(task, files, split, language) -> None, raising DataError: a plan-time look into a
    mirror's files beyond their presence (span QA: a mixed-language config holds this
    language); None: presence is enough."""
    hparams: ClassVar[tuple[Spec, ...]] = ()
    """The hyperparameters only this format's tasks read (`xtl.core.hparams.Spec`; QA's doc
    stride, retrieval's pooling); registration declares them into the schema."""
    predict: ClassVar[Callable[..., list] | None] = None
    """(model, tokenizer, task, split, hp, precision) -> one prediction per row, where the
    generic path (`xtl.evaluation.evaluate`, the default: None; the head's logits on every row, then
    `decode`) is not enough (QA windows, tagging windows, ranking)."""

    @staticmethod
    @abstractmethod
    def featurize(batch: dict[str, list], tokenizer: Any, hp: Hparams, train: bool = False) -> dict:
        """Tokenise a batch of canonical rows (batched `datasets.map`; `hp` resolved)."""

    @staticmethod
    @abstractmethod
    def collator(tokenizer: Any) -> Callable[[list[dict]], dict]:
        """A callable turning a list of features into a padded batch of tensors."""

    @staticmethod
    @abstractmethod
    def make_head(task: xtl.data.tasks.Task, hidden_size: int) -> Any:
        """The task's head (`nn.Module`) whose `forward(hidden, batch)` gives the logits."""

    @staticmethod
    @abstractmethod
    def loss(logits: Any, batch: dict) -> Any:
        """The training loss (a scalar tensor) of a batch's logits."""

    @staticmethod
    @abstractmethod
    def decode(logits: Any) -> list:
        """One prediction per row from the logits (the generic prediction path)."""

    @staticmethod
    def bind_head(head: Any, encoder: Any) -> None:
        """Give a new head the encoder it sits on (default: nothing; MLM ties its output)."""
        return None

    @staticmethod
    def references(rows: Any) -> list:
        """The gold answers of a split's scored rows, aligned with the predictions."""
        return rows["label"]

    @staticmethod
    def example_ids(rows: Any) -> list:
        """The ids of a split's scored rows, aligned with the predictions."""
        return rows["id"]

    @staticmethod
    def chance(rows: Any) -> float | None:
        """The metric's chance level on these rows where it depends on them (else None)."""
        return None


FORMATS: dict[str, Format] = {}


def register_format(cls: type[Format]) -> type[Format]:
    """Class decorator: make `cls` the format named `cls.name`, after checking its hooks."""
    where = f"format class {cls.__qualname__}"
    if not (isinstance(cls, type) and issubclass(cls, Format)):
        raise ConfigError(f"{where} must subclass xtl.data.tasks.Format")
    try:
        name, fields = cls.name, cls.canonical_fields
    except AttributeError as err:
        raise ConfigError(f"{where} needs `name` (the format's name) and `canonical_fields` "
                          "(the canonical row's fields)") from err
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: `name` must be a non-empty string, got {name!r}")
    if not isinstance(fields, tuple) or not all(isinstance(f, str) for f in fields):
        raise ConfigError(f"{where} ({name!r}): `canonical_fields` must be a tuple of strings, "
                          f"got {fields!r}")
    if cls.__abstractmethods__:
        raise ConfigError(f"{where} ({name!r}) lacks the required hooks "
                          f"{', '.join(sorted(cls.__abstractmethods__))} "
                          "(see xtl.data.tasks.Format)")
    if name in FORMATS:
        raise ConfigError(f"format {name!r} is registered twice "
                          f"({type(FORMATS[name]).__qualname__} and {cls.__qualname__})")
    for spec in cls.hparams:
        declare(spec, name)
    FORMATS[name] = cls()
    return cls


def get_format(name: str) -> Format:
    """The registered format called `name`, or an error listing the known ones."""
    if name not in FORMATS:
        raise unknown("task format", name, FORMATS)
    return FORMATS[name]
