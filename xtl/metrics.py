"""Scores, on the 0-100 scale the XTREME tables use, reproducing the official XTREME scorers.

`score(task, predictions, references, language=None) -> dict[str, float]` is the one entry point
every notebook uses; it dispatches on `task.metric`:

| task.metric  | tasks                        | keys returned                        |
|--------------|------------------------------|--------------------------------------|
| "accuracy"   | XNLI, PAWS-X, XCOPA, Tatoeba | accuracy                             |
| "seqeval_f1" | PAN-X                        | f1, token_accuracy                   |
| "udpos_f1"   | UD-POS                       | f1, token_accuracy                   |
| "squad"      | XQuAD, TyDiQA-GoldP          | exact_match, f1                      |
| "mlqa"       | MLQA (needs `language`)      | exact_match, f1                      |
| "squad_v2"   | SQuAD 2.0-style (no-answer)  | exact_match, f1, HasAns_*, NoAns_*   |
| "bucc_f1"    | BUCC 2018                    | f1, precision, recall[, threshold]   |
| "map@20"     | LAReQA, Mewsli-X             | map@20                               |

Every value is a percentage (0-100). `headline(task, scores)` gives the one number a table shows
(QA: (EM + F1) / 2, as XTREME's `avg_metric`). The per-metric functions below are public too:
`tagging_scores` / `udpos_scores` add precision and recall; `bucc_dev_test` is the BUCC
dev-tuned-threshold protocol. Bad inputs raise `xtl.errors.DataError` before any scoring.
"""

from __future__ import annotations

import functools
import math
import re
import string
import sys
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from xtl.errors import DataError, unknown

if TYPE_CHECKING:  # only for hints: importing the registry loads torch (seconds)
    from xtl.tasks import Task

# --------------------------------------------------------------------------------------------
# Shared checks
# --------------------------------------------------------------------------------------------


def _check_aligned(predictions: Sequence, references: Sequence, what: str) -> None:
    if len(references) == 0:
        raise DataError(f"{what}: no references to score (empty input)")
    if len(predictions) != len(references):
        raise DataError(f"{what}: {len(predictions)} predictions for {len(references)} references")


def _prf(gold: set, predicted: set) -> dict[str, float]:
    """Micro precision/recall/F1 (0-100) of two sets; 0 where undefined, as seqeval does."""
    correct = len(gold & predicted)
    precision = correct / len(predicted) if predicted else 0.0
    recall = correct / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": 100.0 * f1, "precision": 100.0 * precision, "recall": 100.0 * recall}


def _shown(items: Iterable, limit: int = 5) -> str:
    items = list(items)
    head = ", ".join(repr(x) for x in items[:limit])
    return head + (f", ... ({len(items)} in all)" if len(items) > limit else "")


# --------------------------------------------------------------------------------------------
# Classification and Tatoeba
# --------------------------------------------------------------------------------------------


def accuracy(predictions: Sequence, references: Sequence) -> float:
    """Percentage of exact matches over examples; labels compared as given (ints or strings).

    No stripping or type coercion happens here: 1 and "1" differ (as the official XCOPA scorer);
    strip string labels before calling where the official scorer strips (XNLI, PAWS-X, Tatoeba).
    For Tatoeba the examples are the queries: a duplicate target sentence retrieved at the wrong
    index is a miss, and each query counts once however many copies of it exist.
    """
    _check_aligned(predictions, references, "accuracy")
    hits = sum(p == r for p, r in zip(predictions, references, strict=True))
    return 100.0 * hits / len(references)


# --------------------------------------------------------------------------------------------
# Tagging: PAN-X (seqeval) and UD-POS (seqeval 0.0.12 chunks)
# --------------------------------------------------------------------------------------------


def _tag_names(sequences: Sequence[Sequence], label_names: Sequence[str], side: str
               ) -> list[list[str]]:
    """Per-sentence lists of tag strings; integer tags are mapped through `label_names`."""
    out = []
    for i, sentence in enumerate(sequences):
        if isinstance(sentence, str):
            raise DataError(f"{side} sentence {i} is a string; expected a list of tags")
        tags = []
        for tag in sentence:
            if not isinstance(tag, str):
                if not label_names or not 0 <= int(tag) < len(label_names):
                    raise DataError(f"{side} sentence {i}: tag {tag!r} is not a tag name and "
                                    f"not an index into {len(label_names)} label names")
                tag = label_names[int(tag)]
            if not tag:
                raise DataError(f"{side} sentence {i}: empty tag")
            tags.append(tag)
        out.append(tags)
    return out


