"""Encoder parameter counts for the analysis (the x axis of the model-size questions): read from
weights found locally (safetensors headers only, no tensor is loaded), else a table of common
checkpoints.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from xtl.model import zoo

# Parameter counts of common checkpoints, used only when no weights of the model are found
# locally (a run directory's checkpoints, the xtl cache or the Hugging Face cache). Encoder
# parameters with embeddings, as the model cards / XLM-R paper give them (rounded).
KNOWN_PARAMETERS = {
    "xlm-roberta-base": 278_000_000, "FacebookAI/xlm-roberta-base": 278_000_000,
    "xlm-roberta-large": 560_000_000, "FacebookAI/xlm-roberta-large": 560_000_000,
    "facebook/xlm-roberta-xl": 3_500_000_000, "facebook/xlm-roberta-xxl": 10_700_000_000,
    "microsoft/Multilingual-MiniLM-L12-H384": 118_000_000,
    "bert-base-multilingual-cased": 178_000_000,
    "multilingual-e5-small": 117_650_000, "intfloat/multilingual-e5-small": 117_650_000,
    "intfloat/multilingual-e5-base": 278_000_000, "intfloat/multilingual-e5-large": 560_000_000,
}


def _safetensors_count(path: Path) -> int:
    """Number of parameters in a .safetensors file, from its JSON header (no tensor is read)."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def _weights_count(directory: Path) -> int | None:
    single = directory / "model.safetensors"
    if single.is_file():
        return _safetensors_count(single)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text())["weight_map"].values())
        return sum(_safetensors_count(directory / s) for s in shards)
    return None


def parameter_count(model: str, run_dirs: Sequence[Path] = ()) -> int | None:
    """Encoder parameters of `model`: read from weights found locally (a checkpoint of this
    model in `run_dirs`, the xtl model cache, a local path, the Hugging Face cache), else
    `KNOWN_PARAMETERS`, else None."""
    for root in run_dirs:
        count = _count_in_run(Path(root), model)
        if count:
            return count
    for directory in _local_dirs(model):
        count = _weights_count(directory)
        if count:
            return count
    return KNOWN_PARAMETERS.get(model)


def _count_in_run(root: Path, model: str) -> int | None:
    plan = json.loads((root / "plan.json").read_text(encoding="utf-8"))
    for cell in plan["cells"]:
        if cell["axes"].get("model") == model:
            count = _weights_count(root / "checkpoints" / cell["id"] / "best" / "encoder")
            if count:
                return count
    return None


def _local_dirs(model: str) -> list[Path]:
    dirs = []
    if model in zoo.PRESETS:
        dirs += sorted((zoo.cache_dir() / "models").glob(f"{zoo.PRESETS[model].revision}*"))
        dirs += sorted((zoo.cache_dir() / "models").glob("*e5*")) if "e5" in model else []
    elif Path(model).expanduser().is_dir():
        dirs.append(Path(model).expanduser())
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(model, "config.json")
            if isinstance(found, str):
                dirs.append(Path(found).parent)
        except Exception:  # no cache, or a name the Hub client refuses
            pass
    return dirs
