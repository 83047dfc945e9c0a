"""Cheap shortcut baselines, scored on the rows the model is scored on, and the comparison.

A zero-shot score means little until it is set beside what needs no model: memorising the
English training data, or a classifier on surface features that never look at meaning. Each
evaluation cell computes these once (`for_split`, from its own English training rows) and
writes them to metrics.json (`baselines`, docs/contracts.md section 4); the cell report and
the analysis only read them (`compare`, `load`). Per format:

- tagging: `lookup` -- every token gets the tag it had most often in the English training
  rows, an unseen token "O" (no model, pure memory); `majority` -- every token the most
  frequent training tag (all "O": F1 0);
- pair classification: `overlap tree` -- a depth-4 decision tree (scikit-learn) on nine
  length and word-overlap features of the pair, which need no vocabulary and so apply to
  every language (`overlap_features`), fit on the English training rows; `majority` -- the
  most frequent training label;
- extractive QA: `answer lookup` -- the English training answer most often given to
  questions opening with the same words that occurs in the context (SQuAD F1);
- sentence retrieval (top-1 accuracy): `random ranking` -- a random ranking's expected top-1
  accuracy, 100 / pool size.

Scores use the task's own scorer (`xtl.evaluation.metrics.score`) on the same rows as the model's.
"""

from __future__ import annotations

import json
import unicodedata
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# imported here, not at first use: the kernels' fork server imports this module (a notebook
# import) and so scikit-learn once, instead of every evaluation cell paying a second for it
from sklearn.tree import DecisionTreeClassifier

from xtl.core import chance
from xtl.data.tasks import Task
from xtl.evaluation import metrics

# name -> what it is, for reports
DESCRIPTIONS = {
    "lookup": "each token's most frequent tag in the English training rows; unseen tokens O",
    "overlap tree": "depth-4 decision tree on 9 length/word-overlap features of the pair, fit "
                    "on the English training rows",
    "answer lookup": "the most frequent English training answer to questions opening with the "
                     "same words, if it occurs in the context",
    "random ranking": "expected top-1 accuracy of a random ranking: 100 / pool size",
    "majority": "the most frequent English training label (tagging: every token O)",
}
TREE_DEPTH = 4
TREE_ROWS = 20_000
SCORE = "model score"
ANSWERS_PER_OPENING = 100  # candidates tried per question opening (SQuAD has 10^4 answers)


