"""Hand-computed checks of XTREME / XTREME-R aggregation (xtl.evaluation.aggregate)."""

from __future__ import annotations

import pytest

from xtl.core.errors import ConfigError, DataError
from xtl.evaluation import aggregate as agg

# Hand-made task numbers: categories classification 85, tagging 65, qa 60, retrieval 35.
NINE = {"pawsx": 90.0, "xnli": 80.0, "udpos": 70.0, "panx": 60.0, "xquad": 70.0, "mlqa": 60.0,
        "tydiqa": 50.0, "bucc2018": 40.0, "tatoeba": 30.0}


def _per_language(task: str, value: dict[str, float], benchmark: str = agg.XTREME,
                  drop: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
    return {lang: dict(value) for lang in agg.official_languages(task, benchmark)
            if lang not in drop}


def test_language_lists_and_groups_are_the_official_ones():
    sizes = {t: len(v) for t, v in agg.LANGUAGES[agg.XTREME].items()}
    assert sizes == {"pawsx": 7, "xnli": 15, "panx": 40, "udpos": 33, "bucc2018": 4,
                     "tatoeba": 36, "xquad": 11, "mlqa": 7, "tydiqa": 9}
    r_sizes = {t: len(v) for t, v in agg.LANGUAGES[agg.XTREME_R].items()}
    assert r_sizes == {"xnli": 15, "xcopa": 11, "udpos": 38, "panx": 48, "xquad": 12, "mlqa": 7,
                       "tydiqa": 9, "tatoeba": 41, "mewslix": 11, "lareqa": 11}
    union = {lang for langs in agg.LANGUAGES[agg.XTREME].values() for lang in langs}
    assert len(union) == 40
    grouped = sorted(t for ts in agg.GROUPS[agg.XTREME].values() for t in ts)
    assert grouped == sorted(NINE)


def test_task_score_is_the_mean_over_official_languages():
    per_lang = _per_language("xnli", {"accuracy": 70.0})
    per_lang["sw"] = {"accuracy": 85.0}
    per_lang["xx"] = {"accuracy": 0.0}  # not an official language: ignored
    out = agg.task_score("xnli", per_lang)
    assert out.score == pytest.approx((14 * 70 + 85) / 15)  # 71.0
    assert out.extra == ("xx",) and not out.partial and len(out.languages) == 15


def test_qa_task_score_is_em_f1_average_of_language_means():
    per_lang = _per_language("mlqa", {"exact_match": 50.0, "f1": 70.0})
    per_lang["en"] = {"exact_match": 64.0, "f1": 84.0}
    out = agg.task_score("mlqa", per_lang)
    assert out.means == pytest.approx({"exact_match": 52.0, "f1": 72.0})
    assert out.score == pytest.approx(62.0)


def test_missing_languages_are_named_or_flagged():
    per_lang = _per_language("xnli", {"accuracy": 60.0}, drop=("sw", "ur"))
    per_lang["en"] = {"accuracy": 99.0}
    with pytest.raises(DataError, match="missing official languages sw, ur"):
        agg.task_score("xnli", per_lang)
    out = agg.task_score("xnli", per_lang, allow_missing=True)
    assert out.partial and out.missing == ("sw", "ur")
    assert out.score == pytest.approx((12 * 60 + 99) / 13)  # over the 13 present ONLY
    # XTREME-R adds languages: the XTREME list is not enough there
    udpos = _per_language("udpos", {"f1": 50.0})
    with pytest.raises(DataError, match="lt, pl, uk, wo, ro"):
        agg.task_score("udpos", udpos, agg.XTREME_R)


def test_metric_errors():
    per_lang = _per_language("panx", {"f1": 50.0})
    per_lang["de"] = {"token_accuracy": 90.0}
    with pytest.raises(DataError, match="metric 'f1' is missing for de"):
        agg.task_score("panx", per_lang)
    with pytest.raises(DataError, match="unknown xtreme task 'xcopa'"):
        agg.task_score("xcopa", {})
    with pytest.raises(ConfigError, match="unknown benchmark"):
        agg.task_score("xnli", {}, "xtreme-3")


def test_xtreme_overall_is_the_mean_over_nine_tasks_not_categories():
    out = agg.benchmark_score(NINE)
    assert out.overall == pytest.approx(550 / 9)  # 61.11
    assert out.categories == pytest.approx(
        {"classification": 85.0, "tagging": 65.0, "qa": 60.0, "retrieval": 35.0})
    mean_of_categories = sum(out.categories.values()) / 4
    assert mean_of_categories == pytest.approx(61.25)
    assert out.overall != pytest.approx(mean_of_categories)
    assert not out.partial and list(out.tasks) == list(agg.LANGUAGES[agg.XTREME])


def test_xtreme_missing_tasks():
    some = {t: v for t, v in NINE.items() if t not in ("bucc2018", "tydiqa")}
    with pytest.raises(DataError, match="missing task scores for bucc2018, tydiqa"):
        agg.benchmark_score(some)
    out = agg.benchmark_score(some, allow_missing=True)
    assert out.partial and out.missing == ("bucc2018", "tydiqa")
    assert out.overall == pytest.approx(460 / 7)
    assert out.categories["retrieval"] == 30.0 and out.categories["qa"] == 65.0


def test_xtreme_r_is_the_mean_over_tasks_present():
    scores = {"xnli": 80.0, "xcopa": 60.0, "udpos": 70.0, "panx": 60.0, "tatoeba": 50.0,
              "pawsx": 99.0}
    out = agg.benchmark_score(scores, agg.XTREME_R)
    assert out.overall == pytest.approx(64.0)  # (80 + 60 + 70 + 60 + 50) / 5; pawsx ignored
    assert list(out.tasks) == ["xnli", "xcopa", "udpos", "panx", "tatoeba"]
    assert out.missing == ("xquad", "mlqa", "tydiqa", "mewslix", "lareqa")
    assert out.ignored == ("pawsx",)
    assert out.categories == pytest.approx(
        {"classification": 70.0, "tagging": 65.0, "retrieval": 50.0, "multi_choice": 60.0})


def test_aggregate_from_per_language_results():
    results = {
        "pawsx": _per_language("pawsx", {"accuracy": 90.0}),
        "xnli": _per_language("xnli", {"accuracy": 80.0}),
        "udpos": _per_language("udpos", {"f1": 70.0, "token_accuracy": 95.0}),
        "panx": _per_language("panx", {"f1": 60.0, "token_accuracy": 90.0}),
        "xquad": _per_language("xquad", {"exact_match": 60.0, "f1": 80.0}),
        "mlqa": _per_language("mlqa", {"exact_match": 50.0, "f1": 70.0}),
        "tydiqa": _per_language("tydiqa", {"exact_match": 40.0, "f1": 60.0}),
        "bucc2018": _per_language("bucc2018", {"f1": 40.0, "precision": 41.0, "recall": 39.0}),
        "tatoeba": _per_language("tatoeba", {"accuracy": 30.0}, drop=("jv",)),
        "xcopa": {"et": {"accuracy": 55.0}},
    }
    with pytest.raises(DataError, match="tatoeba .*missing official languages jv"):
        agg.aggregate(results)
    out = agg.aggregate(results, allow_missing=True)
    assert out.tasks == pytest.approx(NINE)
    assert out.overall == pytest.approx(550 / 9)
    assert out.partial and out.partial_tasks == ("tatoeba",) and out.missing == ()
    assert out.ignored == ("xcopa",)