def _tag_pairs(predictions: Sequence[Sequence], references: Sequence[Sequence],
               label_names: Sequence[str] = ()) -> tuple[list[list[str]], list[list[str]]]:
    _check_aligned(predictions, references, "tagging")
    pred = _tag_names(predictions, label_names, "predicted")
    gold = _tag_names(references, label_names, "reference")
    for i, (p, g) in enumerate(zip(pred, gold, strict=True)):
        if len(p) != len(g):
            raise DataError(f"tagging: sentence {i} has {len(p)} predicted tags for {len(g)} words")
    if not any(gold):
        raise DataError("tagging: the reference sentences hold no words")
    return pred, gold


def token_accuracy(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]]
                   ) -> float:
    """Percentage of words whose predicted tag equals the gold tag (all sentences pooled)."""
    pred, gold = _tag_pairs(predictions, references)
    pairs = [(p, g) for ps, gs in zip(pred, gold, strict=True) for p, g in zip(ps, gs, strict=True)]
    return 100.0 * sum(p == g for p, g in pairs) / len(pairs)


def tagging_scores(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
                   label_names: Sequence[str] = ()) -> dict[str, float]:
    """PAN-X: seqeval (installed version) micro chunk scores, default lenient mode.

    `predictions`/`references`: one list of IOB tags per sentence (strings, or label ids mapped
    through `label_names`). Returns {"f1", "precision", "recall", "token_accuracy"}, 0-100.
    IOB tags score the same in every seqeval version.
    """
    from seqeval.metrics import f1_score, precision_score, recall_score

    pred, gold = _tag_pairs(predictions, references, label_names)
    return {"f1": 100.0 * f1_score(gold, pred),
            "precision": 100.0 * precision_score(gold, pred),
            "recall": 100.0 * recall_score(gold, pred),
            "token_accuracy": token_accuracy(pred, gold)}


# seqeval 0.0.12's boundary letters: "O" and "." are outside, "S"/"E" close a chunk, B/I/E/S as
# in IOBES. For any other first letter only a change of type opens or closes a chunk.
_OUTSIDE = ("O", ".")


def _legacy_split(tag: str) -> tuple[str, str]:
    """(boundary letter, type) as seqeval 0.0.12 reads a tag: first char, text after last '-'."""
    return tag[0], tag.split("-")[-1]


def _legacy_ends(prev: str, cur: str, prev_type: str, cur_type: str) -> bool:
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and cur in ("B", "S", "O"):
        return True
    return prev not in _OUTSIDE and prev_type != cur_type


def _legacy_starts(prev: str, cur: str, prev_type: str, cur_type: str) -> bool:
    if cur in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and cur in ("E", "I"):
        return True
    return cur not in _OUTSIDE and prev_type != cur_type


def legacy_chunks(sentences: Sequence[Sequence[str]]) -> set[tuple[str, int, int]]:
    """Chunks (type, first, last) as seqeval 0.0.12's `get_entities` extracts them.

    Sentences are concatenated with an "O" after each (so no chunk crosses a sentence end) and
    offsets count over that concatenation, exactly as 0.0.12 does; only equality of chunks
    matters for F1, so the offsets need only be consistent between gold and prediction.
    """
    flat = [tag for sentence in sentences for tag in (*sentence, "O")]
    chunks: set[tuple[str, int, int]] = set()
    prev, prev_type, start = "O", "", 0
    for i, tag in enumerate((*flat, "O")):  # the trailing "O" flushes the last chunk
        cur, cur_type = _legacy_split(tag)
        if _legacy_ends(prev, cur, prev_type, cur_type):
            chunks.add((prev_type, start, i - 1))
        if _legacy_starts(prev, cur, prev_type, cur_type):
            start = i
        prev, prev_type = cur, cur_type
    return chunks


