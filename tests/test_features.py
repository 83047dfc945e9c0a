"""Tokenised splits are cached on disk, keyed by everything that changes them."""

from __future__ import annotations

import pytest

from xtl.core.hparams import Hparams
from xtl.data import sources, tasks
from xtl.data.features import cache_key, features
from xtl.model.models import build

HP = Hparams({"max_length": 32})
NLI = tasks.get("synth-nli")


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    return build(tiny_dir, [NLI])[1]


def test_second_call_reads_the_cache(tokenizer, monkeypatch):
    split = sources.load(NLI, "validation", "de", size=40)
    first = features(NLI, split, tokenizer, HP)
    fmt = tasks.get_format(NLI.format)
    monkeypatch.setattr(fmt, "featurize", lambda *a, **k: pytest.fail("tokenised twice"))
    second = features(NLI, split, tokenizer, HP)
    assert second["input_ids"] == first["input_ids"] and len(second) == 40
    assert max(len(ids) for ids in second["input_ids"]) <= 32


def test_key_changes_with_what_changes_features(tokenizer):
    split = sources.load(NLI, "validation", "de", size=40)
    other = sources.load(NLI, "validation", "de", size=40, seed=1)
    key = cache_key(NLI, split, tokenizer, HP, False)
    assert key == cache_key(NLI, split, tokenizer, HP | {"learning_rate": 1.0}, False)
    assert key != cache_key(NLI, split, tokenizer, HP | {"max_length": 64}, False)
    assert key != cache_key(NLI, split, tokenizer, HP | {"input_prefix": "query: "}, False)
    assert key != cache_key(NLI, split, tokenizer, HP, True)
    assert key != cache_key(NLI, other, tokenizer, HP, False)


def test_key_ignores_what_earlier_calls_left_on_the_tokenizer(tiny_dir):
    split = sources.load(NLI, "validation", "de", size=40)
    fresh, used = build(tiny_dir, [NLI])[1], build(tiny_dir, [NLI])[1]
    used(["a b c d e"], truncation=True, max_length=3, padding="max_length")
    left = used.backend_tokenizer.truncation, used.backend_tokenizer.padding
    assert cache_key(NLI, split, used, HP, False) == cache_key(NLI, split, fresh, HP, False)
    assert (used.backend_tokenizer.truncation, used.backend_tokenizer.padding) == left


def test_a_stale_damage_verdict_never_deletes_a_good_entry(tokenizer, monkeypatch):
    """Two processes share a cache: one judged the old entry damaged, the other rebuilt it in
    the meantime; discarding must keep the good entry the other is about to read."""
    from xtl.core.store import cache_dir
    from xtl.data.features import _discard, damage

    split = sources.load(NLI, "validation", "de", size=24)
    first = features(NLI, split, tokenizer, HP)
    entry = cache_dir() / "features" / cache_key(NLI, split, tokenizer, HP, False)
    _discard(entry)  # the stale verdict
    assert entry.is_dir() and damage(entry) is None
    fmt = tasks.get_format(NLI.format)
    monkeypatch.setattr(fmt, "featurize", lambda *a, **k: pytest.fail("tokenised again"))
    assert features(NLI, split, tokenizer, HP)["input_ids"] == first["input_ids"]


def test_an_entry_that_vanishes_while_it_is_read_is_tokenised_again(tokenizer, monkeypatch):
    import datasets

    split = sources.load(NLI, "validation", "de", size=24)
    first = features(NLI, split, tokenizer, HP)["input_ids"]
    real, calls = datasets.load_from_disk, []

    def vanishing(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            raise FileNotFoundError(f"No such file or directory: '{path}'")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_from_disk", vanishing)
    assert features(NLI, split, tokenizer, HP)["input_ids"] == first
    assert len(calls) == 2  # the cached read that failed, then the rebuilt entry's
