"""The hyperparameters a cell trains with: names, defaults, types, bounds, which formats read
each one, and which are per task (docs/contracts.md section 1; the recipe: docs/protocol.md).

The experiment file (`xtl.grid.config`), the plan, the cells and training all read these tables;
they live below all of them so that none of those imports the experiment-file module.
"""

from __future__ import annotations

import math
import re
from typing import Any

from xtl.core.errors import ConfigError, unknown
from xtl.data.tasks.tagging_windows import TAG_SUBTOKEN_RULES

# The paper's recipe (jiant's released X-STILTs settings; docs/protocol.md).
HPARAM_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-5,
    "epochs": 3,
    "batch_size": 32,
    "grad_accum": 1,
    "max_length": 256,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "max_grad_norm": 1.0,
    "adam_epsilon": 1e-8,
    "eval_every": 0,  # steps between dev evaluations; 0 = at the end of every epoch
    "patience": 0,  # dev evaluations without improvement before stopping; 0 = never stop
    "precision": "auto",  # auto (bf16 where the device has it, CPU included) | bf16 | fp16 | fp32
    "input_prefix": "",  # e.g. "query: " for e5 models
    "doc_stride": 128,  # extractive QA: overlap between windows of a long context
    "max_answer_length": 30,  # extractive QA: longest answer span (tokens) at decoding
    "group_by_length": True,  # batches of similar length: less padding
    "gradient_checkpointing": False,  # recompute activations: less memory, ~30% slower
    "save_every": 0,  # optimizer steps between resumable checkpoints; 0 = at each dev evaluation
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "pooling": "mean",  # sentence embeddings for retrieval: "mean" (masked) or "cls"
    "layer": -1,  # retrieval layer: index (-1 = last) or a fraction of depth (0.5 = middle)
    # Multi-task stages (xtl.training.sampling): which task each optimizer step trains on.
    "multitask_sampler": "proportional",  # proportional | temperature | uniform (jiant's)
    "multitask_cap": 0,  # examples counted per task (sampling AND step count); 0 = no cap
    "multitask_temperature": 2.0,  # temperature sampler: p ~ (epochs x min(n, cap))^(1/T)
    "multitask_aggregate": "mean",  # dev score for best/patience: mean of the tasks, or a task
    "mlm_probability": 0.15,  # MLM tasks: share of tokens masked
    "mlm_weight": 0.0,  # MLM tasks' share of the steps, on top of the labelled tasks'; 0 = sampled
}
# Hyperparameters that existed when contract v1 was frozen: always in a cell's identity.
V1_HPARAMS = frozenset(HPARAM_DEFAULTS)
# Added after v1, each with the value that reproduces what every v1 cell computed. Such a key
# enters a cell's identity only where the cell's tasks read it (READ_BY) and its value differs
# from that v1 behaviour, so adding a key renames no cell, and a new default that changes what
# a cell computes (tag_subtoken) renames exactly the cells it changes (docs/contracts.md).
POST_V1: dict[str, Any] = {
    # keep the word-embedding matrix fixed (small data; e5-small's 96 M of 118 M parameters:
    # no gradient, no optimizer state for it, much faster steps on CPU)
    "freeze_embeddings": False,
    # the sub-token of a word that carries its tag: "first" (XTREME's and jiant's rule: the
    # first piece, a bare word-start marker included) or "content" (v1: the first piece that
    # is not a bare marker)
    "tag_subtoken": "content",
    # dev rows the checkpoint selection evaluates: the first N (jiant: 500); 0 = all
    "dev_subset": 0,
}
HPARAM_DEFAULTS |= {"freeze_embeddings": False, "tag_subtoken": "first", "dev_subset": 0}
# Keys only tasks of some formats read (every other key: every trained cell reads it).
READ_BY: dict[str, tuple[str, ...]] = {
    "pooling": ("retrieval",), "layer": ("retrieval",), "tag_subtoken": ("tagging",),
    "doc_stride": ("span_qa", "tagging"), "max_answer_length": ("span_qa",),
    "mlm_probability": ("mlm",),
}
# TASK values: one per task of a cell (a multi-task stage featurises, decodes and counts the
# epochs of each task with its own); every other key is a LOOP value, one per cell.
TASK_KEYS = ("epochs", "max_length", "input_prefix", "doc_stride", "max_answer_length",
             "tag_subtoken", "mlm_probability", "pooling", "layer")
MULTITASK_KEYS = ("multitask_sampler", "multitask_cap", "multitask_temperature",
                  "multitask_aggregate", "mlm_weight")
