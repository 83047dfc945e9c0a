"""SQuAD v1.1 rows (Hub schema) -> question / answer-sentence pairs for dual-encoder training
(LAReQA's English training data, as XTREME-R's baseline: SQuAD v1.1 questions against the
sentences of their paragraphs).

SQuAD has no sentence breaks, so contexts are split here by a rule (`split_sentences`): a
sentence ends at `.`, `!` or `?` (plus closing quotes or brackets) followed by whitespace and
an upper-case letter, a digit or an opening quote or bracket, unless the word before the full
stop is a known abbreviation or an initial ("U.S.", "Dr.", "J."). Measured against the
sentence breaks XQuAD-R released for the same SQuAD dev paragraphs (tests/test_lareqa.py),
it reproduces most spans exactly. A boundary that would cut an answer is removed (the two
sentences merge), so every answer lies inside one candidate.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

_CLOSERS = "\"'\u201d\u2019)]"
_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s)")
_NEXT = re.compile(r"\s+([\"'\u201c\u2018(\[]?[A-Z0-9\u00c0-\u00de])")
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc e.g i.e no nos vol fig mt ft gen col lt sgt capt gov "
    "rev inc ltd co corp jan feb mar apr jun jul aug sep sept oct nov dec approx ca c est".split())


def _abbreviation(text: str, stop: int) -> bool:
    """Whether the full stop at `stop` ends an abbreviation or an initial, not a sentence."""
    word = re.search(r"(\S+)$", text[:stop])
    if word is None:
        return False
    token = word.group(1).lstrip("\"'(\u201c\u2018[")
    if re.fullmatch(r"[A-Z]", token) or re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", token):
        return True  # an initial (J.) or dotted letters (U.S, e.g)
    return token.lower() in ABBREVIATIONS


def split_sentences(text: str) -> list[tuple[int, int]]:
    """[start, end) character spans of the sentences of `text`, without surrounding spaces."""
    spans, start = [], None
    for i, char in enumerate(text):
        if not char.isspace():
            start = i
            break
    if start is None:
        return []
    for match in _END.finditer(text):
        nxt = _NEXT.match(text, match.end())
        if nxt is None or match.end() <= start:
            continue
        if match.group().rstrip(_CLOSERS) == "." and _abbreviation(text, match.start()):
            continue
        spans.append((start, match.end()))
        start = nxt.start(1)
    end = len(text.rstrip())
    if start < end:
        spans.append((start, end))
    return spans


def merge_across(spans: Sequence[tuple[int, int]], answers: Sequence[tuple[int, int]]
                 ) -> list[tuple[int, int]]:
    """`spans` with every boundary inside an answer [start, end) removed."""
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out and any(a < s and b > out[-1][1] for a, b in answers):
            out[-1] = (out[-1][0], e)  # an answer runs from the previous sentence into this one
        else:
            out.append((s, e))
    return out


def _context_id(context: str) -> str:
    return hashlib.sha1(context.encode("utf-8")).hexdigest()[:12]


def pairs(ids: Sequence[str], questions: Sequence[str], contexts: Sequence[str],
          answers: Sequence[dict], with_pool: bool) -> tuple[list[dict], dict[str, int]]:
    """Dual-encoder rows and unusable counts. Each question becomes a pair row (question, its
    answer sentence with the paragraph); `with_pool` (evaluation splits) adds every other
    sentence of every paragraph as a candidate-only row. The first gold answer decides."""
    spans: dict[str, list[tuple[int, int]]] = {}
    firsts: list[tuple[int, int] | None] = []
    for context, answer in zip(contexts, answers, strict=True):
        starts, texts = answer.get("answer_start") or [], answer.get("text") or []
        first = (int(starts[0]), int(starts[0]) + len(texts[0])) if starts and texts else None
        firsts.append(first)
        key = _context_id(context)
        if key not in spans:
            spans[key] = []
        if first is not None:
            spans[key].append(first)
    sentences = {}
    for context in dict.fromkeys(contexts):
        key = _context_id(context)
        sentences[key] = merge_across(split_sentences(context), spans[key])
    rows, unusable, used = [], {}, set()
    for qid, question, context, first in zip(ids, questions, contexts, firsts, strict=True):
        key = _context_id(context)
        hit = None if first is None else next(
            (k for k, (s, e) in enumerate(sentences[key]) if s <= first[0] < e), None)
        if hit is None:
            reason = "no answer" if first is None else "answer outside every sentence"
            unusable[reason] = unusable.get(reason, 0) + 1
            continue
        s, e = sentences[key][hit]
        cid = f"{key}:{hit}"
        used.add(cid)
        rows.append({"id": str(qid), "query": question, "query_context": None,
                     "candidate": context[s:e], "candidate_context": context,
                     "candidate_id": cid, "candidate_language": "en", "gold": [cid]})
    if with_pool:
        for context in dict.fromkeys(contexts):
            key = _context_id(context)
            rows += [{"id": f"{key}:{k}", "query": None, "query_context": None,
                      "candidate": context[s:e], "candidate_context": context,
                      "candidate_id": f"{key}:{k}", "candidate_language": "en", "gold": []}
                     for k, (s, e) in enumerate(sentences[key]) if f"{key}:{k}" not in used]
    return rows, unusable
