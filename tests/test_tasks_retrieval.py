"""Retrieval tasks: Tatoeba (Hub + LASER files) and BUCC 2018 (release files), their cells."""

from __future__ import annotations

import ast
import dataclasses
import json
import tempfile
from pathlib import Path

import pytest
from conftest import HUB, SHARED

from xtl.cells import phases
from xtl.core.errors import ConfigError, DataError
from xtl.core.store import read_json
from xtl.data import sources, tasks
from xtl.data.readers import bucc as bucc_reader
from xtl.data.readers import tatoeba as tatoeba_reader
from xtl.data.tasks import retrieval as fmt
from xtl.evaluation import bitext
from xtl.grid import config, plan, run, rundir

RAW = SHARED / "data" / "raw"
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "retrieval.ipynb"

# task -> [(canonical split, language, the (repo id, config, split) the kit must request)];
# bucc2018 has no Hub source (raw release files only).
HUB_REQUESTS = {
    "tatoeba": [("validation", "de", ("google/xtreme", "tatoeba.deu", "validation")),
                # one set of pairs: the canonical test split reads the same Hub split
                ("test", "zh", ("google/xtreme", "tatoeba.cmn", "validation"))],
    # XTREME-R's Tatoeba: the same rows (it differs in what is trained before it)
    "tatoeba_r": [("validation", "de", ("google/xtreme", "tatoeba.deu", "validation"))],
}
# the real samples: rows per language (docs/data.md section 2 sizes cut to the first 300 lines)
SAMPLE_ROWS = {"ar": 300, "de": 300, "hi": 300, "jv": 205, "sw": 300, "zh": 300}


@pytest.fixture
def raw_root() -> Path:
    if not RAW.is_dir():
        pytest.skip("../shared/data/raw is not present (fresh clone)")
    return RAW


def tatoeba(**changes) -> tasks.Task:
    return dataclasses.replace(tasks.get("tatoeba"), **changes)


# --------------------------------------------------------------------------- registry

def test_registered_tasks():
    t, b = tasks.get("tatoeba"), tasks.get("bucc2018")
    assert (t.format, b.format) == ("retrieval", "retrieval")
    assert len(t.languages) == 41 and set(fmt.XTREME_R_EXTRA) < set(t.languages)
    assert set(t.languages) == set(tatoeba_reader.ISO3)
    assert t.hub_config("de") == "tatoeba.deu" and t.hub_config("fa") == "tatoeba.pes"
    assert not t.from_raw("de") and t.from_raw("pl") and t.from_raw("az")
    assert b.languages == ("de", "fr", "ru", "zh") and b.hub_id is None and b.from_raw("de")
    assert (b.source_split("validation"), b.source_split("test")) == ("sample", "training")
    assert (t.metric, b.metric) == ("accuracy", "bucc_f1")
    assert t.hparams["layer"] == 14 / 24 and t.hparams["pooling"] == "mean"


@pytest.mark.parametrize("hook", ["featurize", "collator", "make_head", "loss", "decode"])
def test_retrieval_is_never_trained(hook):
    with pytest.raises(ConfigError, match="not trained"):
        getattr(fmt, hook)(tasks.get("tatoeba"), 8)


# --------------------------------------------------------------------------- Tatoeba

@pytest.mark.parametrize(("language", "n"), sorted(SAMPLE_ROWS.items()))
def test_tatoeba_hub_sample_rows(hub_mirror, language, n):
    loaded = sources.load(tasks.get("tatoeba"), "validation", language, hub_mirror)
    rows = loaded.rows
    assert loaded.source == "mirror" and len(rows) == n
    assert rows.column_names == ["id", "source", "target", "gold"]
    assert rows["id"][:2] == [f"{language}-validation-0000000", f"{language}-validation-0000001"]
    assert rows["gold"][5] == [rows["id"][5]]
    # the Hub keeps every line's "\n"; canonical rows are stripped
    assert not any(s.endswith("\n") or t.endswith("\n")
                   for s, t in zip(rows["source"], rows["target"], strict=True))


@pytest.mark.parametrize("language", sorted(SAMPLE_ROWS))
def test_tatoeba_raw_equals_hub(hub_mirror, raw_root, language):
    from_hub = sources.load(tasks.get("tatoeba"), "validation", language, hub_mirror)
    from_raw = sources.load(tatoeba(hub_languages=()), "validation", language, raw=raw_root)
    assert from_raw.source == "raw" and from_raw.location.endswith("tatoeba/v1")
    assert from_raw.rows[:] == from_hub.rows[:]