def udpos_scores(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]],
                 label_names: Sequence[str] = ()) -> dict[str, float]:
    """UD-POS as the OFFICIAL XTREME number: chunk F1 with seqeval 0.0.12 semantics.

    The official `evaluate.py` calls seqeval's `f1_score` on UPOS tags, and its own expected value
    for the repository's mock data (evaluate_test.py: avg_f1 70.21746..., precision 71.0223...,
    recall 69.5498...) is reproduced only by seqeval 0.0.12 -- and by this function, to 1e-12,
    on all three. What 0.0.12 does with a tag that has no "B-"/"I-" prefix: the boundary letter
    is the tag's FIRST CHARACTER and the type is the WHOLE TAG ("NOUN" -> letter "N", type
    "NOUN"). No UPOS tag starts with O, B or E, so on UPOS tags a chunk is:
      - a maximal run of consecutive identical tags within a sentence ("NOUN NOUN" is ONE chunk
        NOUN over two words; a change of tag ends the run), except that
      - SCONJ and SYM (first letter "S" = IOBES singleton) are one-word chunks each, so
        "SYM SYM" is two chunks; INTJ ("I" = inside) runs merge like any other tag.
    A predicted chunk counts only if type, first and last word all match a gold chunk.
    Modern seqeval (>= 0.0.19, incl. 1.2.x) instead reads "NOUN" as letter "N" + type "OUN";
    that renames most tags harmlessly but maps CCONJ and SCONJ to the same type "CONJ" (and X
    to "_"), so a CCONJ next to an SCONJ loses or merges chunks: 70.40 on the same mock data.

    Returns {"f1", "precision", "recall", "token_accuracy"}, 0-100; token accuracy (plain
    per-word tagging accuracy, what most POS papers report) is given beside the chunk F1.
    """
    pred, gold = _tag_pairs(predictions, references, label_names)
    scores = _prf(legacy_chunks(gold), legacy_chunks(pred))
    return {**scores, "token_accuracy": token_accuracy(pred, gold)}


# --------------------------------------------------------------------------------------------
# Extractive QA: SQuAD v1.1 (XQuAD, TyDiQA), MLQA, SQuAD 2.0
# --------------------------------------------------------------------------------------------

_EN_ARTICLES = re.compile(r"\b(a|an|the)\b")
# Per-language article patterns of MLQA's evaluate script; None = no articles removed.
MLQA_ARTICLES: Mapping[str, re.Pattern | None] = {
    "en": _EN_ARTICLES,
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "ar": re.compile("ال"),  # every occurrence, even inside a word (the official regex's effect)
    "hi": None,
    "zh": None,
}
# The official MLQA script only segments this range as CJK (not the full CJK blocks).
_CJK = re.compile("[\u4e00-\u9fa5]")


@functools.cache
def _mlqa_punct() -> frozenset[str]:
    """MLQA's punctuation: every Unicode "P*" character plus ASCII punctuation (which adds the
    symbols $+<=>^`|~). Built on first use: scanning all code points takes a moment."""
    unicode_p = (chr(i) for i in range(sys.maxunicode)
                 if unicodedata.category(chr(i)).startswith("P"))
    return frozenset(unicode_p) | frozenset(string.punctuation)


