"""One pretrained encoder with one head per task, and checkpoints in the contract's layout.

A checkpoint directory holds `encoder/` (a plain transformers directory: config, safetensors
weights, tokenizer), `heads.safetensors` + `heads.json`, and `checkpoint.json`, written last,
with a checksum over the rest and the id of the cell that made it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

import xtl
from xtl.core.atomicdir import recover, replace_dir
from xtl.core.errors import ModelError
from xtl.core.faults import fault
from xtl.core.store import atomic_write_json, read_json_object, sha256_tree
from xtl.data import mlm
from xtl.data.tasks import Task, get_format
from xtl.data.tokenizer_state import without_call_state

MARKER = "checkpoint.json"


class XtlModel(nn.Module):
    """Encoder + a ModuleDict of task heads; `forward(task, batch)` returns the head's logits.

    Several heads share the encoder in a multi-task stage; each step runs one of them. Each
    format's `bind_head` gives its head the encoder once (the MLM head ties its output
    projection to the word embeddings).
    """

    def __init__(self, encoder: nn.Module, tasks: list[Task]):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.tasks = {t.name: t for t in tasks}
        self.heads = nn.ModuleDict({t.name: get_format(t.format).make_head(t, hidden)
                                    for t in tasks})
        for name, t in self.tasks.items():
            get_format(t.format).bind_head(self.heads[name], encoder)

    def forward(self, task: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")
                  if k in batch}
        hidden = self.encoder(**inputs).last_hidden_state
        return self.heads[task](hidden, batch)


@dataclass
class LoadReport:
    """Which tensors came from where: the notebook prints it so reuse is never a guess."""

    encoder_source: str
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    parent: dict | None = None
    pretrained_heads: list[str] = field(default_factory=list)  # head tensors from the source

    def summary(self) -> str:
        lines = [f"encoder from {self.encoder_source}: {len(self.loaded)} tensors loaded"]
        if self.missing:
            lines.append(f"  not in the source, freshly initialised: {self.missing}")
        if self.pretrained_heads:
            lines.append(f"head tensors from the source's pretrained MLM head: "
                         f"{self.pretrained_heads}")
        lines.append(f"new (random init) head tensors: {len(self.new)}: {self.new}")
        return "\n".join(lines)


def build(location: Path | str, tasks: list[Task], init_checkpoint: Path | None = None,
          seed: int = 0, expect_like: Path | str | None = None
          ) -> tuple[XtlModel, Any, LoadReport]:
    """Load an encoder (a pretrained model or a checkpoint's encoder) and add fresh heads.

    `seed` fixes the fresh heads' (and any missing encoder tensors') initialisation.
    `expect_like` (the base model the caller means): a checkpoint whose architecture or
    tokenizer differs from it is refused before its weights are loaded.
    """
    # transformers is imported here, not at module level: the runner and workers import this
    # module (verify_checkpoint) without loading any model
    from transformers import AutoModel, AutoTokenizer

    parent = None
    if init_checkpoint is not None:
        parent = verify_checkpoint(init_checkpoint)
        location = Path(init_checkpoint) / "encoder"
        if expect_like is not None:
            _check_config_like(location, expect_like)
    torch.manual_seed(seed)
    encoder, info = AutoModel.from_pretrained(str(location), output_loading_info=True)
    tokenizer = AutoTokenizer.from_pretrained(str(location))
    if init_checkpoint is not None and expect_like is not None:
        _check_tokenizer_like(tokenizer, location, expect_like)
    model = XtlModel(encoder, tasks)
    missing = sorted(info.get("missing_keys", []))
    loaded = sorted(k for k in encoder.state_dict() if k not in set(missing))
    # MLM heads start from the checkpoint's own pretrained MLM transform where it has one.
    pretrained = [f"heads.{name}.{k}" for name, head in model.heads.items()
                  if isinstance(head, mlm.MaskedLMHead)
                  for k in mlm.load_pretrained_head(head, Path(location))]
    new = sorted(f"heads.{k}" for k in model.heads.state_dict()
                 if f"heads.{k}" not in set(pretrained))
    return model, tokenizer, LoadReport(str(location), loaded, new, missing, parent, pretrained)


# What must agree between a checkpoint and the base model it claims to continue.
SAME_CONFIG = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers")


def _check_config_like(location: Path, expect_like: Path | str) -> None:
    from transformers import AutoConfig

    found, expected = AutoConfig.from_pretrained(str(location)), AutoConfig.from_pretrained(
        str(expect_like))
    diffs = [f"{key} {getattr(found, key, None)!r} (expected {getattr(expected, key, None)!r})"
             for key in SAME_CONFIG if getattr(found, key, None) != getattr(expected, key, None)]
    if diffs:
        raise ModelError(f"checkpoint {str(location.parent)!r} is of another model than "
                         f"{str(expect_like)!r}: " + "; ".join(diffs))


def _check_tokenizer_like(tokenizer: Any, location: Path, expect_like: Path | str) -> None:
    from transformers import AutoTokenizer

    expected = AutoTokenizer.from_pretrained(str(expect_like))
    found = {"vocabulary size": len(tokenizer), "pad id": tokenizer.pad_token_id}
    want = {"vocabulary size": len(expected), "pad id": expected.pad_token_id}
    diffs = [f"{key} {found[key]!r} (expected {want[key]!r})" for key in found
             if found[key] != want[key]]
    if diffs:
        raise ModelError(f"checkpoint {str(location.parent)!r} has another tokenizer than "
                         f"{str(expect_like)!r}: " + "; ".join(diffs))


def save_checkpoint(model: XtlModel, tokenizer: Any, dest: Path, meta: dict,
                    state: dict[str, torch.Tensor] | None = None) -> dict:
    """Write a complete checkpoint to `dest` atomically (temp dir, then rename).

    `state`: the model's full state dict when its own tensors are shards (FSDP: gathered by
    the caller); by default the model's.
    """

    def fill(tmp: Path) -> dict:
        if state is None:
            model.encoder.save_pretrained(tmp / "encoder")
            head_state = model.heads.state_dict()
        else:
            model.encoder.save_pretrained(tmp / "encoder", state_dict={
                k.removeprefix("encoder."): v for k, v in state.items()
                if k.startswith("encoder.")})
            head_state = {k.removeprefix("heads."): v for k, v in state.items()
                          if k.startswith("heads.")}
        with without_call_state(tokenizer):  # the same bytes whatever encoded before
            tokenizer.save_pretrained(tmp / "encoder")
        heads = {k: v.detach().cpu().contiguous() for k, v in head_state.items()}
        save_file(heads, tmp / "heads.safetensors")
        head_specs = {name: {"format": t.format, "label_names": list(t.label_names)}
                      for name, t in model.tasks.items()}
        (tmp / "heads.json").write_text(json.dumps(head_specs, indent=2, sort_keys=True))
        fault("checkpoint_write")  # crash tests: weights written, marker not yet
        record = {"xtl_version": xtl.__version__, "checksum": sha256_tree(tmp),
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **meta}
        atomic_write_json(tmp / MARKER, record)
        return record

    return replace_dir(Path(dest), fill)


def verify_checkpoint(path: Path) -> dict:
    """The checkpoint's record if it is complete and its checksum matches; else `ModelError`."""
    path = Path(path)
    recover(path)  # a write that died between its two renames left the old copy complete
    marker = path / MARKER
    if not marker.is_file():
        raise ModelError(f"checkpoint {str(path)!r} is incomplete or missing ({MARKER} absent)")
    record = read_json_object(marker)
    if record is None:
        raise ModelError(f"checkpoint {str(path)!r} is corrupt: {MARKER} is not a JSON object")
    actual = sha256_tree(path, exclude=(MARKER,))
    if actual != record.get("checksum"):
        raise ModelError(f"checkpoint {str(path)!r} is corrupt: checksum {actual[:12]} does not "
                         f"match the recorded {str(record.get('checksum'))[:12]}")
    return record


def load_heads(model: XtlModel, checkpoint: Path) -> None:
    """Load saved head weights for the tasks this model has (evaluation of a trained cell)."""
    state = load_file(Path(checkpoint) / "heads.safetensors")
    model.heads.load_state_dict(state)
