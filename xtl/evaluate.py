"""Prediction for a task's splits, batched and in inference mode, and the per-language records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import torch
from torch.utils.data import DataLoader

from xtl import metrics
from xtl.features import features
from xtl.models import XtlModel
from xtl.sources import Split
from xtl.tasks import Task, format_module


def _autocast(precision: str, device: torch.device):
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)
    return nullcontext()


def _batches(task: Task, split: Split, tokenizer: Any, hp: dict) -> Iterator[dict]:
    feats = features(task, split, tokenizer, hp)
    loader = DataLoader(feats, batch_size=2 * hp["batch_size"],
                        collate_fn=format_module(task.format).collator(tokenizer))
    yield from loader


@torch.inference_mode()
def predict(model: XtlModel, tokenizer: Any, task: Task, split: Split, hp: dict,
            precision: str = "fp32") -> tuple[list, torch.Tensor]:
    """(decoded predictions, logits) for every row of `split`, in row order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    decode = format_module(task.format).decode
    logits = []
    for batch in _batches(task, split, tokenizer, hp):
        batch = {k: v.to(device) for k, v in batch.items()}
        with _autocast(precision, device):
            logits.append(model(task.name, batch).float().cpu())
    model.train(was_training)
    stacked = torch.cat(logits)
    return decode(stacked), stacked


def score_split(model: XtlModel, tokenizer: Any, task: Task, split: Split, hp: dict,
                precision: str = "fp32") -> float:
    """The task's headline metric on one split (used for dev evaluation while training)."""
    predictions, _ = predict(model, tokenizer, task, split, hp, precision)
    return metrics.score(task, predictions, split.rows["label"], split.language)[task.metric]


def evaluate(model: XtlModel, tokenizer: Any, task: Task, splits: list[Split], hp: dict,
             precision: str = "fp32") -> tuple[list[dict], list[dict]]:
    """Metric records (one per language and metric) and per-example prediction records."""
    records, examples = [], []
    for split in splits:
        predictions, logits = predict(model, tokenizer, task, split, hp, precision)
        references = split.rows["label"]
        flags = ["collapsed"] if metrics.collapsed(predictions) else []
        for name, value in metrics.score(task, predictions, references, split.language).items():
            records.append({"task": task.name, "language": split.language, "split": split.split,
                            "metric": name, "value": value, "n": len(references),
                            "flags": flags})
        for i, (ex_id, pred, ref) in enumerate(zip(split.rows["id"], predictions, references,
                                                   strict=True)):
            examples.append({"id": ex_id, "task": task.name, "language": split.language,
                             "split": split.split, "prediction": task.label_names[pred],
                             "reference": task.label_names[ref],
                             "logits": [round(x, 5) for x in logits[i].tolist()]})
    return records, examples