def normalize_squad(text: str) -> str:
    """SQuAD v1.1 normaliser: lowercase, drop ASCII punctuation and a/an/the, squash spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(_EN_ARTICLES.sub(" ", text).split())


def mixed_segmentation(text: str) -> list[str]:
    """zh tokens: each CJK character (U+4E00-U+9FA5) or punctuation mark alone, other runs split
    on whitespace and kept whole ("abc北京" -> ["abc", "北", "京"])."""
    punct = _mlqa_punct()
    tokens, run = [], []
    for ch in text:
        if _CJK.match(ch) or ch in punct:
            tokens.extend("".join(run).split())
            run = []
            tokens.append(ch)
        else:
            run.append(ch)
    tokens.extend("".join(run).split())
    return tokens


def _mlqa_pattern(language: str | None) -> re.Pattern | None:
    if language not in MLQA_ARTICLES:
        raise unknown("MLQA language", language, MLQA_ARTICLES, error=DataError)
    return MLQA_ARTICLES[language]


def normalize_mlqa(text: str, language: str) -> str:
    """MLQA normaliser: lowercase, drop Unicode punctuation, drop the language's articles (ar:
    every "ال" becomes a space), then whitespace tokens (zh: mixed segmentation) joined by " "."""
    pattern = _mlqa_pattern(language)
    punct = _mlqa_punct()
    text = "".join(ch for ch in text.lower() if ch not in punct)
    if pattern is not None:
        text = pattern.sub(" ", text)
    tokens = mixed_segmentation(text) if language == "zh" else text.split()
    return " ".join(t for t in tokens if t.strip())


def _overlap_f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    """SQuAD v1.1 token F1 (0-1); no shared token (including both empty) scores 0."""
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _v2_f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    """SQuAD 2.0 token F1 (0-1): if either side is empty, 1 only when both are."""
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    return _overlap_f1(pred_tokens, gold_tokens)


def _answer_texts(reference: Mapping[str, Any], index: int) -> list[str]:
    """Gold texts of one reference: "answers" is a list of strings or a Hub-style dict with a
    "text" list (squad/xquad/mlqa/tydiqa on the Hub)."""
    if "id" not in reference or "answers" not in reference:
        raise DataError(f"QA reference {index} needs 'id' and 'answers'; got {sorted(reference)}")
    answers = reference["answers"]
    if isinstance(answers, Mapping):
        answers = answers.get("text", [])
    if isinstance(answers, str) or not all(isinstance(a, str) for a in answers):
        raise DataError(f"QA reference {reference['id']!r}: answers must be a list of strings")
    return list(answers)


def _qa_rows(predictions: Mapping[str, str | None] | Sequence[str | None],
             references: Sequence[Mapping[str, Any]]) -> list[tuple[str | None, list[str]]]:
    """(prediction or None, gold texts) per reference, checking ids and alignment."""
    if len(references) == 0:
        raise DataError("QA: no references to score (empty input)")
    ids = [str(ref.get("id")) for ref in references]
    dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dupes:
        raise DataError(f"QA: duplicate reference ids {_shown(dupes)}")
    golds = [_answer_texts(ref, i) for i, ref in enumerate(references)]
    if isinstance(predictions, Mapping):
        extra = sorted(set(map(str, predictions)) - set(ids))
        if extra:
            raise DataError(f"QA: predictions for ids not in the references: {_shown(extra)}")
        preds = [predictions.get(i) for i in ids]
    else:
        _check_aligned(predictions, references, "QA")
        preds = list(predictions)
    missing = [i for i, p in zip(ids, preds, strict=True) if p is None]
    if missing:
        warnings.warn(f"QA: {len(missing)} questions have no prediction and score 0: "
                      f"{_shown(missing)}", stacklevel=3)
    for i, p in zip(ids, preds, strict=True):
        if p is not None and not isinstance(p, str):
            raise DataError(f"QA: prediction for {i!r} is {type(p).__name__}, not text")
    return list(zip(preds, golds, strict=True))


def _qa_v1(rows: list[tuple[str | None, list[str]]], ids: list[str],
           normalize: Callable[[str], str]) -> dict[str, float]:
    """EM/F1 (0-100) with max over gold answers; an unanswered question scores 0."""
    em = f1 = 0.0
    for qid, (pred, golds) in zip(ids, rows, strict=True):
        if not golds:
            raise DataError(f"QA: question {qid!r} has an empty gold-answer list (the official "
                            "v1.1 scorer crashes on it; drop the question or use squad_v2)")
        if pred is None:
            continue
        norm_pred = normalize(pred)
        norm_golds = [normalize(g) for g in golds]
        em += max(float(norm_pred == g) for g in norm_golds)
        f1 += max(_overlap_f1(norm_pred.split(), g.split()) for g in norm_golds)
    return {"exact_match": 100.0 * em / len(rows), "f1": 100.0 * f1 / len(rows)}


def squad(predictions: Mapping[str, str | None] | Sequence[str | None],
          references: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """SQuAD v1.1 EM/F1 with the ENGLISH normaliser for every language (XQuAD, TyDiQA-GoldP).

    `predictions`: {question id: answer text} (a missing id scores 0, with a warning; an id not
    among the references is an error) or a list aligned with `references` (None = unanswered).
    `references`: [{"id": str, "answers": [texts] or {"text": [texts], ...}}, ...]; an empty
    answer list is an error. Every id, "data" included, is scored the same way.
    Returns {"exact_match", "f1"}, 0-100, each the mean over questions of the max over answers.
    """
    rows = _qa_rows(predictions, references)
    return _qa_v1(rows, [str(r["id"]) for r in references], normalize_squad)


def mlqa(predictions: Mapping[str, str | None] | Sequence[str | None],
         references: Sequence[Mapping[str, Any]], language: str | None) -> dict[str, float]:
    """MLQA EM/F1 with the per-language normaliser (`normalize_mlqa`); inputs as `squad`.

    `language` must be one of MLQA_ARTICLES (en es de vi ar hi zh); anything else is an error.
    Returns {"exact_match", "f1"}, 0-100.
    """
    _mlqa_pattern(language)
    rows = _qa_rows(predictions, references)
    return _qa_v1(rows, [str(r["id"]) for r in references],
                  lambda text: normalize_mlqa(text, language))


def _v2_question(pred: str | None, golds: list[str]) -> tuple[float, float]:
    if pred is None:
        return 0.0, 0.0
    kept = [g for g in golds if normalize_squad(g)] or [""]  # no-answer gold is ""
    pred_tokens = normalize_squad(pred).split()
    em = max(float(normalize_squad(g) == normalize_squad(pred)) for g in kept)
    f1 = max(_v2_f1(pred_tokens, normalize_squad(g).split()) for g in kept)
    return em, f1


def squad_v2(predictions: Mapping[str, str | None] | Sequence[str | None],
             references: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """SQuAD 2.0 EM/F1: an empty answer list marks a no-answer question, matched (EM = F1 = 1)
    by an empty prediction "" and by nothing else; a missing prediction (None) scores 0.

    Inputs as `squad`. Gold answers that normalise to "" are dropped (as the official script
    does). No no-answer-probability threshold search is done. Returns {"exact_match", "f1"} over
    all questions plus "HasAns_exact_match"/"HasAns_f1" and "NoAns_exact_match"/"NoAns_f1" for
    whichever of the two subsets is non-empty; all 0-100.
    """
    rows = _qa_rows(predictions, references)
    per_question = [(_v2_question(pred, golds), bool(golds)) for pred, golds in rows]
    out = _mean_em_f1([s for s, _ in per_question], "")
    for prefix, has_answer in (("HasAns_", True), ("NoAns_", False)):
        subset = [s for s, has in per_question if has == has_answer]
        if subset:
            out.update(_mean_em_f1(subset, prefix))
    return out


def _mean_em_f1(scores: list[tuple[float, float]], prefix: str) -> dict[str, float]:
    return {f"{prefix}exact_match": 100.0 * sum(em for em, _ in scores) / len(scores),
            f"{prefix}f1": 100.0 * sum(f1 for _, f1 in scores) / len(scores)}


def qa_score(scores: Mapping[str, float]) -> float:
    """The QA task number XTREME reports: (EM + F1) / 2 (0-100). Given language MEANS of EM and F1
    it is XTREME's `avg_metric`; by linearity it also equals the mean of per-language values."""
    return (scores["exact_match"] + scores["f1"]) / 2


