"""Hand-computed checks of xtl.evaluation.metrics against the official XTREME scorers' behaviour."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import pytest

from xtl.core.errors import ConfigError, DataError
from xtl.evaluation import metrics, qa_metrics, retrieval_metrics, tagging_metrics
from xtl.evaluation.aggregate import official_languages


@dataclass(frozen=True)
class _Task:
    """The three fields of tasks.Task that `score` reads (importing the registry loads torch,
    which would dominate this file's run time)."""

    name: str
    metric: str
    label_names: tuple[str, ...] = ()


def _task(metric: str, name: str = "t", labels: tuple[str, ...] = ()) -> _Task:
    return _Task(name=name, metric=metric, label_names=labels)


# ---------------------------------------------------------------- accuracy / Tatoeba


def test_accuracy_compares_labels_as_given():
    assert metrics.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 75.0
    # XCOPA-style JSON values: 1 and "1" differ
    assert metrics.accuracy([1, "1"], [1, 1]) == 50.0


def test_tatoeba_accuracy_is_over_queries_with_duplicate_targets():
    # Targets 1 and 2 are the same sentence; query 1 retrieves the copy at index 2: a miss.
    gold = [0, 1, 2, 3]
    predicted = [0, 2, 2, 3]
    assert metrics.score(_task("accuracy"), predicted, gold, "de") == {"accuracy": 75.0}


def test_accuracy_errors_name_the_problem():
    with pytest.raises(DataError, match=r"xnli/fr: .*3 predictions for 2 references"):
        metrics.score(_task("accuracy", "xnli"), [0, 1, 2], [0, 1], "fr")
    with pytest.raises(DataError, match="empty"):
        metrics.accuracy([], [])
    with pytest.raises(ConfigError, match="unknown metric"):
        metrics.score(_task("bleu"), [0], [0])


# ---------------------------------------------------------------- PAN-X (seqeval)


def test_panx_chunk_boundaries_micro_f1():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "I-ORG", "B-MISC"]]
    # gold chunks PER(0-1) LOC ORG; predicted PER(0-0) LOC ORG MISC: 2 correct of 4 / of 3
    out = tagging_metrics.tagging_scores(pred, gold)
    assert out["precision"] == pytest.approx(50.0)
    assert out["recall"] == pytest.approx(200 / 3)
    assert out["f1"] == pytest.approx(400 / 7)  # 2PR/(P+R) = 4/7
    assert out["token_accuracy"] == pytest.approx(500 / 7)  # 5 of 7 words
    assert metrics.score(_task("seqeval_f1"), pred, gold, "en") == {
        "f1": pytest.approx(400 / 7), "token_accuracy": pytest.approx(500 / 7)}


def test_panx_lenient_mode_and_sentence_ends():
    gold = [["B-PER", "I-PER", "O"]]
    # lenient (default) mode: an I- after O opens a chunk, so I-PER I-PER == B-PER I-PER
    assert tagging_metrics.tagging_scores([["I-PER", "I-PER", "O"]], gold)["f1"] == 100.0
    # a type change inside a chunk splits it: nothing matches
    assert tagging_metrics.tagging_scores([["B-PER", "I-LOC", "O"]], gold)["f1"] == 0.0
    # no chunk crosses a sentence end: B-PER | I-PER are two chunks, not one
    two = [["O", "B-PER"], ["I-PER", "O"]]
    assert tagging_metrics.tagging_scores(two, two)["f1"] == 100.0
    joined = tagging_metrics.tagging_scores([["O", "B-PER"], ["O", "O"]], two)
    assert (joined["precision"], joined["recall"]) == (100.0, 50.0)


def test_tagging_maps_label_ids_and_checks_lengths():
    task = _task("seqeval_f1", "panx", ("O", "B-PER", "I-PER"))
    assert metrics.score(task, [[1, 2, 0]], [[1, 2, 0]], "en")["f1"] == 100.0
    with pytest.raises(DataError, match="sentence 1 has 1 predicted tags for 2 words"):
        metrics.score(task, [[0], [0]], [[0], [0, 0]], "en")
    with pytest.raises(DataError, match="not an index"):
        metrics.score(task, [[7]], [[0]], "en")


# ---------------------------------------------------------------- UD-POS (seqeval 0.0.12)


def test_legacy_chunks_on_upos_tags():
    sentences = [["NOUN", "NOUN", "SYM", "SYM", "INTJ", "INTJ"], ["ADJ"]]
    # runs of one tag merge; SYM/SCONJ ("S" = singleton) stay one word each; offsets count a
    # separator "O" after every sentence
    assert tagging_metrics.legacy_chunks(sentences) == {
        ("NOUN", 0, 1), ("SYM", 2, 2), ("SYM", 3, 3), ("INTJ", 4, 5), ("ADJ", 7, 7)}


def test_udpos_old_and_modern_seqeval_differ_on_cconj_sconj():
    from seqeval.metrics import f1_score

    gold = [["CCONJ", "SCONJ"]]
    pred = [["CCONJ", "NOUN"]]
    # 0.0.12: gold {CCONJ(0), SCONJ(1)}, pred {CCONJ(0), NOUN(1)}: 1 of 2 each way -> 50
    out = tagging_metrics.udpos_scores(pred, gold)
    assert (out["f1"], out["precision"], out["recall"]) == (50.0, 50.0, 50.0)
    assert out["token_accuracy"] == 50.0
    # modern seqeval: CCONJ and SCONJ are both type "CONJ"; the gold CCONJ chunk is lost ->
    # gold {CONJ(1)}, pred {CONJ(0), OUN(1)}: nothing matches
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert f1_score(gold, pred) == 0.0


