"""The real samples shipped with xtl (xtl/offline/samples): package data with their licences,
read by the kit's raw readers whatever raw_dir says, and named `bundled` in provenance."""

from __future__ import annotations

import fnmatch

import pytest
from conftest import REPO

from xtl.data import sources, tasks
from xtl.offline import samples

ROOT = REPO / "xtl" / "offline" / "samples"


def test_every_shipped_file_is_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["xtl"]
    shipped = [p.relative_to(REPO / "xtl").as_posix() for p in ROOT.rglob("*")
               if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
    assert len(shipped) == 18  # README, 7 PAN-X files, 10 Tatoeba files
    for path in shipped:
        assert any(fnmatch.fnmatch(path, pattern) for pattern in patterns), path


def test_the_readme_gives_source_and_licence_of_each_sample():
    text = (ROOT / "README.md").read_text()
    for needed in ("ODC-BY", "CC BY 2.0 FR", "Pan", "Artetxe", "Hu", "github.com/boleima/ToPro",
                   "github.com/facebookresearch/LASER", "9300fd37", "74bc6ae7"):
        assert needed in text, needed


def test_root_is_found_through_the_package():
    assert samples.root() == ROOT


@pytest.mark.parametrize(("name", "split", "language", "rows"), [
    ("panx-sample", "train", "en", 200), ("panx-sample", "validation", "zh", 200),
    ("panx-sample", "validation", "sw", 200), ("tatoeba-sample", "test", "hi", 300)])
def test_bundled_rows_ignore_raw_dir(monkeypatch, tmp_path, name, split, language, rows):
    monkeypatch.setenv(sources.RAW_ENV, str(tmp_path))  # an empty raw root: not used
    task = tasks.get(name)
    loaded = sources.load(task, split, language)
    assert len(loaded.rows) == rows == sources.count_rows(task, split, language, None)
    assert loaded.source == "bundled" and loaded.location.startswith(str(ROOT))
    assert loaded.unusable == {}


def test_panx_sample_is_real_panx():
    rows = sources.load(tasks.get("panx-sample"), "validation", "zh").rows
    tokens = [t for r in rows for t in r["tokens"]]
    # PAN-X.zh: one token per character (the release has a few literal "None" tokens)
    assert sum(len(t) == 1 for t in tokens) == len(tokens) - tokens.count("None") > 3000
    en = sources.load(tasks.get("panx-sample"), "train", "en").rows
    assert en[0]["tokens"][:3] == ["R.H.", "Saunders", "("]


def test_no_test_split_is_shipped():
    with pytest.raises(Exception, match="test"):
        sources.load(tasks.get("panx-sample"), "test", "de")