# --------------------------------------------------------------------------------------------
# BUCC 2018: threshold search over mined candidate pairs
# --------------------------------------------------------------------------------------------

Pair = tuple[Hashable, Hashable]


def bucc_candidates(candidates: Mapping[Pair, float] | Iterable[tuple[Hashable, Hashable, float]]
                    ) -> dict[Pair, float]:
    """{(source id, target id): score} from a mapping or (source, target, score) triples.

    A pair listed twice keeps its max score (as the official candidate reader); order of first
    appearance is kept, since it decides ties in the threshold search. NaN scores and an empty
    candidate list are errors.
    """
    items = candidates.items() if isinstance(candidates, Mapping) else _triples(candidates)
    out: dict[Pair, float] = {}
    for pair, value in items:
        value = float(value)
        if math.isnan(value):
            raise DataError(f"BUCC: candidate {pair!r} has a NaN score")
        out[pair] = max(value, out.get(pair, -math.inf))
    if not out:
        raise DataError("BUCC: no candidate pairs to score (empty input)")
    return out


def _triples(candidates: Iterable) -> Iterable[tuple[Pair, float]]:
    for row in candidates:
        if len(row) != 3:
            raise DataError(f"BUCC: candidate {row!r} is not (source, target, score)")
        yield (row[0], row[1]), row[2]


def _gold_pairs(gold: Iterable[Sequence]) -> set[Pair]:
    pairs = set()
    for row in gold:
        if len(row) != 2:
            raise DataError(f"BUCC: gold row {row!r} is not (source, target)")
        pairs.add((row[0], row[1]))
    if not pairs:
        raise DataError("BUCC: the gold pair list is empty (recall is undefined)")
    return pairs


