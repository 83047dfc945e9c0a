"""Translated intermediate data (research question b): XNLI-MT, PAWS-X translate-train, MLQA
translate-train, one task per training language."""

from __future__ import annotations

import csv
from pathlib import Path

import datasets
import pytest
from conftest import SHARED

from xtl.data import sources, tasks
from xtl.data.tasks import pair_classification as pc
from xtl.data.tasks import span_qa

RAW = SHARED / "data" / "raw"
MLQA = "facebook/mlqa"
PAWSX = "google-research-datasets/paws-x"
# languages whose mlqa-translate-train config has no sample in the test mirror (conftest.HUB;
# its MANIFEST: only `de` validation is there)
MLQA_STAND_INS = tuple(lang for lang in span_qa.MLQA_TT_LANGUAGES if lang != "de")

# task -> [(canonical split, language, the (repo id, config, split) the kit must request)];
# merged into tests/test_tasks_tagging.py's table (test_sources collects test_tasks_*.py).
HUB_REQUESTS = {
    **{f"mnli_mt_{lang}": [("train", lang, ("facebook/xnli", lang, "train")),
                           ("validation", lang, ("facebook/xnli", lang, "validation"))]
       for lang in pc.XNLI_MT_LANGUAGES},
    **{f"pawsx_mt_{lang}": [("train", lang, (PAWSX, lang, "train")),
                            ("validation", lang, (PAWSX, lang, "validation"))]
       for lang in pc.PAWSX_MT_LANGUAGES},
    "squad_mt_de": [("validation", "de", (MLQA, "mlqa-translate-train.de", "validation"))],
    **{f"squad_mt_{lang}": [("train", lang, (MLQA, f"mlqa-translate-train.{lang}", "train")),
                            ("validation", lang,
                             (MLQA, f"mlqa-translate-train.{lang}", "validation"))]
       for lang in MLQA_STAND_INS},
}

MLQA_FEATURES = datasets.Features({
    "context": datasets.Value("string"), "question": datasets.Value("string"),
    "answers": datasets.Sequence({"answer_start": datasets.Value("int32"),
                                  "text": datasets.Value("string")}),
    "id": datasets.Value("string"),
})


def _mlqa_rows(language: str, split: str, n: int) -> dict:
    contexts = [f"{language} context {i}: the answer is word{i} here." for i in range(n)]
    return {"context": contexts, "question": [f"question {i}?" for i in range(n)],
            "answers": [{"answer_start": [c.index(f"word{i}")], "text": [f"word{i}"]}
                        for i, c in enumerate(contexts)],
            "id": [f"{language}-{split}-{i:x}" for i in range(n)]}


def write_missing_hub_samples(root: Path) -> None:
    """MLQA translate-train stand-ins in the Hub schema (docs/data.md section 2) where the
    mirror has no sample."""
    for language in MLQA_STAND_INS:
        folder = root / MLQA / f"mlqa-translate-train.{language}"
        folder.mkdir(parents=True, exist_ok=True)
        for split, n in (("train", 3), ("validation", 2)):
            datasets.Dataset.from_dict(_mlqa_rows(language, split, n), features=MLQA_FEATURES
                                       ).to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))


def test_one_task_per_training_language():
    expected = {"mnli_mt": pc.XNLI_MT_LANGUAGES, "pawsx_mt": pc.PAWSX_MT_LANGUAGES,
                "squad_mt": span_qa.MLQA_TT_LANGUAGES}
    assert set(pc.XNLI_MT_LANGUAGES) == set(tasks.get("xnli").languages) - {"en"}
    assert set(pc.PAWSX_MT_LANGUAGES) == set(tasks.get("pawsx").languages) - {"en"}
    assert set(span_qa.MLQA_TT_LANGUAGES) == set(tasks.get("mlqa").languages) - {"en"}
    for prefix, languages in expected.items():
        for lang in languages:
            task = tasks.get(f"{prefix}_{lang}")
            assert task.languages == (lang,) and task.train_language == lang
            assert set(task.splits) == {"train", "validation"} and task.train_task is None
    assert tasks.get("mnli_mt_de").label_names == tasks.get("mnli").label_names
    assert tasks.get("pawsx_mt_ja").label_names == tasks.get("pawsx").label_names
    assert tasks.get("squad_mt_zh").hub_config("zh") == "mlqa-translate-train.zh"
    assert set(HUB_REQUESTS) == {n for n in tasks.REGISTRY if n.rsplit("_", 1)[0] in expected
                                 and "_mt_" in n}


@pytest.mark.parametrize("language", pc.XNLI_MT_LANGUAGES)
def test_xnli_mt_train_is_translated_mnli(hub_mirror, language):
    task = tasks.get(f"mnli_mt_{language}")
    rows = sources.load(task, "train", task.train_language, hub_mirror).rows
    assert len(rows) == 4 and set(rows["label"]) <= {0, 1, 2}
    dev = sources.load(task, "validation", language, hub_mirror)
    assert len(dev.rows) == 1 and dev.location.endswith(f"facebook/xnli/{language}")
    raw = RAW / ("xnli/hf_dummy/xnli/en__1.1.0/dummy_data/XNLI-MT-1.0.zip/XNLI-MT-1.0/multinli/"
                 f"multinli.train.{language}.tsv")
    if raw.is_file():  # the raw XNLI-MT file: premise, hypo, label (QUOTE_NONE)
        with open(raw, encoding="utf-8", newline="") as f:
            lines = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        assert rows["text_a"][0] == lines[0]["premise"]


@pytest.mark.parametrize("language", pc.PAWSX_MT_LANGUAGES)
def test_pawsx_translated_train(hub_mirror, language):
    task = tasks.get(f"pawsx_mt_{language}")
    rows = sources.load(task, "train", language, hub_mirror).rows
    assert len(rows) == 4 and set(rows["label"]) <= {0, 1}
    english = sources.load(tasks.get("pawsx"), "train", "en", hub_mirror).rows
    assert rows["text_a"] != english["text_a"]  # the translated_train.tsv rows, not English


def test_mlqa_translate_train(hub_mirror, tmp_path):
    dev = sources.load(tasks.get("squad_mt_de"), "validation", "de", hub_mirror)
    assert len(dev.rows) == 1 and dev.unusable == {}
    write_missing_hub_samples(tmp_path)
    zh = sources.load(tasks.get("squad_mt_zh"), "train", "zh", tmp_path)
    assert len(zh.rows) == 3 and zh.rows[0]["answers"]["text"] == ["word0"]
