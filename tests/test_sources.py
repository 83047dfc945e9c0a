"""Rows from the real Hub samples: through a mirror, and through the Hub code path itself."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import datasets
import pytest

from xtl.core import hub
from xtl.core.errors import DataError
from xtl.data import sources, tasks

HUB_TASKS = sorted(name for name, t in tasks.REGISTRY.items() if t.hub_id)


def test_mnli_from_mirror(hub_mirror):
    train = sources.load(tasks.get("mnli"), "train", "en", hub_mirror)
    assert (train.source, len(train.rows)) == ("mirror", 3)
    assert sorted(train.rows.column_names) == ["id", "label", "text_a", "text_b"]
    assert train.rows["label"] == [1, 0, 0]  # neutral, entailment, entailment (real sample)
    dev = sources.load(tasks.get("mnli"), "validation", "en", hub_mirror)
    assert len(dev.rows) == 2 and dev.location.endswith("glue/mnli")  # validation_matched


def test_mnli_test_split_has_no_labels(hub_mirror):
    with pytest.raises(DataError, match="no usable rows.*-1"):
        sources.load(tasks.get("mnli"), "test", "en", hub_mirror)


@pytest.mark.parametrize("language", tasks.get("xnli").languages)
def test_xnli_every_language_from_mirror(hub_mirror, language):
    dev = sources.load(tasks.get("xnli"), "validation", language, hub_mirror)
    assert len(dev.rows) == 1
    assert dev.rows["id"] == [f"{language}-validation-0000000"]
    assert set(dev.rows["label"]) <= {0, 1, 2}


def test_xnli_parallel_rows_share_the_label(hub_mirror):
    labels = {lang: sources.load(tasks.get("xnli"), "test", lang, hub_mirror).rows["label"]
              for lang in ("en", "de", "zh", "ar")}
    assert len({tuple(v) for v in labels.values()}) == 1


def _serve_from(hub_mirror, calls, stand_ins=None):
    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        folder = hub_mirror / path / (name or "data")
        if stand_ins is not None and not folder.is_dir():
            folder = stand_ins / path / (name or "data")
        files = sorted(str(p) for p in folder.glob(f"{split}-*.parquet"))
        assert files, f"the kit asked for {path}/{name}:{split}, which the Hub sample lacks"
        return real(path="parquet", data_files={split: files}, split=split)

    real = datasets.load_dataset
    return fake_load_dataset


# task -> [(canonical split, language, the (repo id, config, split) the kit must request)]
EXPECTED_REQUESTS = {
    "mnli": [("train", "en", ("nyu-mll/glue", "mnli", "train")),
             ("validation", "en", ("nyu-mll/glue", "mnli", "validation_matched"))],
    "xnli": [("validation", "de", ("facebook/xnli", "de", "validation")),
             ("test", "zh", ("facebook/xnli", "zh", "test")),
             ("train", "en", ("facebook/xnli", "en", "train"))],
}


def all_requests() -> dict:
    """This file's table plus the `HUB_REQUESTS` of every tests/test_tasks_*.py module."""
    table = dict(EXPECTED_REQUESTS)
    for path in sorted(Path(__file__).parent.glob("test_tasks_*.py")):
        table.update(getattr(importlib.import_module(path.stem), "HUB_REQUESTS", {}))
    return table