def test_udpos_chunk_f1_is_not_token_accuracy():
    # gold NOUN(0-1) VERB(2); pred NOUN(0) VERB(1-2): no chunk matches though 2 of 3 tags do
    out = tagging_metrics.udpos_scores([["NOUN", "VERB", "VERB"]], [["NOUN", "NOUN", "VERB"]])
    assert out["f1"] == 0.0 and out["token_accuracy"] == pytest.approx(200 / 3)
    # SYM SYM are two chunks: gold {SYM(0), SYM(1), NOUN(2)}, pred {SYM(0), NOUN(1-2)}
    out = tagging_metrics.udpos_scores([["SYM", "NOUN", "NOUN"]], [["SYM", "SYM", "NOUN"]])
    assert out["precision"] == 50.0 and out["recall"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(40.0)
    task = _task("udpos_f1", "udpos")
    assert set(metrics.score(task, [["X"]], [["X"]], "en")) == {"f1", "token_accuracy"}


# The UD-POS mock data of google-research/xtreme (mock_test_data/{labels,predictions}/udpos,
# Apache-2.0), one sentence per "|". The stored copy read for this test lacks labels/en and
# predictions/tl; they are taken identical to predictions/en and labels/tl (the copy drops
# byte-identical files), which the exact match of all three official averages below confirms.
UDPOS_MOCK_GOLD = """
af: ADJ NOUN AUX PRON PRON ADJ NOUN ADP SYM NOUN VERB PUNCT | DET NOUN AUX PRON NOUN ADV SYM SYM
    NOUN VERB PUNCT
ar: VERB PROPN PROPN PUNCT NOUN ADJ ADP PROPN ADP NOUN VERB PRON ADV PROPN PUNCT PUNCT ADP NOUN ADP
    NOUN NOUN ADJ PART ADJ ADP PROPN ADJ PUNCT PART PART NOUN ADJ ADP NOUN VERB ADP PRON ADP VERB
    PUNCT PUNCT | ADP NOUN ADP PRON PRON VERB NOUN ADJ ADP NOUN NOUN ADJ ADP PROPN PROPN PUNCT PART
    AUX NOUN ADJ DET NOUN PUNCT
bg: PRON AUX PUNCT SCONJ VERB AUX VERB PUNCT ADP ADJ NOUN ADP NOUN PRON PUNCT | AUX INTJ VERB AUX
    AUX VERB PUNCT
de: DET NOUN AUX ADP NOUN PUNCT CCONJ ADV PRON ADP ADJ PUNCT | PRON AUX ADV NUM PRON PROPN VERB
    CCONJ SCONJ PRON DET NOUN ADV VERB AUX PRON ADV ADV ADP DET NOUN DET PROPN CCONJ DET PROPN VERB
    PUNCT
el: NOUN NOUN PUNCT DET NOUN DET ADJ NOUN NOUN AUX ADV ADV ADJ PUNCT ADV ADV SCONJ VERB ADJ ADJ
    NOUN PUNCT CCONJ CCONJ SCONJ DET NOUN PART VERB AUX VERB DET NOUN ADP DET PRON VERB PUNCT | AUX
    PRON VERB ADV DET ADJ NOUN PRON DET NOUN PUNCT ADV VERB DET NOUN DET NOUN DET NOUN PUNCT ADV
    ADP DET PRON DET NOUN NOUN VERB AUX VERB DET NOUN DET NOUN SCONJ DET NOUN PRON PART VERB ADJ
    NOUN ADV ADP DET NOUN DET ADP NOUN NOUN PUNCT
en: PRON AUX PRON PUNCT | PRON AUX PRON PUNCT
es: ADP ADV VERB NOUN ADP DET ADJ NOUN ADP DET NOUN ADJ ADP NOUN ADJ PUNCT DET NOUN ADP NOUN ADJ
    AUX ADJ PUNCT VERB DET NOUN ADP DET NOUN ADP NOUN PROPN PROPN PUNCT NOUN ADJ ADP NOUN PROPN
    PUNCT | ADP DET PRON VERB DET NOUN ADP DET NOUN ADJ ADP PROPN NOUN PUNCT DET AUX NOUN ADJ PUNCT
et: NOUN | NOUN eu: NOUN PUNCT CCONJ PUNCT PART AUX ADJ NOUN VERB NOUN NOUN PUNCT NOUN ADJ NOUN ADJ
AUX ADV PUNCT |
    PROPN NOUN ADJ VERB AUX NOUN DET VERB ADJ VERB CCONJ NOUN ADJ NUM ADV VERB PROPN NOUN PUNCT
fa: NOUN VERB SCONJ ADP NOUN NUM NOUN PRON PART NOUN VERB PUNCT | NOUN PRON VERB SCONJ NOUN ADP DET
    NOUN NOUN VERB PUNCT DET NOUN VERB SCONJ ADP NOUN SCONJ ADP NOUN PRON VERB PUNCT NOUN AUX PUNCT
fi: ADV NOUN | ADV AUX VERB NOUN PUNCT
fr: PRON AUX PRON SCONJ DET NOUN ADP NOUN PUNCT | VERB PRON VERB DET NOUN ADP NOUN PUNCT
he: PROPN ADV VERB ADP NOUN PUNCT PROPN PROPN AUX AUX VERB NOUN PUNCT VERB PROPN PROPN VERB ADP DET
    NOUN ADJ NOUN VERB NOUN VERB NOUN VERB PROPN VERB PUNCT PROPN PROPN VERB ADP NOUN NOUN PUNCT |
    NOUN DET PUNCT NUM AUX NOUN NOUN NUM NUM PUNCT
hi: PRON ADP PROPN PROPN PUNCT PROPN PROPN CCONJ PROPN PART ADJ NOUN AUX PUNCT | DET NOUN ADP NOUN
    ADP PROPN NOUN AUX PUNCT PRON PART PROPN ADP NOUN VERB CCONJ ADJ VERB ADP NOUN PART NOUN VERB
    AUX AUX PUNCT
hu: DET ADJ NOUN ADV DET ADJ NOUN ADJ ADJ NOUN VERB DET ADJ NOUN NOUN CCONJ DET NOUN PUNCT | ADV
    ADV DET ADJ NOUN ADJ NOUN VERB PUNCT CCONJ DET ADJ NOUN CCONJ DET NOUN NOUN CCONJ ADJ NOUN VERB
    DET NOUN PUNCT
id: NOUN ADP NUM NOUN NUM VERB ADP PROPN PROPN ADP NOUN PROPN NUM CCONJ NUM NOUN ADJ VERB ADP ADJ
    PRON VERB ADP VERB NOUN ADP NOUN PROPN PUNCT PROPN ADJ NOUN VERB PROPN ADV VERB ADJ ADP NOUN
    NOUN NOUN PUNCT VERB ADP NOUN ADJ ADP PROPN PROPN CCONJ VERB ADP NOUN NUM PROPN ADP NOUN ADJ
    PUNCT | PROPN AUX NOUN PRON VERB ADP PROPN PROPN PUNCT PROPN PUNCT
it: PROPN ADP NOUN PROPN PUNCT VERB ADV PUNCT DET NUM SYM ADP NUM NOUN ADJ PUNCT AUX VERB DET NUM
    ADP ADJ SYM SYM SYM | SYM SYM SYM INTJ PROPN PUNCT X X NOUN ADV PRON PUNCT SYM ADJ NOUN PROPN
    PUNCT SYM X
ja: PUNCT PROPN ADP NOUN ADP ADP NOUN ADP ADV VERB SCONJ AUX NOUN ADP PUNCT NOUN ADP ADJ AUX NOUN
    ADP VERB SCONJ AUX AUX PUNCT ADP VERB AUX NOUN ADP PUNCT PROPN NOUN ADJ NOUN PROPN SYM PROPN
    ADP NOUN ADP VERB AUX AUX PUNCT | PROPN ADP NOUN ADP PROPN ADP NOUN ADP VERB AUX AUX NOUN ADP
    ADP PUNCT DET NOUN ADP ADV VERB PUNCT
kk: PROPN NUM NOUN NOUN PROPN NUM NOUN AUX PUNCT | VERB PUNCT NOUN PRON PRON VERB VERB AUX PUNCT
ko: DET ADV SCONJ PROPN NOUN ADV VERB CCONJ PRON NOUN NOUN ADV VERB NOUN ADJ AUX PUNCT | ADV VERB
    NOUN SCONJ NOUN NOUN VERB PROPN NOUN NOUN NOUN VERB ADV VERB PUNCT
mr: PRON VERB PRON NOUN VERB AUX PUNCT | ADJ NOUN ADJ NOUN VERB PUNCT
nl: PROPN PUNCT NOUN CCONJ NOUN AUX ADP PROPN VERB ADP DET NOUN ADP DET NOUN ADP DET NOUN ADP DET
    NOUN ADP DET NUM ADJ NOUN CCONJ PROPN PUNCT PROPN PUNCT ADP PROPN PUNCT | CCONJ ADP ADJ NOUN
    PUNCT CCONJ ADP VERB CCONJ VERB VERB DET ADJ PRON NOUN ADP DET ADJ VERB VERB PUNCT
pt: CCONJ ADP ADV VERB DET NOUN ADJ VERB DET NOUN ADP NOUN ADP NOUN PUNCT PUNCT VERB PUNCT | DET
    NOUN VERB CCONJ DET NOUN AUX VERB DET NOUN ADP NOUN ADP NOUN CCONJ ADP NOUN ADP NOUN ADP NOUN
    PUNCT
ru: ADP ADJ NOUN NOUN NOUN PROPN PUNCT NOUN ADP PROPN VERB ADP NUM NOUN PUNCT | VERB ADP NOUN ADP
    ADJ NOUN NOUN ADJ CCONJ ADJ NOUN VERB NOUN CCONJ NOUN NOUN PUNCT
ta: PROPN ADJ NOUN NOUN VERB ADJ NOUN VERB AUX PUNCT | ADJ NOUN ADV VERB AUX PROPN NOUN VERB VERB
    AUX VERB PROPN PUNCT
te: VERB PUNCT | NOUN VERB PUNCT
th: PUNCT ADP ADP VERB PART VERB NOUN ADJ AUX NOUN DET PART PART VERB PART ADV ADP NOUN PUNCT VERB
    NOUN NOUN DET ADV PART AUX NOUN ADJ PUNCT PROPN PROPN NOUN VERB ADJ ADP PROPN VERB VERB NOUN
    ADP NOUN NOUN | ADP NOUN DET VERB VERB ADJ NOUN ADP PROPN NOUN DET VERB VERB PART ADV
tl: VERB DET NOUN PUNCT | VERB ADP NOUN DET NOUN PUNCT
tr: PRON DET NOUN NOUN NOUN VERB PUNCT | NOUN NOUN NOUN VERB AUX PUNCT
ur: NOUN PROPN PART PROPN PROPN PROPN PROPN ADP PROPN ADP ADJ NOUN ADP ADJ NOUN ADP NOUN ADP NOUN
    VERB AUX NOUN NOUN NOUN ADP NOUN ADJ VERB PUNCT | PRON ADP PROPN ADP ADJ CCONJ PROPN PROPN ADP
    ADJ NOUN ADP ADJ CCONJ ADJ VERB ADP ADP ADJ NOUN NOUN NOUN VERB ADP NOUN VERB AUX VERB SCONJ
    DET NOUN ADP ADJ NOUN ADP ADP ADP NOUN VERB AUX ADP NOUN AUX PUNCT
vi: PUNCT NOUN X VERB PUNCT NOUN PUNCT NOUN PUNCT NOUN PUNCT ADJ ADP VERB PROPN CCONJ VERB X PUNCT
    NUM NOUN VERB PUNCT PUNCT | NOUN NOUN NUM NOUN X VERB X PUNCT
yo: ADP NOUN NOUN DET NOUN VERB DET NOUN CCONJ NOUN PUNCT | NOUN CCONJ VERB ADP NOUN PUNCT PRON
    CCONJ ADJ PUNCT NOUN CCONJ VERB ADP ADJ NOUN PUNCT NOUN NOUN CCONJ AUX NOUN ADP NOUN DET PUNCT
zh: PRON ADV VERB NOUN PRON PUNCT | VERB ADJ NOUN PART NOUN ADV VERB ADP PRON PART ADJ NOUN PUNCT
"""
UDPOS_MOCK_PRED = """
af: ADJ NOUN AUX PRON PRON ADJ NOUN ADP NUM NOUN VERB PUNCT | DET NOUN AUX PRON NOUN ADV NUM NUM
    NOUN VERB PUNCT
ar: VERB PROPN PROPN PUNCT DET ADJ ADP PROPN ADP NOUN VERB PROPN PROPN DET PUNCT PUNCT ADV ADJ ADP
    NOUN DET ADJ AUX ADJ ADP PROPN PROPN PUNCT CCONJ SCONJ DET ADJ ADP DET ADJ ADP PRON PRON VERB
    PUNCT PUNCT | ADP DET ADP NOUN PRON VERB DET ADJ ADP NOUN DET ADJ ADP DET PROPN PUNCT AUX VERB
    NOUN ADJ ADJ DET PUNCT
bg: PRON VERB PUNCT SCONJ VERB PART VERB PUNCT ADP ADV NOUN ADP NOUN PRON PUNCT | ADV ADV AUX PART
    PRON VERB PUNCT
de: DET NOUN VERB ADP NOUN PUNCT CCONJ PRON ADJ ADP ADJ PUNCT | PRON AUX ADV NUM PRON NOUN VERB
    CCONJ SCONJ PRON DET NOUN ADV VERB AUX PRON ADV ADV DET ADJ NOUN DET PROPN CCONJ DET NOUN VERB
    PUNCT
el: PROPN PROPN PUNCT DET NOUN ADP ADJ NOUN NOUN AUX ADV ADV ADJ PUNCT ADV ADV SCONJ VERB ADV ADJ
    NOUN PUNCT CCONJ ADV SCONJ DET PROPN ADV VERB PART VERB DET NOUN ADP PRON PRON VERB PUNCT | AUX
    PRON VERB VERB DET ADJ NOUN DET ADP NOUN PUNCT ADV VERB DET NOUN DET NOUN ADP NOUN PUNCT VERB
    ADP PRON PRON DET NOUN NOUN VERB PART VERB DET NOUN DET NOUN SCONJ DET NOUN PRON ADV VERB ADJ
    NOUN ADJ ADP DET NOUN ADP ADJ ADJ NOUN PUNCT
en: PRON AUX PRON PUNCT | PRON AUX PRON PUNCT
es: SCONJ PART VERB NOUN ADP DET ADJ NOUN ADP DET NOUN ADJ ADP PROPN PROPN PUNCT DET NOUN ADP NOUN
    ADJ AUX ADJ PUNCT VERB DET PROPN ADP DET NOUN ADP NOUN PROPN PROPN PUNCT PROPN ADJ ADP PROPN
    PROPN PUNCT | ADP PRON PRON VERB DET NOUN ADP DET NOUN NOUN ADP PROPN PROPN PUNCT PRON AUX PRON
    ADJ PUNCT
et: NOUN | VERB
eu: NOUN PUNCT ADV PUNCT AUX AUX ADJ NOUN VERB NOUN NOUN PUNCT ADJ NOUN NOUN ADJ VERB ADV PUNCT |
    PROPN NOUN ADJ VERB VERB NOUN PRON VERB NOUN VERB CCONJ NOUN ADJ NUM ADV VERB PROPN PROPN PUNCT
fa: PROPN VERB SCONJ ADP NOUN NUM NOUN PRON AUX VERB VERB PUNCT | NOUN PRON VERB SCONJ PROPN ADP
    DET NOUN VERB VERB PUNCT DET NOUN VERB SCONJ ADP NOUN PRON ADP NOUN PRON VERB PUNCT VERB VERB
    PUNCT
fi: VERB NOUN | ADV AUX VERB NOUN PUNCT
fr: ADV AUX PUNCT ADV DET NOUN ADP NOUN PUNCT | ADV PUNCT VERB DET NOUN ADP NOUN PUNCT
he: PROPN ADV VERB ADP NOUN PUNCT PROPN CCONJ AUX VERB PART PROPN PUNCT VERB ADP PROPN PRON ADP ADJ
    DET ADP NOUN PRON ADP PART ADP NOUN PROPN VERB PUNCT PROPN CCONJ VERB ADP DET ADP PUNCT | ADP
    DET PUNCT NUM VERB NOUN DET NUM NUM PUNCT
hi: PRON NOUN PROPN NOUN PUNCT PROPN NOUN CCONJ PROPN ADV ADJ NOUN AUX PUNCT | NUM NOUN ADP NOUN
    ADV PROPN PROPN VERB PUNCT ADV ADV PROPN ADP NOUN VERB CCONJ VERB VERB ADP NOUN ADV NOUN VERB
    PROPN AUX PUNCT
hu: DET ADJ NOUN ADV DET ADJ NOUN NOUN ADJ NOUN VERB DET ADJ NOUN NOUN CCONJ DET NOUN PUNCT | ADV
    ADV DET ADJ NOUN ADJ NOUN VERB PUNCT CCONJ DET ADJ NOUN CCONJ DET NOUN NOUN ADV ADJ NOUN VERB
    DET NOUN PUNCT
id: NOUN ADP NUM NOUN ADJ VERB ADP PROPN PROPN ADP NOUN PROPN NUM CCONJ NUM NOUN ADJ VERB ADP NOUN
    PRON VERB PART VERB NOUN ADP NOUN PROPN PUNCT NOUN ADJ NOUN VERB PROPN AUX VERB ADJ ADP NOUN
    NOUN NOUN PUNCT VERB ADP ADP NOUN ADP PROPN PROPN CCONJ VERB ADP NOUN NUM PROPN ADP NOUN ADV
    PUNCT | PROPN AUX NOUN PRON VERB ADP PROPN PROPN PUNCT PROPN PUNCT
it: ADJ ADP PROPN PROPN PUNCT NOUN ADV PUNCT DET NUM SYM ADP NUM NOUN PROPN PUNCT AUX VERB DET NUM
    ADP ADJ X SYM SYM | SYM X X X PROPN PUNCT X VERB NOUN ADJ X PUNCT SYM ADJ NOUN PROPN PUNCT SYM
    PUNCT
ja: PUNCT PROPN ADP PROPN ADP ADP NOUN AUX ADV ADJ ADP ADJ NOUN ADV PUNCT NOUN ADP ADJ ADJ NOUN AUX
    ADJ ADV X ADJ PUNCT ADP VERB NUM NOUN ADP PUNCT PROPN PROPN ADJ PROPN PROPN PUNCT PROPN AUX
    PROPN ADP VERB ADP X PUNCT | PROPN ADP PROPN ADP NOUN PART NOUN ADP VERB ADP ADP NOUN X AUX
    PUNCT DET NOUN AUX ADV ADJ PUNCT
kk: PROPN NUM NOUN NOUN PROPN NUM NOUN VERB PUNCT | INTJ PUNCT PROPN PRON ADV NOUN NOUN ADV PUNCT
ko: DET NOUN VERB PROPN NOUN ADV VERB CCONJ ADJ NOUN NOUN PROPN VERB ADP ADJ VERB PUNCT | X ADJ
    NOUN ADV NOUN ADJ ADJ PROPN PROPN PROPN NOUN ADJ NOUN VERB PUNCT
mr: PRON VERB PRON NOUN VERB VERB PUNCT | ADJ NOUN ADJ NOUN VERB PUNCT
nl: PROPN PUNCT NOUN CCONJ NOUN AUX ADP PROPN VERB ADP DET NOUN ADP DET NOUN ADP DET NOUN ADP DET
    NOUN ADP DET NUM ADJ NOUN CCONJ PROPN PUNCT PROPN PUNCT ADP PROPN PUNCT | PART ADP ADJ NOUN
    PUNCT CCONJ ADP NOUN CCONJ NOUN VERB DET NOUN DET NOUN ADP DET NOUN VERB VERB PUNCT
pt: CCONJ SCONJ PART VERB DET NOUN ADJ VERB DET NOUN ADP NOUN ADP NOUN PUNCT PUNCT VERB PUNCT | DET
    NOUN VERB SCONJ DET NOUN AUX VERB DET NOUN ADP NOUN ADP NOUN CCONJ ADP NOUN ADP NOUN ADP NOUN
    PUNCT
ru: ADP ADJ NOUN NOUN NOUN PROPN PUNCT NOUN ADP PROPN VERB ADV NUM NUM PUNCT | VERB ADP NOUN ADP
    ADJ NOUN NOUN ADJ CCONJ ADJ NOUN VERB NOUN CCONJ NOUN NOUN PUNCT
ta: PROPN ADJ NOUN NOUN VERB NOUN NOUN NOUN VERB PUNCT | ADJ NOUN ADV VERB ADP NOUN NOUN NOUN VERB
    ADJ VERB PROPN PUNCT
te: VERB PUNCT | ADV VERB PUNCT
th: PUNCT PROPN VERB NOUN VERB VERB NOUN PROPN AUX NOUN SCONJ PRON VERB VERB NOUN VERB ADP PROPN
    NOUN NOUN NOUN AUX VERB PRON AUX VERB NOUN PROPN PUNCT PROPN PROPN PROPN VERB ADJ ADP PROPN
    VERB VERB VERB ADP NOUN NOUN | VERB NOUN PRON VERB SCONJ PROPN PROPN ADP PROPN NOUN NOUN AUX
    VERB VERB VERB
tl: VERB DET NOUN PUNCT | VERB ADP NOUN DET NOUN PUNCT
tr: INTJ DET NOUN NOUN VERB NOUN PUNCT | PROPN NOUN NOUN VERB PRON PUNCT
ur: PROPN PROPN PROPN PROPN PROPN PROPN PROPN AUX PROPN ADP ADJ NOUN PROPN ADJ PROPN ADP NOUN ADP
    NOUN ADJ ADP ADJ PROPN PROPN AUX NOUN VERB VERB PUNCT | PRON AUX PROPN ADP NOUN CCONJ PROPN
    PROPN ADP ADJ NOUN ADP ADJ CCONJ ADJ VERB ADP ADV ADJ PROPN PROPN VERB VERB ADP NOUN ADV ADV
    VERB SCONJ DET NOUN ADV ADJ NOUN ADP NOUN ADP NOUN VERB VERB ADP NOUN AUX PUNCT
vi: NOUN PROPN AUX VERB PUNCT NOUN PUNCT NOUN PUNCT NOUN PUNCT ADJ PART VERB PRON SCONJ VERB ADP
    PUNCT NOUN NOUN NOUN PUNCT PUNCT | NOUN NOUN ADJ NOUN ADV VERB ADV PUNCT
yo: ADP NOUN NOUN ADJ PROPN VERB DET NOUN CCONJ NOUN PUNCT | NOUN ADV AUX ADP NOUN PUNCT PRON ADV
    NOUN PUNCT NOUN PRON AUX VERB NOUN NOUN PUNCT PROPN PROPN ADV AUX VERB VERB NOUN NOUN PUNCT
zh: PRON AUX VERB VERB PRON PUNCT | VERB ADJ NOUN ADP NOUN CCONJ VERB ADP PRON ADP NOUN NOUN PUNCT
"""


def _mock(block: str) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for token in block.split():
        if token.endswith(":"):
            lang = token[:-1]
            out[lang] = [[]]
        elif token == "|":
            out[lang].append([])
        else:
            out[lang][-1].append(token)
    return out


def test_udpos_reproduces_the_official_mock_data_value():
    from seqeval.metrics import f1_score

    gold, pred = _mock(UDPOS_MOCK_GOLD), _mock(UDPOS_MOCK_PRED)
    langs = official_languages("udpos")
    assert sorted(gold) == sorted(pred) == sorted(langs)
    per_lang = [tagging_metrics.udpos_scores(pred[lang], gold[lang]) for lang in langs]
    mean = {k: sum(s[k] for s in per_lang) / len(langs) for k in ("f1", "precision", "recall")}
    # evaluate_test.py TASK2AVG_SCORES["udpos"] (the seqeval 0.0.12 numbers)
    assert mean["f1"] == pytest.approx(70.21746048354693, abs=1e-9)
    assert mean["precision"] == pytest.approx(71.02232625883823, abs=1e-9)
    assert mean["recall"] == pytest.approx(69.54982073976082, abs=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        modern = sum(100 * f1_score(gold[lang], pred[lang]) for lang in langs) / len(langs)
    assert round(modern, 2) == 70.40


# ---------------------------------------------------------------- SQuAD v1.1 (XQuAD, TyDiQA)


def test_squad_em_f1_with_id_data_and_unanswered_question():
    refs = [{"id": "q1", "answers": ["The Eiffel Tower", "Eiffel Tower in Paris"]},
            {"id": "data", "answers": {"text": ["1889"], "answer_start": [0]}},
            {"id": "q3", "answers": ["blue whale"]}]
    preds = {"q1": "eiffel tower!", "data": "in 1889"}
    with pytest.warns(UserWarning, match="1 questions have no prediction"):
        out = qa_metrics.squad(preds, refs)
    # q1: EM 1 F1 1 (articles, case, punctuation); "data": 1 of 2 tokens -> F1 2/3; q3: 0
    assert out["exact_match"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(500 / 9)
    with pytest.warns(UserWarning):
        listed = metrics.score(_task("squad"), ["eiffel tower!", "in 1889", None], refs, "en")
    assert listed == out
    assert qa_metrics.qa_score(out) == pytest.approx((100 / 3 + 500 / 9) / 2)
    assert metrics.headline(_task("squad"), out) == qa_metrics.qa_score(out)


def test_squad_uses_the_english_normaliser_for_every_language():
    refs = [{"id": "a", "answers": ["gato"]}]
    out = qa_metrics.squad({"a": "el gato"}, refs)  # "el" is not an English article
    assert out == {"exact_match": 0.0, "f1": pytest.approx(200 / 3)}
    # non-ASCII punctuation is not stripped by the SQuAD normaliser
    assert qa_metrics.squad({"a": "«gato»"}, refs)["exact_match"] == 0.0


def test_squad_rejects_bad_inputs():
    with pytest.raises(DataError, match="'q' has an empty gold-answer list"):
        qa_metrics.squad({"q": "x"}, [{"id": "q", "answers": []}])
    with pytest.raises(DataError, match="ids not in the references: 'zz'"):
        qa_metrics.squad({"q": "x", "zz": "y"}, [{"id": "q", "answers": ["x"]}])
    with pytest.raises(DataError, match="2 predictions for 1 references"):
        qa_metrics.squad(["x", "y"], [{"id": "q", "answers": ["x"]}])
    with pytest.raises(DataError, match="duplicate reference ids 'q'"):
        qa_metrics.squad({}, [{"id": "q", "answers": ["x"]}, {"id": "q", "answers": ["y"]}])
    with pytest.raises(DataError, match="empty"):
        qa_metrics.squad({}, [])


# ---------------------------------------------------------------- MLQA


def test_mlqa_zh_mixed_segmentation():
    assert qa_metrics.normalize_mlqa("Apple公司，2020年!", "zh") == "apple 公 司 2020 年"
    refs = [{"id": "a", "answers": ["北京"]}, {"id": "b", "answers": ["abc"]}]
    out = qa_metrics.mlqa({"a": "北京大学", "b": "abc北京"}, refs, "zh")
    # a: [北 京 大 学] vs [北 京] -> P 2/4, R 1, F1 2/3; b: [abc 北 京] vs [abc] -> F1 1/2
    assert out == {"exact_match": 0.0, "f1": pytest.approx(100 * (2 / 3 + 1 / 2) / 2)}
    # whitespace tokens (the SQuAD normaliser) see one token each: no overlap at all
    assert qa_metrics.squad({"a": "北京大学", "b": "abc北京"}, refs)["f1"] == 0.0


def test_mlqa_arabic_al_is_replaced_everywhere():
    assert qa_metrics.normalize_mlqa("الكتاب", "ar") == "كتاب"
    assert qa_metrics.normalize_mlqa("فالكتاب", "ar") == "ف كتاب"  # inside a word too
    refs = [{"id": "a", "answers": ["كتاب"]}, {"id": "b", "answers": ["الكتاب"]}]
    out = qa_metrics.mlqa({"a": "الكتاب", "b": "فالكتاب"}, refs, "ar")
    # a: EM 1; b: [ف كتاب] vs [كتاب] -> F1 2/3
    assert out == {"exact_match": 50.0, "f1": pytest.approx(100 * (1 + 2 / 3) / 2)}
    assert qa_metrics.squad({"a": "الكتاب"}, refs[:1])["exact_match"] == 0.0


def test_mlqa_articles_and_unicode_punctuation_per_language():
    assert qa_metrics.normalize_mlqa("«Los gatos»", "es") == "gatos"
    assert qa_metrics.normalize_mlqa("Der Hund, das Haus", "de") == "hund haus"
    assert qa_metrics.normalize_mlqa("những con mèo", "vi") == "con mèo"
    assert qa_metrics.normalize_mlqa("The cat", "hi") == "the cat"  # hi: no articles
    task = _task("mlqa", "mlqa")
    out = metrics.score(task, {"a": "«el gato»"}, [{"id": "a", "answers": ["gato"]}], "es")
    assert out == {"exact_match": 100.0, "f1": 100.0}


def test_mlqa_needs_a_known_language():
    refs = [{"id": "a", "answers": ["x"]}]
    with pytest.raises(DataError, match="expected one of: ar, de, en, es, hi, vi, zh"):
        qa_metrics.mlqa({"a": "x"}, refs, "fr")
    with pytest.raises(DataError, match="unknown MLQA language None"):
        metrics.score(_task("mlqa", "mlqa"), {"a": "x"}, refs)


# ---------------------------------------------------------------- SQuAD 2.0


def test_squad_v2_no_answer():
    refs = [{"id": "a", "answers": ["Paris"]}, {"id": "b", "answers": []},
            {"id": "c", "answers": []}, {"id": "d", "answers": ["the cat"]}]
    preds = {"a": "Paris", "b": "", "c": "London", "d": "a cat sat"}
    out = qa_metrics.squad_v2(preds, refs)
    # a 1/1; b "" matches no-answer 1/1; c 0/0; d [cat sat] vs [cat] -> EM 0, F1 2/3
    assert out == pytest.approx({
        "exact_match": 50.0, "f1": 100 * (1 + 1 + 0 + 2 / 3) / 4,
        "HasAns_exact_match": 50.0, "HasAns_f1": 100 * (1 + 2 / 3) / 2,
        "NoAns_exact_match": 50.0, "NoAns_f1": 50.0})
    # an empty prediction on an answerable question scores 0; a missing one scores 0 too
    with pytest.warns(UserWarning):
        out = metrics.score(_task("squad_v2"), {"b": ""}, refs[:2], "en")
    assert out == {"exact_match": 50.0, "f1": 50.0, "HasAns_exact_match": 0.0, "HasAns_f1": 0.0,
                   "NoAns_exact_match": 100.0, "NoAns_f1": 100.0}


# ---------------------------------------------------------------- BUCC


CANDIDATES = [("s1", "t1", 0.9), ("s2", "t2", 0.8), ("s3", "t3", 0.7), ("s4", "t4", 0.6),
              ("s5", "t5", 0.5)]
GOLD = [("s1", "t1"), ("s3", "t3"), ("s6", "t6")]


def test_bucc_threshold_is_the_midpoint_after_the_best_f1():
    # walk: F1 1/2, 2/5, 2/3 (at 0.7, best), 4/7, 1/2 -> threshold (0.7 + 0.6) / 2
    assert retrieval_metrics.bucc_threshold(CANDIDATES, GOLD) == pytest.approx(0.65)
    out = retrieval_metrics.bucc_f1(CANDIDATES, GOLD)
    assert out == pytest.approx({"f1": 200 / 3, "precision": 200 / 3, "recall": 200 / 3,
                                 "threshold": 0.65})
    assert metrics.score(_task("bucc_f1"), CANDIDATES, GOLD, "de") == out


def test_bucc_best_at_last_candidate_and_no_correct_candidate():
    # best F1 at the last candidate (the official code raises): threshold = its score
    cands = {("a", "x"): 0.9, ("b", "y"): 0.8}
    assert retrieval_metrics.bucc_threshold(cands, [("a", "x"), ("b", "y")]) == 0.8
    assert retrieval_metrics.bucc_f1(cands, [("a", "x"), ("b", "y")])["f1"] == 100.0
    # no gold pair among the candidates: the official initial threshold 0.0, F1 0
    out = retrieval_metrics.bucc_f1(cands, [("z", "z")])
    assert out == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "threshold": 0.0}


def test_bucc_duplicates_keep_their_max_score():
    cands = [("a", "x", 0.2), ("b", "y", 0.5), ("a", "x", 0.9)]
    assert retrieval_metrics.bucc_candidates(cands) == {("a", "x"): 0.9, ("b", "y"): 0.5}
    # with 0.9 kept, (a, x) ranks first: threshold (0.9 + 0.5) / 2
    assert retrieval_metrics.bucc_threshold(cands, [("a", "x")]) == pytest.approx(0.7)


def test_bucc_dev_threshold_applied_to_test():
    test = [("p", "q", 0.7), ("r", "s", 0.6), ("u", "v", 0.66)]
    test_gold = [("p", "q"), ("r", "s")]
    out = retrieval_metrics.bucc_dev_test(CANDIDATES, GOLD, test, test_gold)
    # >= 0.65 keeps (p, q) and (u, v): 1 correct of 2, of 2 gold
    assert out == pytest.approx({"f1": 50.0, "precision": 50.0, "recall": 50.0,
                                 "threshold": 0.65})
    # the oracle threshold tuned on test itself is higher-scoring (0.6 -> F1 80)
    assert retrieval_metrics.bucc_f1(test, test_gold)["f1"] == pytest.approx(80.0)
    # an already-extracted submission is scored as a set
    assert metrics.score(_task("bucc_f1"), [("p", "q")], test_gold)["recall"] == 50.0


def test_bucc_rejects_bad_inputs():
    with pytest.raises(DataError, match="NaN"):
        retrieval_metrics.bucc_threshold([("a", "x", math.nan)], [("a", "x")])
    with pytest.raises(DataError, match="no candidate pairs"):
        retrieval_metrics.bucc_threshold([], [("a", "x")])
    with pytest.raises(DataError, match="gold pair list is empty"):
        retrieval_metrics.bucc_f1(CANDIDATES, [])
    with pytest.raises(DataError, match=r"bucc2018/fr: BUCC: no predicted pairs"):
        metrics.score(_task("bucc_f1", "bucc2018"), [], GOLD, "fr")


def test_collapsed():
    assert metrics.collapsed([1, 1, 1])
    assert not metrics.collapsed([1, 2]) and not metrics.collapsed([1])


def test_legacy_chunks_agree_with_modern_seqeval_on_iob_tags():
    # PAN-X-style IOB tags score the same under both semantics (only prefix-less tags differ)
    import random

    from seqeval.metrics import f1_score

    rng = random.Random(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    for _ in range(200):
        gold = [[rng.choice(tags) for _ in range(rng.randint(1, 6))] for _ in range(3)]
        pred = [[rng.choice(tags) for _ in sentence] for sentence in gold]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            modern = 100 * f1_score(gold, pred)
        assert tagging_metrics.udpos_scores(pred, gold)["f1"] == pytest.approx(modern)
