"""BUCC 2018 release files -> canonical retrieval rows (comparable corpora plus gold pairs).

Release layout (docs/data.md section 2): `bucc2018/<l>-en/<l>-en.<part>.{<l>,en,gold}`, where the
sentence files are TSV `id<TAB>sentence` and the gold file is TSV `<l>_id<TAB>en_id`. XTREME
uses the `sample` part as its dev set and `training` as its test set (its download script and
jiant's `dl_datasets/xtreme.py`: "sample -> dev, training -> test"). The Hub copy
(`google/xtreme` `bucc18.*`) yields only the gold pairs, not the corpora mining needs, so BUCC
is read from these files only.

There is no Hub schema to imitate, so this reader yields the retrieval format's canonical rows
directly (see xtl/data/tasks/retrieval.py): one row per sentence, the non-English sentences as
`source` with the ids of their English translations in `gold`, the English ones as `target`.
"""

from __future__ import annotations

from pathlib import Path

from xtl.core.errors import DataError, unknown
from xtl.data.readers import text_lines

# canonical split -> the release's part name
PARTS = {"validation": "sample", "test": "training"}


def part(split: str) -> str:
    if split not in PARTS:
        raise unknown("BUCC split", split, PARTS, DataError)
    return PARTS[split]


def _tsv(path: Path, what: str) -> list[tuple[str, str]]:
    """(first field, second field) per non-empty line; a line without a tab is an error."""
    if not path.is_file():
        raise DataError(f"raw file {str(path)!r} does not exist (expected the BUCC 2018 release "
                        f"layout <l>-en/<l>-en.<sample|training>.<l|en|gold>)")
    out = []
    for number, line in text_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        first, tab, rest = line.partition("\t")
        if not tab or not first.strip():
            raise DataError(f"{path}:{number}: expected {what}, got {line[:80]!r}")
        out.append((first.strip(), rest.strip()))
    return out


def read_sentences(path: Path) -> dict[str, str]:
    """{id: sentence} of one sentence file, in file order; a repeated id is an error."""
    sentences: dict[str, str] = {}
    for sid, text in _tsv(path, "'id<TAB>sentence'"):
        if sid in sentences:
            raise DataError(f"{path}: sentence id {sid!r} appears twice")
        sentences[sid] = text
    return sentences


def read_gold(path: Path, source: dict[str, str], target: dict[str, str]) -> list[tuple[str, str]]:
    """Gold (source id, English id) pairs, each once; every id must be in the sentence files."""
    pairs = list(dict.fromkeys(_tsv(path, "'source_id<TAB>en_id'")))
    stray = [p for p in pairs if p[0] not in source or p[1] not in target]
    if stray:
        shown = ", ".join(f"{s}\t{t}" for s, t in stray[:3])
        raise DataError(f"{path}: {len(stray)} of {len(pairs)} gold pairs name ids that are not "
                        f"in the sentence files (e.g. {shown!r}); the gold file and the sentence "
                        "files must come from the same release part")
    if not pairs:
        raise DataError(f"{path}: no gold pairs")
    return pairs


def files(folder: Path, split: str, language: str) -> list[Path]:
    """The sentence files of both sides and the gold file of one language pair and split."""
    stem = Path(folder) / f"{language}-en" / f"{language}-en.{part(split)}"
    return [Path(f"{stem}.{language}"), Path(f"{stem}.en"), Path(f"{stem}.gold")]


def read(folder: Path, split: str, language: str) -> tuple[list[dict], list[Path]]:
    """Canonical rows {id, source, target, gold} of one language pair and split."""
    paths = files(folder, split, language)
    source, target = read_sentences(paths[0]), read_sentences(paths[1])
    aligned: dict[str, list[str]] = {}
    for sid, tid in read_gold(paths[2], source, target):
        aligned.setdefault(sid, []).append(tid)
    rows = [{"id": sid, "source": text, "target": None, "gold": aligned.get(sid, [])}
            for sid, text in source.items()]
    rows += [{"id": tid, "source": None, "target": text, "gold": []}
             for tid, text in target.items()]
    return rows, paths