def _test_modules():
    return [importlib.import_module(p.stem)
            for p in sorted(Path(__file__).parent.glob("test_tasks_*.py"))]


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Hub-schema stand-ins written by test modules for tasks with no real sample."""
    root = tmp_path_factory.mktemp("stand-ins")
    for module in _test_modules():
        getattr(module, "write_missing_hub_samples", lambda root: None)(root)
    return root


def test_every_hub_task_has_an_expected_request():
    assert sorted(all_requests()) == HUB_TASKS


@pytest.mark.parametrize("name", HUB_TASKS)
def test_hub_contract(hub_mirror, stand_ins, monkeypatch, name):
    """The real `load_dataset` call, with only the I/O served from the local samples."""
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", _serve_from(hub_mirror, calls, stand_ins))
    monkeypatch.setattr(hub, "unavailable", lambda: None)  # the Hub, as the fake serves it
    requests = all_requests()
    if name not in requests:
        pytest.fail(f"task {name!r} has no expected Hub request in any HUB_REQUESTS table")
    for split, language, expected in requests[name]:
        loaded = sources.load(tasks.get(name), split, language, mirror=None)
        assert calls[-1] == expected
        assert loaded.source == "hub" and len(loaded.rows) > 0


def test_string_labels_and_unknown_labels():
    task = tasks.Task(name="t", format="pair_classification", languages=("en",),
                      label_names=("entailment", "neutral", "contradiction"),
                      fields={"text_a": "a", "text_b": "b", "label": "gold"},
                      label_aliases={"contradictory": "contradiction"})
    raw = datasets.Dataset.from_list([{"a": "x", "b": "y", "gold": "contradictory"},
                                      {"a": "x", "b": "y", "gold": ""},
                                      {"a": "x", "b": "y", "gold": "neutral"}])
    rows, unusable = sources.canonicalize(task, raw, "validation", "en")
    assert rows["label"] == [2, 1] and unusable == {"no label (-1 or empty)": 1}
    bad = datasets.Dataset.from_list([{"a": "x", "b": "y", "gold": "maybe"}])
    with pytest.raises(DataError, match="row 0: label 'maybe' is outside the label set"):
        sources.canonicalize(task, bad, "validation", "en")


def test_classlabel_order_is_checked():
    task = tasks.get("mnli")
    raw = datasets.Dataset.from_dict(
        {"premise": ["p"], "hypothesis": ["h"], "idx": [0], "label": [0]},
        features=datasets.Features({"premise": datasets.Value("string"),
                                    "hypothesis": datasets.Value("string"),
                                    "idx": datasets.Value("int32"),
                                    "label": datasets.ClassLabel(names=["yes", "no", "maybe"])}))
    with pytest.raises(DataError, match="expects"):
        sources.canonicalize(task, raw, "train", "en")


def test_synthetic_task_goes_through_the_same_adapter():
    loaded = sources.load(tasks.get("synth-nli"), "validation", "zh", seed=0)
    assert loaded.source == "synthetic" and len(loaded.rows) == 300
    assert sorted(loaded.rows.column_names) == ["id", "label", "text_a", "text_b"]
    again = sources.load(tasks.get("synth-nli"), "validation", "zh", seed=0)
    assert again.fingerprint == loaded.fingerprint and again.rows[:5] == loaded.rows[:5]


def test_unknown_language_and_split():
    with pytest.raises(DataError, match="'xx'"):
        sources.load(tasks.get("xnli"), "validation", "xx")
    with pytest.raises(Exception, match="split"):
        sources.load(tasks.get("xnli"), "dev", "de")


def test_loading_never_fingerprints_a_task_or_its_generator(monkeypatch):
    """`datasets` fingerprints every `map` function by pickling what it closes over. A Task
    carries its synthetic generator, and pickling that drags in every row the process has
    generated so far: megabytes and seconds per split, more with each load (BENCHMARKS.md)."""
    from datasets import fingerprint

    sizes: list[int] = []
    original = fingerprint.dumps

    def recording(value):
        out = original(value)
        sizes.append(len(out))
        return out

    monkeypatch.setattr(fingerprint, "dumps", recording)
    nli = tasks.get("synth-nli")
    for language in ("en", "de"):
        split = sources.load(nli, "validation", language, size=30)
        assert len(split.rows) == 30
    assert sizes and max(sizes) < 50_000, sorted(sizes)[-3:]


# The synthetic rows' fingerprints (24 rows of each) as the generators made them at 764b3db,
# before the package moved into layer sub-packages. The demo's metrics rest on these rows: a
# change to a generator must be deliberate (a new synth.REVISION, and these pins with it).
SYNTHETIC_ROWS = {
    ("synth-nli", "en", "train"): "4fdea373148db7de",
    ("synth-nli", "de", "validation"): "f56264fbf96ff78f",
    ("synth-ner", "en", "train"): "a27fd602f472c2fc",
    ("synth-ner", "de", "validation"): "44aa9e6d3fa52df6",
    ("synth-qa", "en", "train"): "02cd9dce4ac51cba",
    ("synth-qa", "de", "validation"): "8c1d79f41d832095",
    ("synth-retrieval", "de", "validation"): "694ec8a96ddf6ddd",
    ("synth-nli_target-train", "en", "train"): "cde256cee87fb388",
}


@pytest.mark.parametrize("name,language,split", sorted(SYNTHETIC_ROWS))
def test_synthetic_rows_are_pinned(name, language, split):
    rows = sources.load(tasks.get(name), split, language, size=24)
    assert rows.fingerprint == SYNTHETIC_ROWS[name, language, split]


# --- generated rows: made once per machine, read back from $XTL_CACHE/generated ---------------

@pytest.fixture()
def counted_nli(monkeypatch, tmp_path):
    """synth-nli with a fresh cache, counting the calls that reach its generator."""
    from xtl.offline.synth import nli

    monkeypatch.setenv("XTL_CACHE", str(tmp_path))
    calls: list[tuple] = []
    real = nli.generate

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(nli, "generate", counting)
    return tasks.get("synth-nli"), calls, tmp_path / "generated"


def _same(a: sources.Split, b: sources.Split) -> bool:
    return (a.fingerprint, a.rows.to_list(), a.rows.features) == (
        b.fingerprint, b.rows.to_list(), b.rows.features)


def test_generated_rows_are_read_back_not_made_again(counted_nli):
    task, calls, folder = counted_nli
    first = sources.load(task, "validation", "de", size=30)
    assert len(calls) == 1 and len(list(folder.glob("synth-nli-de-validation-*.json"))) == 1
    again = sources.load(task, "validation", "de", size=30)
    assert len(calls) == 1 and _same(first, again)
    assert again.fingerprint == sources.load(task, "validation", "de", size=30).fingerprint
    qa = tasks.get("synth-qa")  # a generator that gives typed rows (nested features)
    made, read = (sources.load(qa, "validation", "de", size=12) for _ in range(2))
    assert _same(made, read) and len(list(folder.glob("synth-qa-*.json"))) == 1


def test_damaged_generated_rows_are_made_again_with_a_warning(counted_nli):
    task, calls, folder = counted_nli
    first = sources.load(task, "validation", "de", size=30)
    (entry,) = folder.glob("*.json")
    edited = json.loads(entry.read_text())
    edited["rows"][0]["premise"] += " edited"
    for damage in (entry.read_text()[:200], json.dumps(edited)):  # truncated; one row edited
        entry.write_text(damage)
        with pytest.warns(UserWarning, match="damaged; generating them again"):
            again = sources.load(task, "validation", "de", size=30)
        assert _same(first, again)
    assert len(calls) == 3


def test_other_code_or_a_full_disk_never_serves_stale_rows(counted_nli, monkeypatch):
    from xtl.data import generated

    task, calls, folder = counted_nli
    sources.load(task, "validation", "de", size=30)
    monkeypatch.setattr(generated, "code_digest", lambda: "an edited generator")
    sources.load(task, "validation", "de", size=30)
    assert len(calls) == 2 and len(list(folder.glob("*.json"))) == 2

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(generated, "atomic_write_json", full)
    with pytest.warns(UserWarning, match="not cached.*No space left"):
        rows = sources.load(task, "validation", "fr", size=30)
    assert len(rows.rows) == 30 and len(calls) == 3


def test_a_generator_outside_the_kit_is_never_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("XTL_CACHE", str(tmp_path))

    def rows(language: str, split: str, n: int, seed: int) -> list[dict]:
        return [{"a": f"row {i}", "b": "b", "y": i % 2} for i in range(n)]

    toy = tasks.Task(name="toy-pairs", format="pair_classification", languages=("en",),
                     label_names=("no", "yes"), fields={"text_a": "a", "text_b": "b", "label": "y"},
                     generator=rows, sizes={"validation": 4})
    assert len(sources.load(toy, "validation", "en").rows) == 4
    assert not (tmp_path / "generated").exists()
