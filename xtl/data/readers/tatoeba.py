"""LASER Tatoeba release files -> rows of google/xtreme `tatoeba.<iso3>`.

The release (facebookresearch/LASER `data/tatoeba/v1/`) holds two line-aligned files per
language, `tatoeba.<iso3>-eng.<iso3>` and `tatoeba.<iso3>-eng.eng`: line i of one is the
translation of line i of the other. The Hub loader yields each line as read, trailing "\\n"
included (docs/data.md section 2); this reader does the same, so the format's canonicaliser strips
both sources alike and they give equal rows.
"""

from __future__ import annotations

from pathlib import Path

from xtl.core.errors import DataError, unknown
from xtl.data.readers import text_lines

# XTREME's two-letter codes (evaluate.py) -> LASER's ISO 639-3 file codes: the 36 XTREME
# languages (docs/data.md section 2) and the 5 XTREME-R additions (section 3, utils_preprocess).
ISO3 = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa",
    "et": "est", "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin",
    "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz",
    "ko": "kor", "ml": "mal", "mr": "mar", "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh",
    "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl", "tr": "tur", "ur": "urd", "vi": "vie",
    "zh": "cmn",
    # XTREME-R only: not configs of google/xtreme
    "az": "aze", "lt": "lit", "pl": "pol", "ro": "ron", "uk": "ukr",
}


def iso3(language: str) -> str:
    if language not in ISO3:
        raise unknown("Tatoeba language", language, ISO3, DataError)
    return ISO3[language]


def read_lines(path: Path) -> list[str]:
    """The file's lines as Python iterates a text file: split on "\\n" only.

    Not `str.splitlines`, which also splits on U+2028, U+0085, form feeds, ... and would shift
    the alignment of every later line.
    """
    return [line for _, line in text_lines(path)]


def files(folder: Path, split: str, language: str) -> list[Path]:
    """The two files of one language pair: `tatoeba.<iso3>-eng.<iso3>`, `tatoeba.<iso3>-eng.eng`.
    (One set of pairs, whatever the split.)"""
    code = iso3(language)
    return [Path(folder) / f"tatoeba.{code}-eng.{code}", Path(folder) / f"tatoeba.{code}-eng.eng"]


def read(folder: Path, split: str, language: str) -> tuple[list[dict], list[Path]]:
    """Rows {source_sentence, target_sentence, source_lang, target_lang} of one language.

    Tatoeba has one set of pairs, whatever the split asked for (the task maps its splits).
    """
    code = iso3(language)
    foreign, english = files(folder, split, language)
    source, target = read_lines(foreign), read_lines(english)
    if len(source) != len(target):
        raise DataError(f"{foreign} has {len(source)} lines but {english} has {len(target)}; "
                        "the two files must be line-aligned")
    rows = [{"source_sentence": s, "target_sentence": t, "source_lang": code,
             "target_lang": "eng"} for s, t in zip(source, target, strict=True)]
    return rows, [foreign, english]
