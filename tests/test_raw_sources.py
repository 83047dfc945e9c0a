"""The third source: raw release files give the same canonical rows as the Hub copy."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import SHARED

from xtl import sources, tasks
from xtl.errors import DataError

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


def test_raw_root_missing_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("XTL_RAW_DIR", raising=False)
    raw_only = dataclasses.replace(tasks.get("xquad"), hub_languages=())
    with pytest.raises(DataError, match="raw_dir.*XTL_RAW_DIR.*xquad/"):
        sources.load(raw_only, "validation", "de")
    with pytest.raises(DataError, match="not a directory"):
        sources.resolve_raw("/no/such/raw")


def test_malformed_raw_json_names_file_and_line(tmp_path):
    (tmp_path / "xquad").mkdir()
    (tmp_path / "xquad" / "xquad.de.json").write_text('{"data": [\n  {"title": "x",,}\n]}')
    raw_only = dataclasses.replace(tasks.get("xquad"), hub_languages=())
    with pytest.raises(DataError, match=r"xquad\.de\.json:2:\d+: not valid SQuAD JSON"):
        sources.load(raw_only, "validation", "de", raw=tmp_path)
