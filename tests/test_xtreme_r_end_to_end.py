"""XTREME-R retrieval targets through `xtl run` (papermill kernels, metrics, predictions,
analysis): LAReQA on the real XQuAD-R samples, trained on SQuAD rows in a mirror; Mewsli-X on
small files in the release schema; the tiny model, with and without a synth-nli stage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pytest
from conftest import write_hub
from test_mewslix import _jsonl, entity, pair

from xtl.analysis import results
from xtl.core.store import read_json
from xtl.data.readers import mewslix
from xtl.data.readers import squad as squad_json
from xtl.data.tasks.dual_encoder import LAREQA_LANGUAGES
from xtl.evaluation import aggregate
from xtl.grid import run

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw"
XQUAD_R = RAW / "lareqa" / "xquad-r"
SAMPLE = ("ar", "de", "en", "hi", "zh")  # the real XQuAD-R files (first 8 of 48 articles)
MEWSLIX_LANGUAGES = ("ar", "de", "en")  # of SAMPLE, those Mewsli-X has
SQUAD_ROWS = {"train": 16, "validation": 8}
QUERIES = {"lareqa": 225, "mewslix": 2}  # per language

EXPERIMENT = """\
xtl: 1
name: xtreme_r_e2e
models: [tiny]
intermediate: [none, synth-nli]
targets: [lareqa, mewslix]
seeds: [0]
mirror: {mirror}
raw_dir: {raw}
eval_languages: [{languages}]
hparams: {{epochs: 1, batch_size: 8, max_length: 32, learning_rate: 1.0e-3, precision: fp32,
          intermediate.batch_size: 64}}
"""


def write_lareqa(raw: Path) -> None:
    """The 5 real files, plus a one-sentence file with no questions for each other pool
    language: the registered task's pool spans all 11 and refuses a missing file."""
    folder = raw / "lareqa" / "xquad-r"
    folder.mkdir(parents=True)
    for language in LAREQA_LANGUAGES:
        if language in SAMPLE:
            (folder / f"{language}.json").symlink_to(XQUAD_R / f"{language}.json")
            continue
        sentence = f"Filler sentence in {language}."
        paragraph = {"context": sentence, "sentence_breaks": [[0, len(sentence)]], "qas": []}
        (folder / f"{language}.json").write_text(json.dumps(
            {"data": [{"title": "filler", "paragraphs": [paragraph]}]}))


def write_squad_mirror(mirror: Path) -> None:
    """rajpurkar/squad in the Hub layout (LAReQA's English training data): SQuAD dev rows, which
    are what XQuAD-R en is built from."""
    rows = squad_json.read_file(XQUAD_R / "en.json")
    features = datasets.Features({
        **{k: datasets.Value("string") for k in ("id", "title", "context", "question")},
        "answers": datasets.Sequence({"text": datasets.Value("string"),
                                      "answer_start": datasets.Value("int32")})})
    start = 0
    for split, n in SQUAD_ROWS.items():
        part = rows[start:start + n]
        start += n
        columns = {k: [r[k] for r in part] for k in features}
        write_hub(mirror, "rajpurkar/squad", "plain_text", split, columns, features)


def write_mewslix(raw: Path) -> None:
    """Candidate set, WikiNews mentions (2 per language) and English Wikipedia pairs."""
    folder = raw / "mewslix"
    folder.mkdir(parents=True)
    pool = [entity("Q90", "Paris", "Paris is the capital of France."),
            entity("Q84", "London", "London is the capital of England."),
            entity("Q1490", "Tokyo", "Tokyo is the capital of Japan."),
            entity("Q64", "Berlin", "Berlin ist die Hauptstadt Deutschlands.", "de"),
            entity("Q1757", "Helsinki", "Helsinki is the capital of Finland."),
            entity("Q33", "Finland", "Finland is a country in Northern Europe.")]
    _jsonl(folder / mewslix.CANDIDATES, pool)
    documents = []
    for language in MEWSLIX_LANGUAGES:
        text = f"Paris ({language}) and Berlin met."
        mentions = [{"example_id": f"{language}-{qid}", "entity_id": qid,
                     "mention_span": {"start": text.index(name),
                                      "end": text.index(name) + len(name), "text": name}}
                    for qid, name in (("Q90", "Paris"), ("Q64", "Berlin"))]
        documents.append({"context": {"document_id": f"{language}-1", "language": language,
                                      "text": text,
                                      "sentence_spans": [{"start": 0, "end": len(text)}]},
                          "mentions": mentions})
    _jsonl(folder / "wikinews_mentions-dev.jsonl", documents)
    cities = [("Q90", "Paris", "France"), ("Q84", "London", "England"),
              ("Q1490", "Tokyo", "Japan"), ("Q1757", "Helsinki", "Finland")]
    pairs = [pair(f"p{i}", qid, name, f"{name} grew fast in year {i}.", name,
                  f"{name} is the capital of {country}.")
             for i, (qid, name, country) in enumerate(cities * 2)]
    _jsonl(folder / "wikipedia_pairs-train.jsonl", pairs)
    _jsonl(folder / "wikipedia_pairs-dev.jsonl", pairs[:4])


