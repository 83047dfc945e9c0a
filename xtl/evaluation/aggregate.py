"""XTREME and XTREME-R aggregation, as google-research/xtreme `evaluate.py` does it.

Per task: the mean over the task's OFFICIAL language list of each metric; the task's number is
that mean of its headline metric, except QA, where it is (mean EM + mean F1) / 2. XTREME overall:
the unweighted mean over the 9 TASK numbers (not over the 4 categories; category means are
reported beside it). XTREME-R overall: the official code cannot compute it (LAReQA's language
list is empty there), so here it is the mean over the XTREME-R tasks present, with the list of
tasks included. All numbers are on the 0-100 scale of `xtl.evaluation.metrics`.

Inputs are what `xtl.evaluation.metrics.score` returns, per language: {language: {metric: value}}.
The language lists and groups below are copied facts (docs/data.md section 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from xtl.core.errors import DataError, unknown

XTREME, XTREME_R = "xtreme", "xtreme-r"


def _langs(codes: str) -> tuple[str, ...]:
    return tuple(codes.split(","))


_PANX = ("ar,he,vi,id,jv,ms,tl,eu,ml,ta,te,af,nl,en,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg,ru,ja,ka,"
         "ko,th,sw,yo,my,zh,kk,tr,et,fi,hu")
_UDPOS = ("af,ar,bg,de,el,en,es,et,eu,fa,fi,fr,he,hi,hu,id,it,ja,kk,ko,mr,nl,pt,ru,ta,te,th,tl,tr,"
          "ur,vi,yo,zh")
_TATOEBA = ("ar,he,vi,id,jv,tl,eu,ml,ta,te,af,nl,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg,ru,ja,ka,"
            "ko,th,sw,zh,kk,tr,et,fi,hu")
_XQUAD = "en,es,de,el,ru,tr,ar,vi,th,zh,hi"
_XNLI = "ar,bg,de,el,en,es,fr,hi,ru,sw,th,tr,ur,vi,zh"
_MLQA = "en,es,de,ar,hi,vi,zh"
_TYDIQA = "en,ar,bn,fi,id,ko,ru,sw,te"

# Official language lists per task (evaluate.py TASK2LANGS), in the official order.
LANGUAGES: Mapping[str, Mapping[str, tuple[str, ...]]] = MappingProxyType({
    XTREME: MappingProxyType({
        "pawsx": _langs("de,en,es,fr,ja,ko,zh"),
        "xnli": _langs(_XNLI),
        "panx": _langs(_PANX),
        "udpos": _langs(_UDPOS),
        "bucc2018": _langs("de,fr,ru,zh"),
        "tatoeba": _langs(_TATOEBA),
        "xquad": _langs(_XQUAD),
        "mlqa": _langs(_MLQA),
        "tydiqa": _langs(_TYDIQA),
    }),
    XTREME_R: MappingProxyType({
        "xnli": _langs(_XNLI),
        "xcopa": _langs("et,ht,id,it,qu,sw,ta,th,tr,vi,zh"),
        "udpos": _langs(_UDPOS + ",lt,pl,uk,wo,ro"),
        "panx": _langs(_PANX + ",qu,pl,uk,az,lt,pa,gu,ro"),
        "xquad": _langs(_XQUAD + ",ro"),
        "mlqa": _langs(_MLQA),
        "tydiqa": _langs(_TYDIQA),
        "tatoeba": _langs(_TATOEBA + ",az,lt,pl,uk,ro"),
        "mewslix": _langs("ar,de,en,es,fa,ja,pl,ro,ta,tr,uk"),
        # evaluate.py's list is EMPTY (why it cannot score XTREME-R); these are the XQuAD-R
        # languages LAReQA is built on.
        "lareqa": _langs("ar,de,el,en,es,hi,ru,th,tr,vi,zh"),
    }),
})

# Task categories (evaluate.py GROUP2TASK). XTREME-R lists XCOPA twice (classification and
# multi_choice) and scores LAReQA outside the groups, as the official table does.
GROUPS: Mapping[str, Mapping[str, tuple[str, ...]]] = MappingProxyType({
    XTREME: MappingProxyType({
        "classification": ("pawsx", "xnli"),
        "tagging": ("udpos", "panx"),
        "qa": ("xquad", "mlqa", "tydiqa"),
        "retrieval": ("bucc2018", "tatoeba"),
    }),
    XTREME_R: MappingProxyType({
        "classification": ("xnli", "xcopa"),
        "tagging": ("udpos", "panx"),
        "qa": ("xquad", "mlqa", "tydiqa"),
        "retrieval": ("tatoeba", "mewslix"),
        "multi_choice": ("xcopa",),
    }),
})

# QA tasks' number is (mean EM + mean F1) / 2; every other task's is the mean of one metric.
QA_TASKS = frozenset({"xquad", "mlqa", "tydiqa"})
HEADLINE_METRIC: Mapping[str, str] = MappingProxyType({
    "pawsx": "accuracy", "xnli": "accuracy", "xcopa": "accuracy", "tatoeba": "accuracy",
    "panx": "f1", "udpos": "f1", "bucc2018": "f1", "mewslix": "map@20", "lareqa": "map@20",
})


@dataclass(frozen=True)
class TaskScore:
    """One task's aggregate. `score` is its headline number (0-100); `means` every metric's mean
    over `languages`; `partial` is True when official languages were `missing` (only possible
    with allow_missing=True); `extra` lists languages given but not official (ignored)."""

    task: str
    score: float
    means: Mapping[str, float]
    languages: tuple[str, ...]
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        return bool(self.missing)


@dataclass(frozen=True)
class BenchmarkScore:
    """The benchmark aggregate: `overall` (mean over `tasks`), `categories` (group -> mean over
    its tasks present), `missing` tasks, `partial_tasks` (tasks averaged over fewer languages)
    and `ignored` (tasks given that are not in this benchmark)."""

    benchmark: str
    overall: float
    categories: Mapping[str, float]
    tasks: Mapping[str, float]
    missing: tuple[str, ...] = ()
    partial_tasks: tuple[str, ...] = ()
    ignored: tuple[str, ...] = field(default=())

    @property
    def partial(self) -> bool:
        return bool(self.missing or self.partial_tasks)


def _benchmark(benchmark: str) -> str:
    if benchmark not in LANGUAGES:
        raise unknown("benchmark", benchmark, LANGUAGES)
    return benchmark


def official_languages(task: str, benchmark: str = XTREME) -> tuple[str, ...]:
    """The official language list of `task` in `benchmark` ("xtreme" or "xtreme-r")."""
    langs = LANGUAGES[_benchmark(benchmark)]
    if task not in langs:
        raise unknown(f"{benchmark} task", task, langs, error=DataError)
    return langs[task]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _needed(task: str) -> tuple[str, ...]:
    return ("exact_match", "f1") if task in QA_TASKS else (HEADLINE_METRIC[task],)


def _metric_means(task: str, per_language: Mapping[str, Mapping[str, float]],
                  languages: tuple[str, ...]) -> dict[str, float]:
    """Mean over `languages` of every metric all of them report; the headline metric(s) must be
    there for every language (a DataError names the languages lacking one)."""
    for name in _needed(task):
        lacking = [lang for lang in languages if name not in per_language[lang]]
        if lacking:
            raise DataError(f"{task}: metric {name!r} is missing for {', '.join(lacking)}")
    common = set.intersection(*(set(per_language[lang]) for lang in languages))
    return {name: _mean([float(per_language[lang][name]) for lang in languages])
            for name in sorted(common)}


def _headline(task: str, means: Mapping[str, float]) -> float:
    if task in QA_TASKS:  # XTREME's avg_metric for QA
        return (means["exact_match"] + means["f1"]) / 2
    return means[HEADLINE_METRIC[task]]


def task_score(task: str, per_language: Mapping[str, Mapping[str, float]],
               benchmark: str = XTREME, allow_missing: bool = False) -> TaskScore:
    """Aggregate one task over its official languages.

    `per_language`: {language: {metric: value (0-100)}}, e.g. xtl.evaluation.metrics.score outputs.
    Every official language must be present; otherwise a DataError names the missing ones, unless
    `allow_missing` is True, in which case the means cover the present official languages ONLY
    and the result is flagged (`partial`, `missing`). Non-official languages are ignored.
    """
    official = official_languages(task, benchmark)
    present = tuple(lang for lang in official if lang in per_language)
    missing = tuple(lang for lang in official if lang not in per_language)
    if missing and not allow_missing:
        raise DataError(f"{task} ({benchmark}): missing official languages "
                        f"{', '.join(missing)} (pass allow_missing=True for a flagged partial "
                        "mean over the languages present)")
    if not present:
        raise DataError(f"{task} ({benchmark}): none of the official languages is present")
    means = _metric_means(task, per_language, present)
    extra = tuple(sorted(set(per_language) - set(official)))
    return TaskScore(task, _headline(task, means), means, present, missing, extra)


def _task_number(value: float | TaskScore) -> float:
    return value.score if isinstance(value, TaskScore) else float(value)


def benchmark_score(task_scores: Mapping[str, float | TaskScore], benchmark: str = XTREME,
                    allow_missing: bool | None = None) -> BenchmarkScore:
    """Overall and category scores from task numbers (floats or TaskScore).

    XTREME: all 9 tasks are required (a DataError names the missing ones) unless
    `allow_missing=True`, which gives a flagged mean over the tasks present. XTREME-R: the
    official code cannot compute it, so by default (`allow_missing=None` -> True) it is the mean
    over the XTREME-R tasks present, and `tasks` says which were included; pass False to
    require all 10. Tasks of the other benchmark are ignored and listed in `ignored`.
    """
    benchmark = _benchmark(benchmark)
    if allow_missing is None:
        allow_missing = benchmark == XTREME_R
    known = LANGUAGES[benchmark]
    used = {t: _task_number(v) for t, v in task_scores.items() if t in known}
    missing = tuple(t for t in known if t not in used)
    if missing and not allow_missing:
        raise DataError(f"{benchmark}: missing task scores for {', '.join(missing)}")
    if not used:
        raise DataError(f"{benchmark}: none of its tasks ({', '.join(known)}) has a score")
    categories = {group: _mean([used[t] for t in members if t in used])
                  for group, members in GROUPS[benchmark].items()
                  if any(t in used for t in members)}
    partial = tuple(t for t, v in task_scores.items()
                    if t in used and isinstance(v, TaskScore) and v.partial)
    ignored = tuple(sorted(t for t in task_scores if t not in known))
    ordered = {t: used[t] for t in known if t in used}
    return BenchmarkScore(benchmark, _mean(list(ordered.values())), categories, ordered,
                          missing, partial, ignored)


def aggregate(results: Mapping[str, Mapping[str, Mapping[str, float]]], benchmark: str = XTREME,
              allow_missing: bool | None = None) -> BenchmarkScore:
    """{task: {language: {metric: value}}} -> the benchmark aggregate in one call.

    Languages: see `task_score` (allow_missing applies to languages as well as tasks; for
    XTREME-R, missing TASKS are always allowed but missing languages only when it is True).
    """
    benchmark = _benchmark(benchmark)
    per_task = {task: task_score(task, langs, benchmark, bool(allow_missing))
                for task, langs in results.items() if task in LANGUAGES[benchmark]}
    ignored = tuple(sorted(t for t in results if t not in LANGUAGES[benchmark]))
    return replace(benchmark_score(per_task, benchmark, allow_missing), ignored=ignored)