def bucc_threshold(candidates: Mapping[Pair, float] | Iterable, gold: Iterable[Sequence]
                   ) -> float:
    """The official BUCC threshold search (utils_retrieve.bucc_optimize), on `gold`.

    Candidates sorted by score, descending (ties keep their input order, like the official
    stable sort); walking down, P/R/F1 of "the top n are predicted" are computed against the
    gold and the first strictly best F1 is kept; the threshold is the MIDPOINT between that
    candidate's score and the next candidate's. Pairs with score >= threshold are predicted.
    Edge cases: if the best F1 is at the LAST candidate (the official code crashes there on
    items[i + 1]) the threshold is that last candidate's score, so every candidate is predicted,
    which is exactly the F1-maximising cut; if no candidate is gold the official 0.0 is kept.
    """
    cands, gold_set = bucc_candidates(candidates), _gold_pairs(gold)
    ranked = sorted(cands.items(), key=lambda item: -item[1])
    best_f1, best, correct = 0.0, None, 0
    for n, (pair, _) in enumerate(ranked, start=1):
        correct += pair in gold_set
        if correct:
            # P and R first, then F1: the same float path as the official code, so ties compare
            # equal where it would.
            precision, recall = correct / n, correct / len(gold_set)
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best_f1:
                best_f1, best = f1, n - 1
    if best is None:
        return 0.0
    if best == len(ranked) - 1:
        return ranked[best][1]
    return (ranked[best][1] + ranked[best + 1][1]) / 2


def pair_scores(predicted: Iterable[Sequence], gold: Iterable[Sequence]) -> dict[str, float]:
    """{"f1", "precision", "recall"} (0-100) of a set of predicted pairs against the gold pairs
    (the official evaluate.py on a BUCC submission); no correct pair scores 0 throughout."""
    predicted_set = {(row[0], row[1]) for row in predicted}
    return _prf(_gold_pairs(gold), predicted_set)


def bucc_extract(candidates: Mapping[Pair, float] | Iterable, threshold: float) -> set[Pair]:
    """The candidate pairs predicted at `threshold` (score >= threshold)."""
    return {pair for pair, value in bucc_candidates(candidates).items() if value >= threshold}


def bucc_f1(candidates: Mapping[Pair, float] | Iterable, gold: Iterable[Sequence],
            threshold: float | None = None) -> dict[str, float]:
    """P/R/F1 of the pairs predicted at `threshold`; with threshold=None it is tuned on this same
    gold (the official dev/"sample" protocol, an oracle on that split).

    Returns {"f1", "precision", "recall", "threshold"}; the first three 0-100, the threshold on
    the candidates' score scale.
    """
    gold = list(gold)
    if threshold is None:
        threshold = bucc_threshold(candidates, gold)
    if math.isnan(threshold):
        raise DataError("BUCC: the threshold is NaN")
    return {**pair_scores(bucc_extract(candidates, threshold), gold), "threshold": threshold}


def bucc_dev_test(dev_candidates: Mapping[Pair, float] | Iterable, dev_gold: Iterable[Sequence],
                  test_candidates: Mapping[Pair, float] | Iterable,
                  test_gold: Iterable[Sequence]) -> dict[str, float]:
    """BUCC test scores with the threshold tuned on dev: {"f1", "precision", "recall" (test,
    0-100), "threshold" (tuned on dev)}."""
    return bucc_f1(test_candidates, test_gold, threshold=bucc_threshold(dev_candidates, dev_gold))


# --------------------------------------------------------------------------------------------
# Ranked retrieval: LAReQA and Mewsli-X
# --------------------------------------------------------------------------------------------


def average_precision_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int
                           ) -> float:
    """AP@k (0-1) of one query, as XTREME's LAReQA scorer (`utils_lareqa.average_precision_at_k`):
    at each rank i <= k holding a relevant item not seen higher up, add (hits so far) / i; divide
    by min(|relevant|, k). A repeated prediction counts once; Mewsli-X (one gold entity) is
    1 / rank of the gold entity, 0 beyond rank k."""
    gold = set(relevant)
    if not gold:
        raise DataError("average precision: a query with no relevant item")
    hits, total, seen = 0, 0.0, set()
    for i, item in enumerate(list(ranked)[:k], start=1):
        if item in gold and item not in seen:
            hits += 1
            total += hits / i
        seen.add(item)
    return total / min(len(gold), k)