def write_experiment(root: Path) -> Path:
    """The experiment file and its data under `root`: a mirror and a raw root."""
    mirror, raw = root / "mirror", root / "raw"
    write_squad_mirror(mirror)
    write_lareqa(raw)
    write_mewslix(raw)
    path = root / "xtreme_r_e2e.yaml"
    path.write_text(EXPERIMENT.format(mirror=mirror, raw=raw, languages=", ".join(SAMPLE)))
    return path


def _checked_cell(out: Path, cell: dict, task: str, languages: tuple[str, ...]) -> float:
    """Checks one target cell's records and predictions; returns its mean mAP@20."""
    folder = out / "cells" / cell["id"]
    records = read_json(folder / "metrics.json")["records"]
    assert sorted((r["task"], r["language"], r["metric"], r["split"], r["n"])
                  for r in records) == [(task, lang, "map@20", "validation", QUERIES[task])
                                        for lang in languages]
    assert all(0 <= r["value"] <= 100 for r in records)
    top = 20 if task == "lareqa" else 6  # Mewsli-X: the whole 6-entity pool is ranked
    for lang in languages:
        lines = (folder / "predictions" / f"{task}.{lang}.validation.jsonl").read_text()
        examples = [json.loads(line) for line in lines.splitlines()]
        assert len(examples) == QUERIES[task]
        assert all(len(e["prediction"]) == top and e["reference"] for e in examples)
    return sum(r["value"] for r in records) / len(records)


@pytest.mark.slow
def test_lareqa_and_mewslix_targets_through_xtl_run(tmp_path):
    if not XQUAD_R.is_dir():
        pytest.skip("../shared/data/raw is not present (fresh clone)")
    summary = run.run(write_experiment(tmp_path), tmp_path / "out", log=lambda line: None)
    out = tmp_path / "out"
    assert len(summary.done) == 5 and not summary.failed
    cells = [c for c in read_json(out / "plan.json")["cells"] if c["kind"] == "target"]
    # per intermediate chain: each task's number = the mean over its official languages run
    numbers: dict[str | None, dict[str, float]] = {}
    for cell in cells:
        task = cell["identity"]["task"]
        languages = SAMPLE if task == "lareqa" else MEWSLIX_LANGUAGES
        numbers.setdefault(cell["parent"], {})[task] = _checked_cell(out, cell, task, languages)
    assert len(numbers) == 2 and all(len(tasks) == 2 for tasks in numbers.values())
    # XTREME-R: the mean over the two tasks present, naming them; the rest listed as missing
    scores = results.benchmark_scores(results.task_scores(results.load(out), aggregate.XTREME_R),
                                      aggregate.XTREME_R)
    assert len(scores) == 2 and set(scores["included"]) == {"mewslix,lareqa"}
    assert all(row.partial and "xnli" in row.missing for row in scores.itertuples())
    expected = sorted((t["lareqa"] + t["mewslix"]) / 2 for t in numbers.values())
    assert sorted(scores["overall"]) == pytest.approx(expected)
    html = (out / "analysis" / "report.html").read_text()
    table = html[html.index("XTREME-R per category and overall, per seed"):]
    table = table[:table.index("</table>")]
    assert "mewslix,lareqa" in table
    shown = [float(x) for x in re.findall(r"<td>(-?\d+\.\d+)</td>", table)]
    assert all(any(abs(v - x) < 0.006 for x in shown) for v in expected)
