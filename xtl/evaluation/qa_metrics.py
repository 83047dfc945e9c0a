"""Extractive QA scores as the official scorers compute them: SQuAD v1.1 (XQuAD, TyDiQA-GoldP),
MLQA (per-language normalisation), SQuAD 2.0 (unanswerable questions); `qa_score` is the
(EM + F1) / 2 a table shows.
"""

from __future__ import annotations

import functools
import re
import string
import sys
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from xtl.core.errors import DataError, unknown
from xtl.evaluation.metric_checks import check_aligned, listed

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
        raise DataError(f"QA: duplicate reference ids {listed(dupes)}")
    golds = [_answer_texts(ref, i) for i, ref in enumerate(references)]
    if isinstance(predictions, Mapping):
        extra = sorted(set(map(str, predictions)) - set(ids))
        if extra:
            raise DataError(f"QA: predictions for ids not in the references: {listed(extra)}")
        preds = [predictions.get(i) for i in ids]
    else:
        check_aligned(predictions, references, "QA")
        preds = list(predictions)
    missing = [i for i, p in zip(ids, preds, strict=True) if p is None]
    if missing:
        warnings.warn(f"QA: {len(missing)} questions have no prediction and score 0: "
                      f"{listed(missing)}", stacklevel=3)
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
