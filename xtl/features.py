"""Model features from canonical rows: each format's featuriser, run through `datasets.map`."""

from __future__ import annotations

from typing import Any

import datasets

from xtl.sources import Split
from xtl.tasks import Task, format_module


def features(task: Task, split: Split, tokenizer: Any, hp: dict, train: bool = False
             ) -> datasets.Dataset:
    """Tokenised rows of a split, ready for the format's collator (padding is per batch).

    `train` says whether the features are for training (QA keeps offsets only for evaluation).
    """
    fmt = format_module(task.format)
    return split.rows.map(
        fmt.featurize, batched=True, remove_columns=split.rows.column_names,
        fn_kwargs={"tokenizer": tokenizer, "hp": hp, "train": train},
        desc=f"tokenise {split.task}/{split.language}/{split.split}")