@dataclass(frozen=True)
class Baseline:
    """One shortcut's score on one (task, language, split), in the metric it is compared on."""

    task: str
    language: str
    split: str
    baseline: str  # a key of DESCRIPTIONS
    metric: str  # the metrics.json record it stands beside ("f1", "accuracy")
    value: float  # 0-100
    n: int

    def record(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- tagging


def lookup_tags(train_tokens: Sequence[Sequence[str]], train_tags: Sequence[Sequence[str]],
                tokens: Sequence[Sequence[str]], unseen: str = "O") -> list[list[str]]:
    """Each token's most frequent training tag (ties: the tag seen first); `unseen` else."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for words, tags in zip(train_tokens, train_tags, strict=True):
        for word, tag in zip(words, tags, strict=True):
            counts[word][tag] += 1
    best = {word: c.most_common(1)[0][0] for word, c in counts.items()}
    return [[best.get(word, unseen) for word in sentence] for sentence in tokens]


def majority_tags(train_tags: Sequence[Sequence[str]], tokens: Sequence[Sequence[str]]
                  ) -> list[list[str]]:
    top = Counter(t for tags in train_tags for t in tags).most_common(1)[0][0]
    return [[top] * len(sentence) for sentence in tokens]


# --------------------------------------------------------------------------- pairs

def words(text: str) -> list[str]:
    """Lower-cased words without edge punctuation; CJK text one word per character."""
    out = []
    for chunk in text.lower().split():
        chunk = "".join(c for c in chunk if not unicodedata.category(c).startswith("P"))
        if any(_cjk(c) for c in chunk):
            out += [c for c in chunk if not c.isspace()]
        elif chunk:
            out.append(chunk)
    return out


def _cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


FEATURES = ("premise words", "hypothesis words", "difference", "ratio",
            "hypothesis words in premise", "premise words in hypothesis", "new words",
            "dropped words", "jaccard")


def overlap_features(a: str, b: str) -> list[float]:
    """Length and overlap of a pair: no vocabulary, the same features in every language."""
    wa, wb = words(a), words(b)
    sa, sb = set(wa), set(wb)
    na, nb = max(len(wa), 1), max(len(wb), 1)
    return [len(wa), len(wb), len(wb) - len(wa), nb / na,
            len(sb & sa) / max(len(sb), 1), len(sa & sb) / max(len(sa), 1),
            len(sb - sa), len(sa - sb), len(sa & sb) / max(len(sa | sb), 1)]


def overlap_tree(train_a: Sequence[str], train_b: Sequence[str], train_labels: Sequence[int]):
    """A fitted depth-4 decision tree on `overlap_features` (deterministic); on more than
    `TREE_ROWS` rows (MNLI's 393k) a fixed random sample of them, plenty for 9 features."""
    rows = range(len(train_labels))
    if len(rows) > TREE_ROWS:
        rows = sorted(np.random.default_rng(0).choice(len(rows), TREE_ROWS, replace=False))
    x = np.array([overlap_features(train_a[i], train_b[i]) for i in rows])
    return DecisionTreeClassifier(max_depth=TREE_DEPTH, random_state=0).fit(
        x, np.asarray([train_labels[i] for i in rows]))


def tree_predict(tree: Any, a: Sequence[str], b: Sequence[str]) -> list[int]:
    x = np.array([overlap_features(p, h) for p, h in zip(a, b, strict=True)])
    return [int(v) for v in tree.predict(x)]


def majority_labels(train_labels: Sequence[int], n: int) -> list[int]:
    top = Counter(train_labels).most_common(1)[0][0]
    return [int(top)] * n


# --------------------------------------------------------------------------- QA

def _openings(question: str) -> tuple[str, ...]:
    w = words(question)
    return tuple(" ".join(w[:k]) for k in (2, 1) if len(w) >= k)


def answer_lookup(train_questions: Sequence[str], train_answers: Sequence[str],
                  questions: Sequence[str], contexts: Sequence[str]) -> list[str]:
    """Per question: the most frequent training answer among questions with the same first two
    (else first) words that occurs in the context (earliest on ties); else any training
    answer in the context; else ""."""
    by_opening: dict[str, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for q, a in zip(train_questions, train_answers, strict=True):
        overall[a] += 1
        for key in _openings(q):
            by_opening[key][a] += 1
    ranked = {k: [a for a, _ in c.most_common(ANSWERS_PER_OPENING)]
              for k, c in by_opening.items()}
    fallback = [a for a, _ in overall.most_common(ANSWERS_PER_OPENING)]
    out = []
    for q, context in zip(questions, contexts, strict=True):
        pools = [ranked[k] for k in _openings(q) if k in ranked] + [fallback]
        out.append(next((a for pool in pools for a in pool if a and a in context), ""))
    return out


# --------------------------------------------------------------------------- retrieval

# --------------------------------------------------------------------------- cells

def for_split(task: Task, train: Any, split: Any) -> list[Baseline]:
    """The shortcuts of `task`'s format on one evaluated split (`xtl.data.sources.Split`), fit on
    the English training rows `train` (a Split; None for retrieval). Formats without
    shortcuts here give []."""
    language, name = split.language, split.split
    rows = split.rows
    if task.format == "retrieval" and task.metric == "accuracy":
        pool = sum(s is not None for s in rows["source"])
        return [Baseline(task.name, language, name, "random ranking", "accuracy",
                         chance.random_ranking(pool), pool)]
    if train is None:
        return []
    if task.format == "tagging":
        from xtl.data.tasks.tagging_rows import references

        gold, fit = references(rows), references(train.rows)
        guesses = {"lookup": lookup_tags(train.rows["tokens"], fit, rows["tokens"]),
                   "majority": majority_tags(fit, rows["tokens"])}
        metric = metrics.headline_key(task)  # f1; CCG: token accuracy
    elif task.format == "pair_classification":
        gold = list(rows["label"])
        a, b = rows["text_a"], rows["text_b"] if "text_b" in rows.column_names else None
        if b is None:
            return [_scored(task, split, "majority", majority_labels(train.rows["label"],
                                                                     len(gold)), gold,
                            "accuracy")]
        tree = overlap_tree(train.rows["text_a"], train.rows["text_b"], train.rows["label"])
        guesses = {"overlap tree": tree_predict(tree, a, b),
                   "majority": majority_labels(train.rows["label"], len(gold))}
        metric = "accuracy"
    elif task.format == "span_qa":
        from xtl.data.tasks.span_qa import references

        gold = references(rows)
        train_answers = [a["text"][0] if a["text"] else "" for a in train.rows["answers"]]
        guesses = {"answer lookup": answer_lookup(train.rows["question"], train_answers,
                                                  rows["question"], rows["context"])}
        metric = "f1"  # QA's F1 (the headline averages it with EM)
    else:
        return []
    return [_scored(task, split, key, guess, gold, metric) for key, guess in guesses.items()]


def _scored(task: Task, split: Any, key: str, guess: list, gold: list, metric: str) -> Baseline:
    with warnings.catch_warnings():  # seqeval warns when a shortcut predicts no entity at all
        warnings.simplefilter("ignore")
        scores = metrics.score(task, guess, gold, split.language)
    return Baseline(task.name, split.language, split.split, key, metric, float(scores[metric]),
                    len(gold))


def for_cell(task: Task, train: Any, splits: Sequence[Any]) -> list[dict]:
    """metrics.json `baselines` of a cell that evaluated `splits` of `task`."""
    return [b.record() for split in splits for b in for_split(task, train, split)]


def for_stage(tasks: Sequence[Task], trains: Sequence[Any], devs: Sequence[Any]) -> list[dict]:
    """metrics.json `baselines` of an intermediate stage: each task's dev rows."""
    return [b for task, train, dev in zip(tasks, trains, devs, strict=True)
            for b in for_cell(task, train, [dev])]


def describe(baselines: Sequence[dict]) -> str:
    """What each shortcut in `baselines` is, one line each ('' when none)."""
    names = [n for n in DESCRIPTIONS if any(b["baseline"] == n for b in baselines)]
    return "\n".join(f"{n}: {DESCRIPTIONS[n]}" for n in names)


# --------------------------------------------------------------------------- comparison

def compare(records: Sequence[dict], baselines: Sequence[dict]):
    """One row per (task, language, split): the model's score, each shortcut's and whether the
    model beats every one (pandas; empty when there are no baselines)."""
    import pandas as pd

    if not baselines:
        return pd.DataFrame(columns=["task", "language", "split", "metric", SCORE])
    model = {(r["task"], r["language"], r["split"], r["metric"]): r["value"] for r in records}
    rows: dict[tuple, dict] = {}
    for b in baselines:
        key = (b["task"], b["language"], b["split"], b["metric"])
        if key not in model:
            continue
        row = rows.setdefault(key, {**dict(zip(("task", "language", "split", "metric"), key,
                                               strict=True)), SCORE: model[key]})
        row[b["baseline"]] = b["value"]
    frame = pd.DataFrame(list(rows.values()))
    if frame.empty:
        return frame
    names = [c for c in DESCRIPTIONS if c in frame]
    frame["beats"] = [_beats(r, names) for _, r in frame.iterrows()]
    return frame


def _beats(row: Any, names: Sequence[str]) -> str:
    lost = [n for n in names if row[n] == row[n] and row[SCORE] <= row[n]]  # NaN: not run
    return "all" if not lost else "not " + ", ".join(lost)


def load(run_dirs: Any):
    """Every cell's model scores beside its shortcuts (pandas), with the cell's model,
    intermediate label and kind, from the metrics.json files of one or several run
    directories (a cell id seen twice is kept once)."""
    import pandas as pd

    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    parts, seen = [], set()
    for root in dirs:
        plan = json.loads((root / "plan.json").read_text(encoding="utf-8"))
        for cell in plan["cells"]:
            path = root / "cells" / cell["id"] / "metrics.json"
            if cell["id"] in seen or not path.is_file():
                continue
            seen.add(cell["id"])
            doc = json.loads(path.read_text(encoding="utf-8"))
            frame = compare(doc.get("records", []), doc.get("baselines", []))
            if frame.empty:
                continue
            axes = cell["axes"]
            frame.insert(0, "kind", cell["kind"])
            frame.insert(1, "model", axes["model"])
            frame.insert(2, "intermediate", axes["intermediate"])
            frame.insert(3, "cell", cell["id"])
            parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def summary(frame: Any) -> tuple[Any, Any]:
    """(targets, stages) for the analysis. Targets: per (model, task, language, metric), the
    model's score after each intermediate task (a column each, mean over seeds) beside each
    shortcut, and `beats`: "all", or the shortcuts that some intermediate task's score does
    not beat. Stages: each intermediate stage's own dev score beside its shortcuts."""
    import pandas as pd

    if frame.empty:
        return pd.DataFrame(), pd.DataFrame()
    names = [n for n in DESCRIPTIONS if n in frame]
    keys = ["model", "task", "language", "metric"]
    targets = stages = pd.DataFrame()
    evals = frame[frame["kind"] != "stage"]
    if len(evals):
        scores = (evals.groupby([*keys, "intermediate"], sort=False)[SCORE].mean()
                  .unstack("intermediate"))
        cuts = evals.groupby(keys, sort=False)[names].mean()
        worst = scores.min(axis=1)
        targets = scores.join(cuts.dropna(axis=1, how="all"))
        targets["beats"] = [
            _beats({SCORE: worst[k], **cuts.loc[k].to_dict()}, names) for k in targets.index]
        targets = targets.reset_index()
        targets.columns.name = None
    own = frame[frame["kind"] == "stage"]
    if len(own):
        stages = own.drop(columns=["kind", "cell", "split"]).rename(
            columns={"intermediate": "stage"}).dropna(axis=1, how="all")
        stages = stages[[c for c in stages if c != "beats"] + ["beats"]]
    return targets, stages
