"""Multiple choice (HellaSwag, Cosmos QA, CommonsenseQA, Social IQa, COPA, XCOPA).

Each (context + question, choice) pair is encoded on its own; a linear layer scores the first
token of every pair and the choices of a row compete in one softmax.

Declaring a task: `fields["choices"]` names where the choices are, in one of three forms:
a list column (`endings`), a list inside a struct column (`choices.text`), or several columns
joined by commas (`answer0,answer1,answer2,answer3`). `label_names` are the choice positions as
strings ("0", "1", ...); when the source labels differ (Social IQa "1".."3", CommonsenseQA
"A".."E"), `label_aliases` maps EVERY source label to a position (no other value is accepted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import datasets
import torch
from torch import nn

from xtl.core.errors import DataError
from xtl.core.hparams import Hparams
from xtl.data.tasks import Format, Task, register, register_format
from xtl.data.tasks.pair_classification import decode, loss  # a row's choices are its classes

FORMAT = "multiple_choice"
# Canonical row: {"id": str, "context": str, "question": str, "choices": list[str], "label": int}
CANONICAL_FIELDS = ("context", "question", "choices", "label")
FEATURES = datasets.Features({
    "id": datasets.Value("string"), "context": datasets.Value("string"),
    "question": datasets.Value("string"), "choices": datasets.Sequence(datasets.Value("string")),
    "label": datasets.Value("int64"),
})
UNLABELLED = "no label (-1 or empty)"
# COPA and XCOPA give the question as a bare word; the model reads it as text (jiant's phrasing).
COPA_QUESTIONS = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}


def choice_names(n: int) -> tuple[str, ...]:
    """The label names of an n-way task: the choice positions as strings."""
    return tuple(str(k) for k in range(n))


# --- rows --------------------------------------------------------------------------------

def canonicalize(task: Task, raw: datasets.Dataset, split: str, language: str
                 ) -> tuple[datasets.Dataset, dict[str, int]]:
    """Canonical rows; rows without a label are counted, bad labels or choices are errors."""
    where = f"{task.name}/{language}/{split}"
    _check_columns(task, raw, where)
    choices_of = _choice_reader(task.fields["choices"])
    to_int = _label_mapper(task, raw, where)
    n_choices = len(task.label_names)
    id_col = task.fields.get("id")
    text = {canon: task.fields.get(canon) for canon in ("context", "question")}

    def convert(row: dict, i: int) -> dict:
        choices = [_text(c) for c in choices_of(row)]
        if len(choices) != n_choices:
            raise DataError(f"{where} row {i}: {len(choices)} choices, but the task has "
                            f"{n_choices} ({list(task.label_names)})")
        out = {canon: _text(row[col]) if col else "" for canon, col in text.items()}
        out["question"] = COPA_QUESTIONS.get(out["question"], out["question"])
        out["id"] = str(row[id_col]) if id_col else f"{language}-{split}-{i:07d}"
        out["choices"], out["label"] = choices, to_int(row[task.fields["label"]], i)
        return out

    rows = raw.map(convert, with_indices=True, remove_columns=raw.column_names,
                   features=FEATURES, desc=where)
    usable = rows.filter(lambda r: r["label"] >= 0)
    dropped = len(rows) - len(usable)
    return usable, ({UNLABELLED: dropped} if dropped else {})


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _columns_of(task: Task) -> list[str]:
    cols = [col for canon, col in task.fields.items() if canon != "choices"]
    spec = task.fields["choices"]
    if "," in spec:
        return cols + [c.strip() for c in spec.split(",")]
    return cols + [spec.split(".", 1)[0]]


def _check_columns(task: Task, raw: datasets.Dataset, where: str) -> None:
    if "choices" not in task.fields or "label" not in task.fields or not task.label_names:
        raise DataError(f"{where}: a multiple-choice task needs fields 'choices' and 'label' "
                        f"and label_names (the choice positions \"0\", \"1\", ...); got "
                        f"fields {dict(task.fields)}, label_names {list(task.label_names)}")
    missing = [col for col in _columns_of(task) if col not in raw.column_names]
    if missing:
        raise DataError(f"{where}: columns {missing} missing; the source has {raw.column_names}")


def _choice_reader(spec: str) -> Callable[[dict], list]:
    """The choices of a row: several columns, a list inside a struct, or a list column."""
    if "," in spec:
        cols = [c.strip() for c in spec.split(",")]
        return lambda row: [row[c] for c in cols]
    if "." in spec:
        col, key = spec.split(".", 1)
        return lambda row: list(row[col][key])
    return lambda row: list(row[spec])


def _label_mapper(task: Task, raw: datasets.Dataset, where: str) -> Callable[[Any, int], int]:
    """Source label -> choice position; -1 for a missing label (test splits)."""
    n = len(task.label_names)
    feature = raw.features[task.fields["label"]]
    if isinstance(feature, datasets.ClassLabel):  # COPA: ClassLabel[choice1, choice2]
        if feature.num_classes != n:
            raise DataError(f"{where}: the source's labels are {feature.names}, but the task "
                            f"has {n} choices")
        from xtl.data.sources import class_label_ids  # lazy: sources imports the task formats

        return class_label_ids(list(feature.names), where)
    position = {name: k for k, name in enumerate(task.label_names)}
    lookup = dict(task.label_aliases) or {name: name for name in task.label_names}
    bad = sorted(v for v in lookup.values() if v not in position)
    if bad:
        raise DataError(f"{where}: label_aliases point at {bad}, not in {list(task.label_names)}")

    def to_int(value: Any, i: int) -> int:
        label = "" if value is None else str(value).strip()
        if label in ("", "-1"):
            return -1
        if label not in lookup:
            raise DataError(f"{where} row {i}: label {value!r} is outside the label set "
                            f"{sorted(lookup)}")
        return position[lookup[label]]

    return to_int


# --- features, batches, head --------------------------------------------------------------

def featurize(batch: dict[str, list], tokenizer: Any, hp: Hparams, train: bool = False) -> dict:
    """One (context + question, choice) pair per choice: `input_ids` is [n_choices][length]."""
    prefix = hp.input_prefix
    firsts, seconds, sizes = [], [], []
    for context, question, choices in zip(batch["context"], batch["question"],
                                          batch["choices"], strict=True):
        first = prefix + " ".join(t for t in (context, question) if t)
        firsts += [first] * len(choices)
        seconds += [prefix + c for c in choices]
        sizes.append(len(choices))
    # longest_first: a long context is cut, not the choice that tells the answer
    enc = tokenizer(firsts, seconds, truncation=True, max_length=hp.max_length)
    out = {key: _regroup(values, sizes) for key, values in enc.items()}
    out["labels"] = list(batch["label"])
    return out


def _regroup(flat: list, sizes: list[int]) -> list[list]:
    out, start = [], 0
    for size in sizes:
        out.append(flat[start:start + size])
        start += size
    return out


class MultipleChoiceCollator:
    """Pads every pair of a batch to the longest one (dynamic) and flattens the choices.

    The encoder takes [rows * choices, length]; `n_choices` lets the head regroup the scores.
    """

    def __init__(self, tokenizer: Any):
        from transformers import DataCollatorWithPadding  # lazy: registry imports stay light

        self.pad = DataCollatorWithPadding(tokenizer)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        counts = {len(f["input_ids"]) for f in features}
        if len(counts) != 1:
            raise DataError(f"a batch mixes rows with {sorted(counts)} choices")
        n_choices = counts.pop()
        keys = [k for k in features[0] if k != "labels"]
        pairs = [{k: f[k][c] for k in keys} for f in features for c in range(n_choices)]
        batch = dict(self.pad(pairs))
        batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        batch["n_choices"] = torch.full((len(features),), n_choices)
        return batch


def collator(tokenizer: Any) -> MultipleChoiceCollator:
    return MultipleChoiceCollator(tokenizer)


class ChoiceHead(nn.Module):
    """Dropout + linear(hidden, 1) on each pair's first token; logits [rows, choices]."""

    def __init__(self, hidden_size: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.score = nn.Linear(hidden_size, 1)

    def forward(self, hidden: torch.Tensor, batch: dict) -> torch.Tensor:
        scores = self.score(self.dropout(hidden[:, 0])).squeeze(-1)
        return scores.view(-1, int(batch["n_choices"][0]))


def make_head(task: Task, hidden_size: int) -> nn.Module:
    return ChoiceHead(hidden_size)


@register_format
class MultipleChoice(Format):
    """One of a row's choices, each scored from its own (context, question, choice) input."""

    name, canonical_fields = FORMAT, CANONICAL_FIELDS
    canonicalize = staticmethod(canonicalize)
    featurize = staticmethod(featurize)
    collator = staticmethod(collator)
    make_head = staticmethod(make_head)
    loss = staticmethod(loss)
    decode = staticmethod(decode)


# --- English intermediate tasks (schemas: docs/data.md section 1) --------------------------

register(Task(
    name="hellaswag",
    format=FORMAT,
    languages=("en",),
    label_names=choice_names(4),
    hub_id="Rowan/hellaswag",
    config="",  # single config: the mirror's `data/`
    # `ctx` = ctx_a + " " + ctx_b; labels are strings "0".."3", "" in test (unusable)
    fields={"context": "ctx", "choices": "endings", "label": "label", "id": "ind"},
    description="HellaSwag 4-way sentence completion (39,905 train), English intermediate",
))

register(Task(
    name="cosmos_qa",
    format=FORMAT,
    languages=("en",),
    label_names=choice_names(4),
    hub_id="allenai/cosmos_qa",
    config="",
    # int32 labels 0-3; test = -1 (unusable)
    fields={"context": "context", "question": "question",
            "choices": "answer0,answer1,answer2,answer3", "label": "label", "id": "id"},
    description="Cosmos QA 4-way reading comprehension (25,262 train), English intermediate",
))

register(Task(
    name="commonsense_qa",
    format=FORMAT,
    languages=("en",),
    label_names=choice_names(5),
    hub_id="tau/commonsense_qa",
    config="",
    # choices = {label: ["A".."E"], text: [...]}; answerKey a letter, "" in test (unusable)
    fields={"question": "question", "choices": "choices.text", "label": "answerKey",
            "id": "id"},
    label_aliases={letter: str(k) for k, letter in enumerate("ABCDE")},
    description="CommonsenseQA 5-way (9,741 train), English intermediate",
))

# XTREME-R's scripts/train_xcopa.sh for XLM-R Large (docs/protocol.md): Social IQa, then COPA,
# each at lr 3e-5 (2e-5 for the base-size models), 5 epochs, max length 128, batch 2 x 16.
XCOPA_RECIPE = {"learning_rate": 3e-5, "epochs": 5, "max_length": 128, "batch_size": 32}

register(Task(
    name="social_i_qa",
    format=FORMAT,
    languages=("en",),
    label_names=choice_names(3),
    hub_id="allenai/social_i_qa",
    config="",
    splits={"train": "train", "validation": "validation"},  # no test split on the Hub
    fields={"context": "context", "question": "question",
            "choices": "answerA,answerB,answerC", "label": "label"},
    label_aliases={"1": "0", "2": "1", "3": "2"},  # string labels, 1-based
    # XTREME-R's train_xcopa.sh trains Social IQa with XCOPA's recipe (below)
    hparams=XCOPA_RECIPE,
    description="Social IQa 3-way (33,410 train); XCOPA's first English stage",
))

# SuperGLUE COPA (the fields of XCOPA without `changed`): aps/super_glue config "copa",
# splits train 400 / validation 100 / test 500, label ClassLabel[choice1, choice2] with -1 in
# test, as the old super_glue loader wrote it (the kit only needs two classes, in that order).
# No sample in the test mirror.
register(Task(
    name="copa",
    format=FORMAT,
    languages=("en",),
    label_names=choice_names(2),
    hub_id="aps/super_glue",
    config="copa",
    fields={"context": "premise", "question": "question", "choices": "choice1,choice2",
            "label": "label", "id": "idx"},
    description="COPA (SuperGLUE), English training data of XCOPA",
))

# --- XTREME-R target ----------------------------------------------------------------------

register(Task(
    name="xcopa",
    format=FORMAT,
    languages=("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"),
    label_names=choice_names(2),
    hub_id="cambridgeltl/xcopa",
    config="{language}",  # the translation-<l> configs (English MT) are not used here
    # no train split: validation 100 / test 500 per language; test labels are real on the Hub
    splits={"validation": "validation", "test": "test"},
    fields={"context": "premise", "question": "question", "choices": "choice1,choice2",
            "label": "label", "id": "idx"},
    train_task="copa",
    train_prelude=("social_i_qa",),
    hparams=XCOPA_RECIPE,
    description="XCOPA target (XTREME-R); English training: Social IQa, then COPA",
))
