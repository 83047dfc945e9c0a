"""The synthetic tasks go through the real tasks' adapters: same Hub schema, same canonical rows.

For each synthetic task and a real counterpart with a sample in the test mirror (conftest.HUB): the
generator's rows, written as a Hub-layout Parquet file where the real task expects it, load
through the REAL task's adapter (xtl.data.sources.load over a mirror) into exactly the rows the
synthetic task gives, and the real sample loads through that adapter into the same columns
and types.
"""

from __future__ import annotations

import pytest
from conftest import HUB, write_hub

from xtl.data import sources, tasks
from xtl.offline.synth import ner, nli, qa, retrieval

# (synthetic task, its generator module, real task, language, split)
PAIRS = [
    ("synth-nli", nli, "xnli", "de", "validation"),
    ("synth-nli", nli, "xnli", "zh", "test"),
    ("synth-ner", ner, "panx", "de", "validation"),
    ("synth-ner", ner, "panx", "hi", "test"),
    ("synth-qa", qa, "xquad", "de", "validation"),
    ("synth-qa", qa, "xquad", "ar", "validation"),
    ("synth-retrieval", retrieval, "tatoeba", "ar", "validation"),
]
N = 12


def _rows(split: sources.Split) -> list[dict]:
    return split.rows.to_list()


@pytest.mark.parametrize(("synth", "module", "real", "language", "split"), PAIRS)
def test_rows_load_through_the_real_adapter(tmp_path, synth, module, real, language, split):
    real_task = tasks.get(real)
    generated = module.to_dataset(module.generate(language, split, N, seed=3))
    write_hub(tmp_path, real_task.hub_id, real_task.hub_config(language),
              real_task.source_split(split), generated.to_dict(), generated.features)
    via_real = sources.load(real_task, split, language, mirror=tmp_path)
    assert via_real.source == "mirror" and via_real.unusable == {}
    direct = sources.load(tasks.get(synth), split, language, seed=3, size=N)
    assert direct.source == "synthetic" and len(direct.rows) == N
    assert _rows(via_real) == _rows(direct)


@pytest.mark.parametrize(("synth", "module", "real", "language", "split"), PAIRS)
def test_real_sample_gives_the_same_columns(synth, module, real, language, split):
    real_task = tasks.get(real)
    folder = HUB / real_task.hub_id / real_task.hub_config(language)
    if not any(folder.glob(f"{real_task.source_split(split)}-*.parquet")):
        pytest.skip(f"no shared sample at {folder}")
    sample = sources.load(real_task, split, language, mirror=HUB)
    synthetic = sources.load(tasks.get(synth), split, language, seed=0, size=N)
    assert len(sample.rows) > 0
    assert sample.rows.features == synthetic.rows.features


def test_generated_splits_are_deterministic():
    for synth, _, _, language, split in PAIRS:
        task = tasks.get(synth)
        a = sources.load(task, split, language, seed=5, size=N)
        b = sources.load(task, split, language, seed=5, size=N)
        c = sources.load(task, split, language, seed=6, size=N)
        assert _rows(a) == _rows(b) and a.fingerprint == b.fingerprint
        assert _rows(a) != _rows(c) and a.fingerprint != c.fingerprint
