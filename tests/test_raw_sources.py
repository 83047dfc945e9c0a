"""The third source: raw release files give the same canonical rows as the Hub copy."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import SHARED

from xtl.data import sources, tasks

RAW = SHARED / "data" / "raw"


@pytest.fixture
def raw_root():
    if not RAW.is_dir():
        pytest.skip("../shared/data/raw is not present (fresh clone)")
    return RAW


@pytest.mark.parametrize("language", ["en", "ar", "hi", "ro"])
def test_xquad_raw_equals_mirror(raw_root, hub_mirror, language):
    task = tasks.get("xquad")
    raw_only = dataclasses.replace(task, hub_languages=())
    assert raw_only.from_raw(language) and not task.from_raw(language)
    from_raw = sources.load(raw_only, "validation", language, raw=raw_root)
    from_hub = sources.load(task, "validation", language, hub_mirror)
    assert from_raw.source == "raw" and from_hub.source == "mirror"
    assert len(from_raw.rows) == len(from_hub.rows) == 225
    keep = ["id", "question", "context", "answers"]
    assert from_raw.rows.select_columns(keep)[:] == from_hub.rows.select_columns(keep)[:]
    # both strip contexts as the Hub loader does, so both re-locate the same stale starts
    assert from_raw.unusable == from_hub.unusable
    assert bool(from_raw.unusable) == (language in ("ar", "hi"))


# Bad raw roots and files: tests/test_bad_inputs.py.
