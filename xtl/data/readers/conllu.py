"""CoNLL-U (Universal Dependencies) -> rows in google/xtreme's `udpos.<Language>` schema.

A row is `{"tokens": [form, ...], "pos_tags": [UPOS name, ...]}` (tags as NAMES: the tagging
format maps them by name to the task's tag set). What is read, line by line:
- `# ...` comments are skipped; a blank line ends a sentence (so does the end of the file);
- multi-word token ranges (`1-2`) and empty nodes (`1.1`) are skipped: only syntactic words
  carry a UPOS tag. (google/xtreme's Hub rows keep an empty node that has a UPOS, e.g. en_pud
  `7.1 started`; the raw reader does not -- the one known raw/Hub difference, pinned by a test);
- a word whose FORM or UPOS is `_` gets the tag `_`: the format drops such tokens and counts the
  rows it repaired (XTREME skips them: license-stripped treebanks such as English-ESL have `_`
  forms);
- anything else -- a wrong column count, an ID that is not a word, range or empty node, word ids
  out of sequence -- is a `DataError` naming the file and line.

Which files make a language (`reader`): google/xtreme's loader concatenates, in sorted path
order, every treebank directory of the UD release whose name contains `_<LanguageName>`
(except Arabic-NYUAD), so the raw rows equal the Hub rows. That rule also takes in treebanks
such as `UD_Ancient_Greek-*` for Greek; it is reproduced on purpose (same rows from either
source) and documented here rather than "fixed" on one side only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

from xtl.core.errors import DataError
from xtl.data.readers import text_lines

UNUSABLE = "_"  # the tag of a token no model may be trained or scored on
SPLIT_FILES = {"train": "train", "validation": "dev", "test": "test"}
_WORD, _RANGE, _EMPTY = re.compile(r"\d+"), re.compile(r"\d+-\d+"), re.compile(r"\d+\.\d+")
EXCLUDED_TREEBANKS = ("NYUAD",)  # google/xtreme leaves Arabic-NYUAD out (forms are `_`)


def read_file(path: Path) -> list[dict]:
    """Sentences of one CoNLL-U file as `{"tokens", "pos_tags"}` rows."""
    path = Path(path)
    rows: list[dict] = []
    tokens: list[str] = []
    tags: list[str] = []
    expected = 1  # the next word id in this sentence
    for number, line in text_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            if tokens:
                rows.append({"tokens": tokens, "pos_tags": tags})
            tokens, tags, expected = [], [], 1
            continue
        if line.startswith("#"):
            continue
        word = _word(line, path, number, expected)
        if word is None:
            continue
        tokens.append(word[0])
        tags.append(word[1])
        expected += 1
    if tokens:  # a file that does not end with a blank line
        rows.append({"tokens": tokens, "pos_tags": tags})
    return rows


def _word(line: str, path: Path, number: int, expected: int) -> tuple[str, str] | None:
    """(form, tag) of a word line; None for ranges and empty nodes; DataError otherwise."""
    columns = line.split("\t")
    if len(columns) != 10:
        raise DataError(f"{path}:{number}: not a CoNLL-U token line: expected 10 tab-separated "
                        f"columns, found {len(columns)} ({line[:60]!r})")
    word_id, form, upos = columns[0], columns[1], columns[3]
    if _RANGE.fullmatch(word_id) or _EMPTY.fullmatch(word_id):
        return None
    if not _WORD.fullmatch(word_id):
        raise DataError(f"{path}:{number}: ID {word_id!r} is not a word id (N), a multi-word "
                        "range (N-M) or an empty node (N.M)")
    if int(word_id) != expected:
        raise DataError(f"{path}:{number}: word id {word_id} out of sequence (expected "
                        f"{expected}); a missing blank line between sentences?")
    if form == UNUSABLE or upos == UNUSABLE:
        return form, UNUSABLE
    return form, upos


def treebank_files(root: Path, name: str, split: str) -> list[Path]:
    """The `<split>` files of every treebank of language `name` under one release directory."""
    suffix = f"-ud-{SPLIT_FILES[split]}.conllu"
    folders = sorted(p for p in Path(root).glob(f"*_{name}*") if p.is_dir()
                     and not any(x in p.name for x in EXCLUDED_TREEBANKS))
    return [f for folder in folders for f in sorted(folder.iterdir()) if f.name.endswith(suffix)]


def reader(names: Mapping[str, str], releases: Mapping[str, str], default_release: str
           ) -> Callable[[Path, str, str], tuple[list[dict], list[Path]]]:
    """A raw reader for UD releases unpacked under the task folder.

    `names` maps a language code to the English name UD uses (`en` -> `English`); `releases`
    maps a code to its release directory (`ud-treebanks-v2.7`), others use `default_release`.
    """

    def read(folder: Path, split: str, language: str) -> tuple[list[dict], list[Path]]:
        if language not in names:
            raise DataError(f"no UD language name known for {language!r}")
        if split not in SPLIT_FILES:
            raise DataError(f"UD releases have no {split!r} split (only {list(SPLIT_FILES)})")
        release = Path(folder) / releases.get(language, default_release)
        if not release.is_dir():
            raise DataError(f"UD release directory {str(release)!r} does not exist; unpack the "
                            f"release there (ud-treebanks-v2.x.tgz from LINDAT)")
        files = treebank_files(release, names[language], split)
        if not files:
            raise DataError(f"{str(release)!r} has no *-ud-{SPLIT_FILES[split]}.conllu file in "
                            f"a treebank directory named *_{names[language]}*")
        rows = [row for f in files for row in read_file(f)]
        return rows, files

    return read


def needed_files(names: Mapping[str, str], releases: Mapping[str, str], default_release: str
                 ) -> Callable[[Path, str, str], list[Path]]:
    """The files `reader(...)` would read, for a plan-time check (`Task.raw_files`): the
    treebank files found, or the pattern they are looked for under (which names what is
    missing: a release directory or a treebank)."""

    def needed(folder: Path, split: str, language: str) -> list[Path]:
        if language not in names or split not in SPLIT_FILES:
            return []  # the reader names these errors itself
        release = Path(folder) / releases.get(language, default_release)
        found = treebank_files(release, names[language], split) if release.is_dir() else []
        return found or [release / f"*_{names[language]}*" / f"*-ud-{SPLIT_FILES[split]}.conllu"]

    return needed