def test_tatoeba_deu_first_pair(raw_root):
    rows = sources.load(tatoeba(hub_languages=()), "validation", "de", raw=raw_root).rows
    assert rows[0] == {"id": "de-validation-0000000",
                       "source": "Maria sagte, sie wisse nicht, wo Tom sei.",
                       "target": "Mary said she didn't know where Tom was.",
                       "gold": ["de-validation-0000000"]}


@pytest.mark.parametrize("language", ["pl", "ro"])
def test_tatoeba_xtreme_r_languages_come_from_raw(raw_root, language):
    loaded = sources.load(tasks.get("tatoeba"), "test", language, HUB, raw=raw_root)
    assert loaded.source == "raw" and len(loaded.rows) == 300
    assert loaded.rows["id"][0] == f"{language}-test-0000000"
    code = tatoeba_reader.ISO3[language]
    first = (raw_root / "tatoeba" / "v1" / f"tatoeba.{code}-eng.{code}").open().readline()
    assert loaded.rows["source"][0] == first.strip()


def write_tatoeba(folder: Path, foreign: str, english: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tatoeba.deu-eng.deu").write_text(foreign, encoding="utf-8")
    (folder / "tatoeba.deu-eng.eng").write_text(english, encoding="utf-8")
    return folder.parent.parent


def test_tatoeba_reader_splits_on_newlines_only(tmp_path):
    # U+2028 inside a line would be a line break for str.splitlines: alignment must hold
    root = write_tatoeba(tmp_path / "tatoeba" / "v1", "Eins\u2028zwei\nDrei\n", "One two\nThree")
    rows = sources.load(tatoeba(hub_languages=()), "validation", "de", raw=root).rows
    assert rows["source"] == ["Eins\u2028zwei", "Drei"] and rows["target"] == ["One two", "Three"]


def test_tatoeba_reader_errors(tmp_path):
    root = write_tatoeba(tmp_path / "tatoeba" / "v1", "Eins\nZwei\n", "One\n")
    with pytest.raises(DataError, match="2 lines but .* has 1"):
        sources.load(tatoeba(hub_languages=()), "validation", "de", raw=root)
    with pytest.raises(DataError, match="tatoeba.pol-eng.pol.*does not exist"):
        sources.load(tatoeba(), "validation", "pl", raw=root)
    with pytest.raises(DataError, match="Tatoeba language"):
        tatoeba_reader.iso3("xx")


def test_tatoeba_precheck_names_each_missing_file(tmp_path):
    """The plan / run / smoke pre-check asks for both files of each requested pair, not only
    the folder: a missing side is named, with what the language needs, before any cell."""
    root = write_tatoeba(tmp_path / "tatoeba" / "v1", "Eins\n", "One\n")
    raw_only = tatoeba(hub_languages=())
    sources.check_available(raw_only, "validation", "de", None, root)  # both files: fine
    (root / "tatoeba" / "v1" / "tatoeba.deu-eng.eng").unlink()
    with pytest.raises(DataError, match=r"tatoeba/de/test: raw file tatoeba.deu-eng.eng "
                       r"missing in .*needs tatoeba.deu-eng.deu, tatoeba.deu-eng.eng there"):
        sources.check_available(raw_only, "test", "de", None, root)
    with pytest.raises(DataError, match=r"raw files tatoeba.pol-eng.pol, tatoeba.pol-eng.eng "
                       r"missing"):
        sources.check_available(tatoeba(), "validation", "pl", None, root)


def test_tatoeba_precheck_on_the_real_samples(raw_root):
    # the samples hold pol, ron (XTREME-R) but not aze: the pre-check says so per language
    task = tasks.get("tatoeba")
    for language in ("pl", "ro"):
        sources.check_available(task, "test", language, None, raw_root)
    with pytest.raises(DataError, match=r"tatoeba/az/test: raw files tatoeba.aze-eng.aze, "
                       r"tatoeba.aze-eng.eng missing"):
        sources.check_available(task, "test", "az", None, raw_root)


# --------------------------------------------------------------------------- BUCC

SHARED_TEXTS = ["Der Vertrag wurde gestern unterzeichnet.", "Die Katze schläft auf dem Sofa.",
                "Im Winter schneit es in den Bergen.", "Er trinkt jeden Morgen Kaffee.",
                "Das Museum ist montags geschlossen.", "Wir fahren mit dem Zug nach Berlin."]


def write_bucc(root: Path, part: str, gold_rows: list[str] | None = None, language: str = "de",
               offset: int = 0) -> Path:
    """A small corpus in the release layout; gold pairs share their text (tiny embeds them
    identically, so mining finds them); 9 + 7 unrelated sentences around them."""
    folder = root / "bucc2018" / f"{language}-en"
    folder.mkdir(parents=True, exist_ok=True)
    src = [f"Füllsatz {i} über das Thema {i * 7 % 11} mit {offset + i} Wörtern."
           for i in range(9)]
    tgt = [f"Filler line {i} about topic {i * 5 % 13} and {offset + i} things." for i in range(7)]
    gold = []
    for k, text in enumerate(SHARED_TEXTS):
        src.insert(2 * k, text)
        tgt.insert(k + 1, text)
        gold.append((2 * k, k + 1))
    stem = folder / f"{language}-en.{part}"
    Path(f"{stem}.{language}").write_text(
        "".join(f"{language}-{offset + i:06d}\t{s}\n" for i, s in enumerate(src)), "utf-8")
    Path(f"{stem}.en").write_text(
        "".join(f"en-{offset + i:06d}\t{s}\n" for i, s in enumerate(tgt)), "utf-8")
    lines = gold_rows if gold_rows is not None else [
        f"{language}-{offset + i:06d}\ten-{offset + j:06d}" for i, j in gold]
    Path(f"{stem}.gold").write_text("\n".join(lines) + "\n", "utf-8")
    return root


@pytest.fixture
def bucc_root(tmp_path) -> Path:
    write_bucc(tmp_path, "sample")
    return write_bucc(tmp_path, "training", offset=100)


def test_bucc_rows_from_release_files(bucc_root):
    loaded = sources.load(tasks.get("bucc2018"), "validation", "de", raw=bucc_root)
    assert loaded.source == "raw" and loaded.location.endswith("bucc2018/de-en")
    assert len(loaded.rows) == 15 + 13
    pairs = bitext.bitext(loaded.rows)
    assert (len(pairs.source), len(pairs.target), len(pairs.gold)) == (15, 13, 6)
    assert pairs.gold[0] == ("de-000000", "en-000001") and not pairs.aligned
    row = loaded.rows[0]
    assert row == {"id": "de-000000", "source": SHARED_TEXTS[0], "target": None,
                   "gold": ["en-000001"]}
    test = bitext.bitext(sources.load(tasks.get("bucc2018"), "test", "de",
                                      raw=bucc_root).rows)
    assert test.source_ids[0] == "de-000100"  # the training part


def test_bucc_gold_must_match_the_sentence_ids(tmp_path):
    write_bucc(tmp_path, "sample", gold_rows=["de-000000\ten-000001", "de-000099\ten-000001"])
    with pytest.raises(DataError, match=r"1 of 2 gold pairs name ids that are not in the "
                                        r"sentence files \(e\.g\. 'de-000099\\ten-000001'\)"):
        sources.load(tasks.get("bucc2018"), "validation", "de", raw=tmp_path)


def test_bucc_malformed_files(tmp_path):
    root = write_bucc(tmp_path, "sample")
    path = root / "bucc2018" / "de-en" / "de-en.sample.en"
    path.write_text("en-000001\tHello\nno tab on this line\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"de-en\.sample\.en:2: expected 'id<TAB>sentence'"):
        sources.load(tasks.get("bucc2018"), "validation", "de", raw=root)
    path.write_text("en-000001\tHello\nen-000001\tAgain\n", encoding="utf-8")
    with pytest.raises(DataError, match="en-000001' appears twice"):
        sources.load(tasks.get("bucc2018"), "validation", "de", raw=root)
    with pytest.raises(DataError, match="fr-en.sample.fr.*does not exist"):
        sources.load(tasks.get("bucc2018"), "validation", "fr", raw=root)
    with pytest.raises(DataError, match="BUCC split"):
        bucc_reader.part("train")


def test_bucc_precheck_names_each_missing_file(bucc_root):
    task = tasks.get("bucc2018")
    sources.check_available(task, "validation", "de", None, bucc_root)
    (bucc_root / "bucc2018" / "de-en" / "de-en.training.gold").unlink()
    with pytest.raises(DataError, match=r"bucc2018/de/test: raw file de-en.training.gold missing"
                       r".*needs de-en/de-en.training.de, de-en/de-en.training.en, "
                       r"de-en/de-en.training.gold"):
        sources.check_available(task, "test", "de", None, bucc_root)


def test_bucc_cell_tunes_on_sample_and_applies_to_training(bucc_root):
    scores = {}
    for split in ("validation", "test"):
        where = tempfile.mkdtemp()
        cell = phases.start("retrieval", "bucc", where, where, {"precision": "fp32"},
                            raw_dir=str(bucc_root), model="tiny", task="bucc2018",
                            init_checkpoint=None, eval_split=split, eval_languages=["de"])
        cell.load_encoder()
        result = cell.evaluate("de", log=lambda line: None)
        assert [r["metric"] for r in result.records] == ["f1", "precision", "recall"]
        assert {r["split"] for r in result.records} == {split} and result.records[0]["n"] == 6
        scores[split] = (result.records[0]["value"], cell.thresholds["de"])
        lines = {e["split"]: e for e in result.examples}
        assert set(lines) == ({"validation"} if split == "validation" else {"validation", "test"})
        doc = cell.finish([result])
        assert doc["provenance"]["retrieval"]["bucc_thresholds"] == {"de": cell.thresholds["de"]}
    assert scores["validation"][0] == 100.0  # identical texts: the oracle threshold is perfect
    assert scores["test"][1] == scores["validation"][1]  # the dev threshold, applied to test
    assert scores["test"][0] > 80


# --------------------------------------------------------------------------- cells and notebook

def parameters_cell() -> dict:
    nb = json.loads(NOTEBOOK.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    return tagged[0]


def test_notebook_committed_clean_with_literal_parameters():
    nb = json.loads(NOTEBOOK.read_text())
    ids = [c["id"] for c in nb["cells"]]
    assert ids == [f"r{i:02d}" for i in range(len(ids))]
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    for stmt in ast.parse("".join(parameters_cell()["source"])).body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
        ast.literal_eval(stmt.value)


def notebook_names() -> set[str]:
    tree = ast.parse("".join(parameters_cell()["source"]))
    return {stmt.targets[0].id for stmt in tree.body}


def retrieval_experiment(**extra) -> config.Experiment:
    exp = config.parse({"xtl": 1, "models": ["tiny"], "intermediate": ["none", "synth-nli"],
                        "targets": ["tatoeba"], "mirror": str(HUB), "raw_dir": str(RAW),
                        "eval_languages": ["de", "zh", "pl", "ro"], **extra})
    exp.values["name"] = "ret"
    return exp


def test_plan_builds_retrieval_cells_whose_parameters_the_notebook_declares(tmp_path, raw_root,
                                                                           hub_mirror):
    exp = retrieval_experiment()
    built = plan.build(exp)
    plan.preflight(built, exp)
    kinds = [c.kind for c in built.cells]
    assert kinds == ["stage", "retrieval", "retrieval"]
    stage = built.cells[0]
    run_dir = rundir.RunDir(tmp_path)
    params = {c.parent: run.notebook_parameters(c, run_dir, built, exp) for c in built.cells[1:]}
    for cell_params in params.values():
        assert set(cell_params) == notebook_names()
        assert cell_params["eval_languages"] == ["de", "zh", "pl", "ro"]
        assert cell_params["raw_dir"] == str(RAW.resolve()) and cell_params["task"] == "tatoeba"
        assert cell_params["hparams"]["layer"] == 14 / 24
    assert params[None]["init_checkpoint"] is None
    assert params[stage.id]["init_checkpoint"] == str(run_dir.checkpoint(stage.id) / "best")


RUN_FILE = """\
xtl: 1
name: ret
models: [tiny]
intermediate: [none, synth-nli]
targets: [tatoeba]
mirror: {mirror}
raw_dir: {raw}
eval_languages: [de, zh, pl, ro]
hparams: {{epochs: 1, precision: fp32}}
"""


@pytest.mark.slow
def test_run_leaves_one_record_per_language(tmp_path, raw_root, hub_mirror):
    path = tmp_path / "ret.yaml"
    path.write_text(RUN_FILE.format(mirror=hub_mirror, raw=raw_root))
    lines: list[str] = []
    summary = run.run(path, tmp_path / "out", log=lines.append)
    assert len(summary.done) == 3 and not summary.failed, lines
    built = read_json(tmp_path / "out" / "plan.json")
    cells = [c for c in built["cells"] if c["kind"] == "retrieval"]
    for cell in cells:
        folder = tmp_path / "out" / "cells" / cell["id"]
        doc = read_json(folder / "metrics.json")
        headline = [r for r in doc["records"] if r["metric"] == "accuracy"]
        assert sorted(r["language"] for r in headline) == ["de", "pl", "ro", "zh"]
        assert all(r["n"] == 300 and r["split"] == "validation" for r in headline)
        assert doc["provenance"]["retrieval"]["layer_index"] == 1  # 14/24 of tiny's 2 layers
        assert doc["provenance"]["data"]["tatoeba/pl/validation"]["source"] == "raw"
        assert (doc["provenance"]["parent"] or {}).get("cell") == cell["parent"]
        assert len(list((folder / "predictions").glob("tatoeba.*.validation.jsonl"))) == 4
        assert (folder / "report.html").is_file()
