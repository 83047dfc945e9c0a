"""SQuAD-style JSON (SQuAD v1.1/2.0, XQuAD, MLQA, TyDiQA-GoldP releases) -> Hub-schema rows."""

from __future__ import annotations

import json
from pathlib import Path

from xtl.core.errors import DataError
from xtl.data.readers import text_lines


def document(path: Path) -> dict:
    """The JSON object of a SQuAD-style file (XQuAD-R too), checked to hold a 'data' list."""
    try:
        doc = json.loads("".join(line for _, line in text_lines(path)))
    except json.JSONDecodeError as err:
        where = f"{path}:{err.lineno}:{err.colno}"
        raise DataError(f"{where}: not valid SQuAD JSON: {err.msg}") from None
    except RecursionError:
        raise DataError(f"{path}: not SQuAD JSON: nested too deeply") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f"{path}: expected a SQuAD JSON object with a 'data' list")
    return doc


def read_file(path: Path, strip: bool = False) -> list[dict]:
    """Rows {id, title, context, question, answers: {text, answer_start}} of one JSON file.

    `strip` reproduces the Hub loaders of XQuAD/XTREME, which strip contexts and questions but
    keep the raw answer starts (the adapter re-locates them), so both sources give equal rows.
    """
    doc = document(path)
    rows, where = [], "data"
    try:
        for a, article in enumerate(doc["data"]):
            where = f"data[{a}]"
            for p, paragraph in enumerate(article.get("paragraphs", [])):
                where = f"data[{a}].paragraphs[{p}]"
                for q, qa in enumerate(paragraph.get("qas", [])):
                    where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                    rows.append(_row(article, paragraph, qa, strip))
    except (AttributeError, KeyError, OverflowError, TypeError, ValueError) as err:
        raise DataError(f"{path}: {where} is malformed: {type(err).__name__}: {err}") from None
    return rows


def _row(article: dict, paragraph: dict, qa: dict, strip: bool) -> dict:
    answers = qa.get("answers", [])
    title, context, question = article.get("title", ""), paragraph["context"], qa["question"]
    texts = [x["text"] for x in answers]
    if not all(isinstance(s, str) for s in (context, question, *texts)) or not isinstance(
            title, (str, type(None))):
        raise TypeError("title, context, question and answer texts must be strings")
    if strip:
        context, question = context.strip(), question.strip()
    return {"id": str(qa["id"]), "title": title, "context": context, "question": question,
            "answers": {"text": texts, "answer_start": [int(x["answer_start"]) for x in answers]}}


def reader(pattern: str, strip: bool = False):
    """A raw reader for files named by `pattern` ({language}, {split}) inside the task folder."""

    def read(folder: Path, split: str, language: str) -> tuple[list[dict], list[Path]]:
        path = Path(folder) / pattern.format(language=language, split=split)
        return read_file(path, strip), [path]

    return read