# How a model wants its inputs and sentence embeddings (e5: "query: " prefixes, last-layer
# mean pooling): the preset beats the task's recipe for these (still below the file).
MODEL_INTRINSIC = ("input_prefix", "pooling", "layer")
HPARAM_TYPES: dict[str, tuple[type, ...]] = {
    "learning_rate": (float, int), "epochs": (int, float), "batch_size": (int,),
    "grad_accum": (int,), "max_length": (int,), "warmup_ratio": (float, int),
    "weight_decay": (float, int), "max_grad_norm": (float, int), "adam_epsilon": (float,),
    "eval_every": (int,), "patience": (int,), "precision": (str,), "input_prefix": (str,),
    "doc_stride": (int,), "max_answer_length": (int,), "group_by_length": (bool,),
    "gradient_checkpointing": (bool,), "save_every": (int,), "device": (str,),
    "pooling": (str,), "layer": (int, float),
    "multitask_sampler": (str,), "multitask_cap": (int,), "multitask_temperature": (float, int),
    "multitask_aggregate": (str,), "mlm_probability": (float,), "mlm_weight": (float, int),
    "freeze_embeddings": (bool,), "tag_subtoken": (str,), "dev_subset": (int,),
}
MULTITASK_SAMPLERS = ("proportional", "temperature", "uniform")
PHASES = ("intermediate", "target")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SPLITS = ("validation", "test")


def split_scope(key: str) -> tuple[str | None, str]:
    """'target.learning_rate' -> ('target', 'learning_rate'); 'epochs' -> (None, 'epochs')."""
    if "." in key:
        phase, name = key.split(".", 1)
        if phase not in PHASES:
            raise unknown("hyperparameter scope", phase, PHASES)
        return phase, name
    return None, key


def check_hparam(key: str, value: Any, where: str) -> None:
    _, name = split_scope(key)
    if name not in HPARAM_TYPES:
        raise unknown(f"hyperparameter in {where}", name, HPARAM_TYPES)
    types = HPARAM_TYPES[name]
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        expected = " or ".join(t.__name__ for t in HPARAM_TYPES[name])
        raise ConfigError(f"{where}: {key} = {value!r} has the wrong type; expected {expected}")
    if isinstance(value, float) and not math.isfinite(value):  # YAML's .nan / .inf
        raise ConfigError(f"{where}: {key} = {value!r} must be a finite number")
    if name in ("learning_rate", "epochs", "batch_size", "grad_accum", "max_length", "doc_stride",
                "max_answer_length", "max_grad_norm", "adam_epsilon") and value <= 0:
        raise ConfigError(f"{where}: {key} = {value!r} must be > 0")
    if name in ("eval_every", "patience", "save_every", "weight_decay") and value < 0:
        raise ConfigError(f"{where}: {key} = {value!r} must be >= 0")
    if name == "device" and not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise ConfigError(f"{where}: unknown device {value!r}; expected auto, cpu, cuda or "
                          "cuda:N")
    if name == "warmup_ratio" and not 0 <= value < 1:
        raise ConfigError(f"{where}: {key} = {value!r} must be in [0, 1)")
    if name == "pooling" and value not in ("mean", "cls"):
        raise unknown(f"pooling in {where}", value, ("mean", "cls"))
    if name == "precision" and value not in PRECISIONS:
        raise unknown(f"precision in {where}", value, PRECISIONS)
    if name == "multitask_sampler" and value not in MULTITASK_SAMPLERS:
        raise unknown(f"multitask_sampler in {where}", value, MULTITASK_SAMPLERS)
    if name == "multitask_cap" and value < 0:
        raise ConfigError(f"{where}: {key} = {value!r} must be >= 0 (0 = no cap)")
    if name == "multitask_temperature" and value <= 0:
        raise ConfigError(f"{where}: {key} = {value!r} must be > 0")
    if name == "mlm_probability" and not 0 < value < 1:
        raise ConfigError(f"{where}: {key} = {value!r} must be in (0, 1)")
    if name == "mlm_weight" and not 0 <= value < 1:
        raise ConfigError(f"{where}: {key} = {value!r} must be in [0, 1)")
    if name == "tag_subtoken" and value not in TAG_SUBTOKEN_RULES:
        raise unknown(f"tag_subtoken in {where}", value, TAG_SUBTOKEN_RULES)
    if name == "dev_subset" and value < 0:
        raise ConfigError(f"{where}: {key} = {value!r} must be >= 0 (0 = the whole dev set)")


def reads(key: str, formats: set[str] | frozenset[str]) -> bool:
    """Whether a cell whose tasks have `formats` reads hyperparameter `key`."""
    return key not in READ_BY or bool(set(READ_BY[key]) & set(formats))
