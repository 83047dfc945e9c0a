"""Tagging scores as the official XTREME scorers compute them: PAN-X with seqeval (IOB chunks),
UD-POS with seqeval 0.0.12's chunk semantics (`udpos_scores`), and per-word token accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

from xtl.core.errors import DataError
from xtl.evaluation.metric_checks import check_aligned, set_prf


def tag_names(sequences: Sequence[Sequence], label_names: Sequence[str], side: str
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
    check_aligned(predictions, references, "tagging")
    pred = tag_names(predictions, label_names, "predicted")
    gold = tag_names(references, label_names, "reference")
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
    scores = set_prf(legacy_chunks(gold), legacy_chunks(pred))
    return {**scores, "token_accuracy": token_accuracy(pred, gold)}