def map_at_k(predictions: Sequence[Sequence[Hashable]], references: Sequence[Iterable[Hashable]],
             k: int = 20) -> float:
    """mAP@k (0-100): the mean over queries of `average_precision_at_k`. `predictions[i]` is
    query i's ranked candidate ids (best first; only the first k are read), `references[i]`
    the ids of its relevant candidates (at least one)."""
    _check_aligned(predictions, references, f"mAP@{k}")
    if k < 1:
        raise DataError(f"mAP@k: k must be >= 1, got {k}")
    empty = [i for i, ref in enumerate(references) if not list(ref)]
    if empty:
        raise DataError(f"mAP@{k}: queries {_shown(empty)} have no relevant candidate")
    return 100.0 * sum(average_precision_at_k(p, r, k)
                       for p, r in zip(predictions, references, strict=True)) / len(references)


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def _score_accuracy(task: Task, predictions: Any, references: Any, language: str | None
                    ) -> dict[str, float]:
    return {"accuracy": accuracy(predictions, references)}


def _score_tagging(task: Task, predictions: Any, references: Any, language: str | None
                   ) -> dict[str, float]:
    scores = tagging_scores(predictions, references, task.label_names)
    return {"f1": scores["f1"], "token_accuracy": scores["token_accuracy"]}


def _score_udpos(task: Task, predictions: Any, references: Any, language: str | None
                 ) -> dict[str, float]:
    scores = udpos_scores(predictions, references, task.label_names)
    return {"f1": scores["f1"], "token_accuracy": scores["token_accuracy"]}


def _score_bucc(task: Task, predictions: Any, references: Any, language: str | None
                ) -> dict[str, float]:
    # Scored candidates: threshold tuned on these references (dev protocol); plain pairs: an
    # already-extracted prediction set (a submission), scored as is.
    if isinstance(predictions, Mapping):
        return bucc_f1(predictions, references)
    rows = list(predictions)
    if not rows:
        raise DataError("BUCC: no predicted pairs (empty input)")
    if len(rows[0]) == 3:
        return bucc_f1(rows, references)
    return pair_scores(rows, references)


METRICS: dict[str, Callable[[Task, Any, Any, str | None], dict[str, float]]] = {
    "accuracy": _score_accuracy,
    "seqeval_f1": _score_tagging,
    "udpos_f1": _score_udpos,
    "squad": lambda task, p, r, lang: squad(p, r),
    "mlqa": lambda task, p, r, lang: mlqa(p, r, lang),
    "squad_v2": lambda task, p, r, lang: squad_v2(p, r),
    "bucc_f1": _score_bucc,
    "map@20": lambda task, p, r, lang: {"map@20": map_at_k(p, r, 20)},
    # supertagging (CCG): per-token accuracy, as jiant reports it
    "token_accuracy": lambda task, p, r, lang: {"token_accuracy": token_accuracy(
        _tag_names(p, task.label_names, "prediction"), _tag_names(r, task.label_names,
                                                                  "reference"))},
}
QA_METRICS = frozenset({"squad", "mlqa", "squad_v2"})


def score(task: Task, predictions: Any, references: Any, language: str | None = None
          ) -> dict[str, float]:
    """{metric name: value in 0-100} for one language of `task`, by `task.metric` (table above).

    Input shapes: accuracy -- aligned label lists; tagging -- aligned lists of per-sentence tag
    lists (strings or ids into task.label_names); QA -- see `squad`; BUCC -- scored candidates
    ({(src, tgt): score} or (src, tgt, score) triples; threshold tuned on `references`, the gold
    pairs) or already-predicted (src, tgt) pairs; map@20 -- per query, ranked candidate ids and
    the relevant ids (`map_at_k`).
    """
    if task.metric not in METRICS:
        raise unknown("metric", task.metric, METRICS)
    try:
        return METRICS[task.metric](task, predictions, references, language)
    except DataError as err:
        raise DataError(f"{task.name}/{language}: {err}") from None


def headline(task: Task, scores: Mapping[str, float]) -> float:
    """The one number a table shows for `scores` from `score`: accuracy, F1, or for QA tasks
    (EM + F1) / 2."""
    if task.metric in QA_METRICS:
        return qa_score(scores)
    return scores[headline_key(task)]


def headline_key(task: Task) -> str:
    """The record (metric name) a per-language table or figure shows for `task`."""
    return {"accuracy": "accuracy", "token_accuracy": "token_accuracy",
            "map@20": "map@20"}.get(task.metric, "f1")


def collapsed(predictions: Sequence) -> bool:
    """A classifier that predicts one class for every example has collapsed (XNLI at ~33%)."""
    return len(set(predictions)) <= 1 and len(predictions) > 1
