"""Multiple-choice tasks: real Hub samples row for row, bad input, and a tiny model that learns."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import datasets
import pytest
import torch
from conftest import write_hub

from xtl.cells import phases
from xtl.core.errors import DataError
from xtl.core.hparams import Hparams
from xtl.data import sources, tasks
from xtl.data.tasks import multiple_choice as mc
from xtl.evaluation import evaluate
from xtl.model.models import build
from xtl.training import train

RAW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "raw"
XCOPA_SAMPLED = ("et", "ht", "id", "qu", "sw", "zh")  # languages with a real sample (MANIFEST)

# task -> [(canonical split, language, the (repo id, config, split) the kit must request)].
# `copa` has no sample in the test mirror (conftest.HUB), so test_sources' Hub-contract test
# cannot serve it from there (`write_missing_hub_samples` writes a stand-in in the Hub schema).
HUB_REQUESTS = {
    "hellaswag": [("train", "en", ("Rowan/hellaswag", None, "train")),
                  ("validation", "en", ("Rowan/hellaswag", None, "validation"))],
    "cosmos_qa": [("train", "en", ("allenai/cosmos_qa", None, "train")),
                  ("validation", "en", ("allenai/cosmos_qa", None, "validation"))],
    "commonsense_qa": [("train", "en", ("tau/commonsense_qa", None, "train")),
                       ("validation", "en", ("tau/commonsense_qa", None, "validation"))],
    "social_i_qa": [("validation", "en", ("allenai/social_i_qa", None, "validation"))],
    "copa": [("train", "en", ("aps/super_glue", "copa", "train")),
             ("validation", "en", ("aps/super_glue", "copa", "validation"))],
    "xcopa": [("validation", "et", ("cambridgeltl/xcopa", "et", "validation")),
              ("test", "zh", ("cambridgeltl/xcopa", "zh", "test"))],
}


def load(name: str, split: str, mirror: Path, language: str = "en") -> sources.Split:
    return sources.load(tasks.get(name), split, language, mirror)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# --- real samples -------------------------------------------------------------------------

def test_hellaswag(hub_mirror):
    train_rows = load("hellaswag", "train", hub_mirror).rows
    dev = load("hellaswag", "validation", hub_mirror).rows
    assert (len(train_rows), len(dev)) == (2, 2)
    assert {len(c) for c in list(train_rows["choices"]) + list(dev["choices"])} == {4}
    raw = jsonl(RAW / "hellaswag/hf_dummy/hellaswag/0.1.0/dummy_data/hellaswag_val.jsonl")
    assert dev["id"] == [str(r["ind"]) for r in raw]
    assert dev["label"] == [r["label"] for r in raw]  # ints in the raw file, "3" on the Hub
    assert dev[0]["context"] == raw[0]["ctx"] == "A man is sitting on a roof. he"
    assert dev[0]["choices"] == raw[0]["endings"] and dev[0]["question"] == ""


def test_hellaswag_test_labels_are_empty_and_counted(hub_mirror):
    with pytest.raises(DataError, match=r"no usable rows \(unusable: \{'no label .*': 2\}"):
        load("hellaswag", "test", hub_mirror)


def test_cosmos_qa_matches_the_raw_csv(hub_mirror):
    assert len(load("cosmos_qa", "train", hub_mirror).rows) == 2
    dev = load("cosmos_qa", "validation", hub_mirror).rows
    with open(RAW / "cosmos_qa/data/valid.csv", newline="", encoding="utf-8") as f:
        raw = list(csv.DictReader(f))
    assert len(dev) == len(raw) == 300
    assert dev["id"] == [r["id"] for r in raw]
    assert dev["label"] == [int(r["label"]) for r in raw]
    assert dev["choices"] == [[r[f"answer{k}"] for k in range(4)] for r in raw]
    assert dev["question"] == [r["question"] for r in raw]
    assert set(dev["label"]) == {0, 1, 2, 3}
    with pytest.raises(DataError, match=r"unusable: \{'no label .*': 2\}"):
        load("cosmos_qa", "test", hub_mirror)


def test_commonsense_qa_letters_become_positions(hub_mirror):
    assert len(load("commonsense_qa", "train", hub_mirror).rows) == 5
    dev = load("commonsense_qa", "validation", hub_mirror).rows
    raw = jsonl(RAW / "commonsense_qa/hub_schema_export/validation.jsonl")
    assert len(dev) == len(raw) == 300
    assert dev["label"] == ["ABCDE".index(r["answerKey"]) for r in raw]
    assert dev["choices"] == [r["choices"]["text"] for r in raw]
    assert dev["question"] == [r["question"] for r in raw] and set(dev["context"]) == {""}
    assert set(dev["label"]) == {0, 1, 2, 3, 4}
    with pytest.raises(DataError, match=r"unusable: \{'no label .*': 2\}"):
        load("commonsense_qa", "test", hub_mirror)


def test_social_i_qa_one_based_labels(hub_mirror):
    dev = load("social_i_qa", "validation", hub_mirror).rows
    base = RAW / "social_i_qa/hf_dummy/social_i_qa/0.1.0/dummy_data/socialiqa-train-dev"
    labels = (base / "dev-labels.lst").read_text().split()
    raw = jsonl(base / "dev.jsonl")
    assert len(dev) == 2 and dev["label"] == [int(x) - 1 for x in labels] == [2, 0]
    assert dev["choices"][0] == [raw[0]["answerA"], raw[0]["answerB"], raw[0]["answerC"]]
    assert dev["id"] == ["en-validation-0000000", "en-validation-0000001"]
    with pytest.raises(DataError, match="unknown split .*'train'"):  # not in the sample
        load("social_i_qa", "train", hub_mirror)
    with pytest.raises(Exception, match="split"):  # no test split on the Hub at all
        load("social_i_qa", "test", hub_mirror)


@pytest.mark.parametrize("language", XCOPA_SAMPLED)
def test_xcopa_every_sampled_language(hub_mirror, language):
    dev = load("xcopa", "validation", hub_mirror, language)
    test = load("xcopa", "test", hub_mirror, language)
    assert (len(dev.rows), len(test.rows)) == (100, 200)
    assert dev.unusable == {} and test.unusable == {}  # XCOPA's test labels are real
    for rows in (dev.rows, test.rows):
        assert set(rows["label"]) == {0, 1} and {len(c) for c in rows["choices"]} == {2}
        assert set(rows["question"]) == set(mc.COPA_QUESTIONS.values())
    raw = jsonl(RAW / f"xcopa/data/{language}/val.{language}.jsonl")[0]
    first = dev.rows[0]
    assert first["context"] == raw["premise"] and first["label"] == raw["label"]
    assert first["choices"] == [raw["choice1"], raw["choice2"]] and first["id"] == "0"
    assert first["question"] == mc.COPA_QUESTIONS[raw["question"]]


def test_xcopa_languages_and_splits(hub_mirror):
    xcopa = tasks.get("xcopa")
    assert set(xcopa.languages) == set("et ht id it qu sw ta th tr vi zh".split())
    assert (xcopa.train_task, xcopa.train_prelude) == ("copa", ("social_i_qa",))
    phases.check_compatible(xcopa, tasks.get("copa"))  # same format, same two choices
    with pytest.raises(DataError, match="config .*'it'"):  # a language with no sample
        load("xcopa", "validation", hub_mirror, "it")
    with pytest.raises(DataError, match="'en'"):
        load("xcopa", "validation", hub_mirror, "en")
    with pytest.raises(Exception, match="split"):
        load("xcopa", "train", hub_mirror, "et")


# --- COPA: no real sample; stand-ins in the Hub's schema --------------------------------

COPA_FEATURES = datasets.Features({
    "premise": datasets.Value("string"), "choice1": datasets.Value("string"),
    "choice2": datasets.Value("string"), "question": datasets.Value("string"),
    "idx": datasets.Value("int32"), "label": datasets.ClassLabel(names=["choice1", "choice2"]),
})


def _copa_rows(labels: list[int]) -> dict:
    n = len(labels)
    return {"premise": [f"premise {i}" for i in range(n)],
            "choice1": [f"first {i}" for i in range(n)],
            "choice2": [f"second {i}" for i in range(n)],
            "question": ["cause", "effect"] * (n // 2) + ["cause"] * (n % 2),
            "idx": list(range(n)), "label": labels}


def write_missing_hub_samples(root: Path) -> None:
    """Stand-ins in the exact Hub schema for the tasks with no real sample (COPA)."""
    for split, labels in (("train", [0, 1, 1]), ("validation", [1, 0]), ("test", [-1] * 4)):
        write_hub(root, "aps/super_glue", "copa", split, _copa_rows(labels), COPA_FEATURES)


def test_copa_from_hub_schema_files(tmp_path):
    write_missing_hub_samples(tmp_path)
    rows = load("copa", "train", tmp_path).rows
    assert rows["label"] == [0, 1, 1] and rows["id"] == ["0", "1", "2"]
    assert rows[1] == {"id": "1", "context": "premise 1", "question": "What happened as a result?",
                       "choices": ["first 1", "second 1"], "label": 1}
    assert load("copa", "validation", tmp_path).rows["label"] == [1, 0]
    with pytest.raises(DataError, match=r"unusable: \{'no label .*': 4\}"):
        load("copa", "test", tmp_path)


# --- bad input ------------------------------------------------------------------------------

def _siqa_raw(labels: list[str]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({
        "context": ["c"] * len(labels), "question": ["q"] * len(labels),
        "answerA": ["a"] * len(labels), "answerB": ["b"] * len(labels),
        "answerC": ["c"] * len(labels), "label": labels})


def test_unlabelled_rows_are_counted_not_hidden():
    rows, unusable = mc.canonicalize(tasks.get("social_i_qa"), _siqa_raw(["2", "", "3"]),
                                     "validation", "en")
    assert rows["label"] == [1, 2] and unusable == {"no label (-1 or empty)": 1}


def test_label_outside_the_label_set_names_value_and_row():
    with pytest.raises(DataError, match=r"social_i_qa/en/validation row 1: label '0' is outside"):
        mc.canonicalize(tasks.get("social_i_qa"), _siqa_raw(["1", "0"]), "validation", "en")
    cosmos = datasets.Dataset.from_dict({
        "id": ["x"], "context": ["c"], "question": ["q"], "answer0": ["a"], "answer1": ["b"],
        "answer2": ["c"], "answer3": ["d"], "label": [7]},
        features=datasets.Features({**{k: datasets.Value("string") for k in (
            "id", "context", "question", "answer0", "answer1", "answer2", "answer3")},
            "label": datasets.Value("int32")}))
    with pytest.raises(DataError, match="row 0: label 7 is outside"):
        mc.canonicalize(tasks.get("cosmos_qa"), cosmos, "train", "en")


def test_wrong_number_of_choices_is_an_error():
    raw = datasets.Dataset.from_dict({"ind": [1, 2], "ctx": ["c", "d"], "label": ["0", "1"],
                                      "endings": [["a", "b", "c", "d"], ["a", "b", "c"]]})
    with pytest.raises(DataError, match="hellaswag/en/train row 1: 3 choices, but the task has 4"):
        mc.canonicalize(tasks.get("hellaswag"), raw, "train", "en")
    copa3 = datasets.Dataset.from_dict(
        _copa_rows([0]), features=datasets.Features(
            {**COPA_FEATURES, "label": datasets.ClassLabel(names=["a", "b", "c"])}))
    with pytest.raises(DataError, match="task has 2 choices"):
        mc.canonicalize(tasks.get("copa"), copa3, "train", "en")


def test_missing_columns_are_named():
    with pytest.raises(DataError, match=r"columns \['answerC'\] missing"):
        mc.canonicalize(tasks.get("social_i_qa"), _siqa_raw(["1"]).remove_columns("answerC"),
                        "validation", "en")


# --- features, batches, head ----------------------------------------------------------------

HP = Hparams({"learning_rate": 2e-3, "epochs": 3, "batch_size": 16, "max_length": 32,
                        "precision": "fp32"})


def test_features_batch_and_logits_shapes(tiny_dir):
    task = tasks.get("hellaswag")
    model, tok, _ = build(tiny_dir, [task], seed=0)
    batch = {"context": ["a man", "a dog runs"], "question": ["", "why?"],
             "choices": [["w", "x y", "z", "q"], ["one", "two", "three four five", "six"]],
             "label": [3, 0]}
    feats = mc.featurize(batch, tok, HP)
    assert [len(f) for f in feats["input_ids"]] == [4, 4] and feats["labels"] == [3, 0]
    rows = [{k: feats[k][i] for k in feats} for i in range(2)]
    padded = mc.collator(tok)(rows)
    longest = max(len(ids) for row in feats["input_ids"] for ids in row)
    assert padded["input_ids"].shape == (8, longest)  # rows x choices, padded to the longest
    assert padded["labels"].tolist() == [3, 0] and padded["n_choices"].tolist() == [4, 4]
    model.eval()
    logits = model(task.name, padded)
    assert logits.shape == (2, 4) and mc.decode(logits) == logits.argmax(-1).tolist()
    assert mc.loss(logits, padded).ndim == 0


# --- a tiny model learns a toy set and is evaluated per language -----------------------------

WORDS = ("apple", "river", "stone", "cloud", "chair", "lamp", "door", "tree", "glass", "road")
TOY = tasks.Task(name="toy-mc", format=mc.FORMAT, languages=("en", "de"),
                 label_names=mc.choice_names(3), hub_id="toy/mc",
                 fields={"context": "story", "choices": "a,b,c", "label": "answer"})


def _toy_rows(n: int, seed: int) -> dict:
    """Learnable: the right choice is the one that contains the marker word 'zebra'."""
    g = random.Random(seed)
    rows = {"story": [], "a": [], "b": [], "c": [], "answer": []}
    for i in range(n):
        answer = g.randrange(3)
        for k, col in enumerate("abc"):
            word = "zebra" if k == answer else g.choice(WORDS)
            rows[col].append(f"{g.choice(WORDS)} {word} {g.choice(WORDS)}")
        rows["story"].append(f"story {i} about a {g.choice(WORDS)}")
        rows["answer"].append(answer)
    return rows


@pytest.fixture(scope="module")
def toy_mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy-mirror")
    features = datasets.Features({**{c: datasets.Value("string") for c in ("story", "a", "b", "c")},
                                  "answer": datasets.Value("int32")})
    for language, seed in (("en", 0), ("de", 2)):
        write_hub(root, "toy/mc", language, "train", _toy_rows(96, seed), features)
        write_hub(root, "toy/mc", language, "validation", _toy_rows(48, seed + 1), features)
    return root


def test_tiny_model_learns_toy_choices_and_evaluates(tiny_dir, toy_mirror, tmp_path):
    train_split = sources.load(TOY, "train", "en", toy_mirror)
    dev = sources.load(TOY, "validation", "en", toy_mirror)
    model, tok, _ = build(tiny_dir, [TOY], seed=0)
    result = train.fit(model, tok, TOY, train_split, dev, HP | {"learning_rate": 3e-3}, 0,
                       tmp_path / "ckpt", tmp_path / "history.jsonl", {"cell": "toy"})
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(losses) == 18  # 3 epochs x 96 / 16
    assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:4]) / 4
    assert result.best_score > 90
    splits = [dev, sources.load(TOY, "validation", "de", toy_mirror)]
    records, examples = evaluate.evaluate(model, tok, TOY, splits, HP)
    assert [(r["language"], r["metric"], r["n"]) for r in records] == [
        ("en", "accuracy", 48), ("de", "accuracy", 48)]
    assert len(examples) == 96 and {e["prediction"] for e in examples} <= {"0", "1", "2"}
    assert len(examples[0]["logits"]) == 3
    assert torch.isfinite(torch.tensor([r["value"] for r in records])).all()
