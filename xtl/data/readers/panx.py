"""PAN-X / WikiANN token files -> rows in google/xtreme's `PAN-X.<lang>` schema.

Two layouts of the same data are read, one token per line and a blank line between sentences:
- XTREME's preprocessed files (`download/panx/{train,dev,test}-<lang>.tsv`, made by
  utils_preprocess.py): `token<TAB>tag`; the test files carry tokens only (no tags), and such
  sentences come back with `ner_tags` None (unusable: the format counts them);
- the raw `panx_dataset` members (`<lang>.tar.gz` -> `train`, `dev`, `test`): every token is
  prefixed `<lang>:` (e.g. `en:Shortly`). The prefix is removed only when EVERY token line of
  the file has it, so a real token that merely starts with `en:` in a preprocessed file is kept.
  Removing exactly `<lang>:` equals both Hub loaders for two-letter codes (google/xtreme cuts 3
  characters, wikiann splits at the first ':'; they differ only for longer codes such as
  `zh-yue`, which no XTREME language has).
Tags are returned as strings; the tagging format checks them against the task's tag set.
A line with more than two columns, or a file that mixes tagged and untagged lines, is a
`DataError` naming the file and line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from xtl.core.errors import DataError
from xtl.data.readers import text_lines

SPLIT_FILES = {"train": "train", "validation": "dev", "test": "test"}


def _split_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, columns) of every non-blank line; blank lines as (number, [])."""
    out = []
    for number, line in text_lines(path):
        line = line.rstrip("\r\n")
        out.append((number, line.split("\t") if line.strip() else []))
    return out


def _check_columns(path: Path, lines: list[tuple[int, list[str]]]) -> bool:
    """Whether the file is tagged (two columns) or untagged (one); errors name the line."""
    tagged = None
    for number, columns in lines:
        if not columns:
            continue
        if len(columns) > 2 or not columns[0]:
            raise DataError(f"{path}:{number}: not a PAN-X token line: expected "
                            f"'token<TAB>tag' or 'token', got {'<TAB>'.join(columns)[:60]!r}")
        if tagged is None:
            tagged = len(columns) == 2
        elif tagged != (len(columns) == 2):
            kind = "has no tag" if tagged else "has a tag"
            raise DataError(f"{path}:{number}: this line {kind}, unlike the file's first token "
                            "line; a file is either tagged or untagged throughout")
    return bool(tagged)


def read_file(path: Path, language: str) -> list[dict]:
    """Sentences of one file as `{"tokens", "ner_tags"}` rows (`ner_tags` None if untagged)."""
    path = Path(path)
    lines = _split_lines(path)
    tagged = _check_columns(path, lines)
    prefix = f"{language}:"
    words = [cols[0] for _, cols in lines if cols]
    strip = bool(words) and all(w.startswith(prefix) and len(w) > len(prefix) for w in words)
    rows, tokens, tags = [], [], []
    for _, columns in (*lines, (0, [])):  # the sentinel flushes a file without a final blank
        if columns:
            tokens.append(columns[0][len(prefix):] if strip else columns[0])
            tags.append(columns[1] if tagged else None)
        elif tokens:
            rows.append({"tokens": tokens, "ner_tags": tags if tagged else None})
            tokens, tags = [], []
    return rows


def reader(pattern: str = "{split}-{language}.tsv") -> Callable[..., tuple[list[dict], list]]:
    """A raw reader for files named by `pattern` ({split}: train/dev/test, {language})."""

    def read(folder: Path, split: str, language: str) -> tuple[list[dict], list[Path]]:
        if split not in SPLIT_FILES:
            raise DataError(f"PAN-X has no {split!r} split (only {list(SPLIT_FILES)})")
        path = Path(folder) / pattern.format(split=SPLIT_FILES[split], language=language)
        return read_file(path, language), [path]

    return read
