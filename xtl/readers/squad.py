"""SQuAD-style JSON (SQuAD v1.1/2.0, XQuAD, MLQA, TyDiQA-GoldP releases) -> Hub-schema rows."""

from __future__ import annotations

import json
from pathlib import Path

from xtl.errors import DataError


def read_file(path: Path, strip: bool = False) -> list[dict]:
    """Rows {id, title, context, question, answers: {text, answer_start}} of one JSON file.

    `strip` reproduces the Hub loaders of XQuAD/XTREME, which strip contexts and questions but
    keep the raw answer starts (the adapter re-locates them), so both sources give equal rows.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        where = f"{path}:{err.lineno}:{err.colno}"
        raise DataError(f"{where}: not valid SQuAD JSON: {err.msg}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f"{path}: expected a SQuAD JSON object with a 'data' list")
    rows = []
    for a, article in enumerate(doc["data"]):
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            for q, qa in enumerate(paragraph.get("qas", [])):
                try:
                    answers = qa.get("answers", [])
                    context, question = paragraph["context"], qa["question"]
                    if strip:
                        context, question = context.strip(), question.strip()
                    rows.append({
                        "id": str(qa["id"]), "title": article.get("title", ""),
                        "context": context, "question": question,
                        "answers": {"text": [x["text"] for x in answers],
                                    "answer_start": [int(x["answer_start"]) for x in answers]},
                    })
                except (KeyError, TypeError, ValueError) as err:
                    raise DataError(f"{path}: data[{a}].paragraphs[{p}].qas[{q}] is malformed: "
                                    f"{type(err).__name__}: {err}") from None
    return rows


def reader(pattern: str, strip: bool = False):
    """A raw reader for files named by `pattern` ({language}, {split}) inside the task folder."""

    def read(folder: Path, split: str, language: str) -> tuple[list[dict], list[Path]]:
        path = Path(folder) / pattern.format(language=language, split=split)
        if not path.is_file():
            raise DataError(f"raw file {str(path)!r} does not exist")
        return read_file(path, strip), [path]

    return read
