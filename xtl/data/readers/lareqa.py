"""LAReQA's XQuAD-R release (google-research-datasets/lareqa `xquad-r/<lang>.json`) -> the
dual-encoder rows of xtl/data/tasks/dual_encoder.py.

XQuAD-R is SQuAD JSON whose paragraphs also carry `sentence_breaks` ([start, end) character
spans of the context) and `sentences`; the Hub copy drops both (docs/data.md section 3), so the
retrieval candidates can only come from these files. The protocol, as XTREME's LAReQA scorer
builds it (`third_party/utils_lareqa.py`):
- every sentence of every paragraph of every language is a candidate, `context[start:end]` of
  its break, encoded with its paragraph; its id is `<lang>:<paragraph>:<sentence>` (paragraphs
  counted through the file, so a sentence repeated in two paragraphs is two candidates);
- a question's answer sentence is the break holding `answer_start`; its relevant candidates
  are the answer sentences of the questions with the SAME id (the XQuAD-R question id names
  one question across its translations) in every language of the pool;
- each question of one language retrieves from the whole multilingual pool.
A question whose answer starts outside every sentence is kept with no relevant candidate; the
format drops it and counts it as unusable (XTREME skips it with a warning).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xtl.core.errors import DataError
from xtl.data.readers import squad


def _load(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"raw file {str(path)!r} does not exist (XQuAD-R: "
                        "google-research-datasets/lareqa xquad-r/<language>.json)")
    return squad.document(path)


def _breaks(path: Path, where: str, paragraph: dict) -> list[tuple[int, int]]:
    breaks = paragraph.get("sentence_breaks")
    if not isinstance(breaks, list) or not breaks:
        raise DataError(f"{path}: {where} has no 'sentence_breaks' (the XQuAD-R sentence spans "
                        "that define the candidates; the Hub copy lacks them: use the raw file)")
    size = len(paragraph["context"])
    spans = []
    for k, span in enumerate(breaks):
        if not (isinstance(span, list) and len(span) == 2
                and all(type(x) is int for x in span) and 0 <= span[0] < span[1] <= size):
            raise DataError(f"{path}: {where}.sentence_breaks[{k}] = {span!r} is not a "
                            f"[start, end) span inside the {size}-character context")
        spans.append((int(span[0]), int(span[1])))
    return spans


def parse(path: Path, language: str) -> tuple[list[dict], list[dict]]:
    """(questions, candidates) of one XQuAD-R file.

    questions: {id, question, answer} with `answer` the candidate id of the answer sentence
    (None when the answer starts outside every sentence); candidates: {id, sentence, context}.
    """
    doc = _load(Path(path))
    questions, candidates = [], []
    paragraph_no = 0
    for a, article in enumerate(doc["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs", []), list):
            raise DataError(f"{path}: data[{a}] is not an object with a 'paragraphs' list")
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            where = f"data[{a}].paragraphs[{p}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str):
                raise DataError(f"{path}: {where} has no 'context' string")
            qas = paragraph.get("qas", [])
            if not isinstance(qas, list) or not all(isinstance(qa, dict) for qa in qas):
                raise DataError(f"{path}: {where}.qas must be a list of question objects")
            paragraph_no += 1
            context, spans = paragraph["context"], _breaks(path, where, paragraph)
            ids = [f"{language}:{paragraph_no}:{k}" for k in range(len(spans))]
            candidates += [{"id": cid, "sentence": context[s:e], "context": context}
                           for cid, (s, e) in zip(ids, spans, strict=True)]
            for q, qa in enumerate(paragraph.get("qas", [])):
                record = f"{where}.qas[{q}] (id {qa.get('id')!r})"
                try:
                    qid, question = str(qa["id"]), qa["question"]
                    start = int(qa["answers"][0]["answer_start"])
                except (KeyError, IndexError, TypeError, ValueError) as err:
                    raise DataError(f"{path}: {record} lacks a required field (id, question, "
                                    f"answers[0].answer_start): {type(err).__name__}: {err}"
                                    ) from None
                answer = next((cid for cid, (s, e) in zip(ids, spans, strict=True)
                               if s <= start < e), None)
                questions.append({"id": qid, "question": question, "answer": answer})
    return questions, candidates


def rows(files: dict[str, Path], language: str) -> list[dict]:
    """Dual-encoder rows for the questions of `language` against the pool of every file
    (`files`: language -> XQuAD-R file, `language` among them)."""
    if language not in files:
        raise DataError(f"LAReQA: the question language {language!r} is not in the candidate "
                        f"pool's languages {sorted(files)}")
    parsed = {lang: parse(path, lang) for lang, path in files.items()}
    relevant: dict[str, list[str]] = {}
    for questions, _ in parsed.values():
        for q in questions:
            if q["answer"] is not None:
                relevant.setdefault(q["id"], []).append(q["answer"])
    out = []
    for q in parsed[language][0]:
        out.append({"id": q["id"], "query": q["question"], "query_context": None,
                    "candidate": None, "candidate_context": None, "candidate_id": None,
                    "candidate_language": None,
                    # no relevant candidate when its own answer is outside every sentence
                    "gold": relevant.get(q["id"], []) if q["answer"] is not None else []})
    for lang, (_, candidates) in parsed.items():
        out += [{"id": c["id"], "query": None, "query_context": None, "candidate": c["sentence"],
                 "candidate_context": c["context"], "candidate_id": c["id"],
                 "candidate_language": lang, "gold": []} for c in candidates]
    return out


def reader(pool_languages: Sequence[str], pattern: str = "{language}.json"):
    """A raw reader (xtl/data/readers/__init__.py) whose candidate pool is the files of
    `pool_languages`: all of them must be present (a smaller pool would inflate the score)."""
    pool = tuple(pool_languages)

    def read(folder: Path, split: str, language: str) -> tuple[list[dict], list[Path]]:
        # XQuAD-R has one set of questions; the task maps both evaluation splits to it
        files = {lang: Path(folder) / pattern.format(language=lang) for lang in pool}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise DataError(f"LAReQA's candidate pool spans {len(pool)} languages; missing raw "
                            f"file(s): {', '.join(missing)}")
        return rows(files, language), list(files.values())

    return read


def pool_files(pool_languages: Sequence[str], pattern: str = "{language}.json"):
    """What `reader(pool_languages)` reads whatever the language asked for (every pool
    language's file), for a plan-time check (`Task.raw_files`)."""
    pool = tuple(pool_languages)

    def needed(folder: Path, split: str, language: str) -> list[Path]:
        return [Path(folder) / pattern.format(language=lang) for lang in pool]

    return needed
