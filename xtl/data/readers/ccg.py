"""CCG supertagging in jiant's TSV format (bring your own CCGbank conversion).

CCGbank is LDC-licensed (LDC2005T13) and has no Hub copy, so the kit reads the files jiant's
CCG task reads (nyu-mll/jiant `jiant/tasks/lib/ccg.py`): one sentence per line,
`<space-tokenized sentence><TAB><space-separated supertags>`, one tag per word, in
`ccg.train`, `ccg.dev`, `ccg.test` under the task folder (standard split: WSJ sections 02-21,
00, 23), plus optionally jiant's `tags_to_id.json` ({tag: id}).

The tag set: `tags_to_id.json` when present (ids 0..n-1, jiant's 1,363 CCGbank tags), else
the sorted set of tags in the TRAINING file. A dev/test tag outside it is an error naming the
tag, file and line (supply a `tags_to_id.json` that covers every split). The rows come back as a
Dataset whose `tags` column is a ClassLabel over that tag set, which the tagging format keeps.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets

from xtl.core.errors import DataError
from xtl.data.readers import text_lines

FILES = {"train": "ccg.train", "validation": "ccg.dev", "test": "ccg.test"}
TAG_IDS = "tags_to_id.json"


def read_file(path: Path) -> list[tuple[int, list[str], list[str]]]:
    """(line number, words, tags) per non-blank line; a malformed line names file and line."""
    out = []
    for number, line in text_lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(f"{path}:{number}: expected '<sentence><TAB><tags>' (one tab), "
                            f"found {len(parts) - 1} tab(s)")
        words, tags = parts[0].split(), parts[1].split()
        if len(words) != len(tags) or not words:
            raise DataError(f"{path}:{number}: {len(words)} words but {len(tags)} tags")
        out.append((number, words, tags))
    return out


def _file(folder: Path, split: str) -> Path:
    if split not in FILES:
        raise DataError(f"CCG has no {split!r} split (only {list(FILES)})")
    path = Path(folder) / FILES[split]
    if not path.is_file():
        raise DataError(f"raw file {str(path)!r} does not exist; CCG is bring-your-own: put "
                        f"jiant-format {', '.join(FILES.values())} in {str(folder)!r}")
    return path


def tag_set(folder: Path) -> tuple[list[str], list[Path]]:
    """The tag names in id order, and the files they came from."""
    mapping = Path(folder) / TAG_IDS
    if mapping.is_file():
        try:
            ids = json.loads("".join(line for _, line in text_lines(mapping)))
        except json.JSONDecodeError as err:
            raise DataError(f"{mapping}:{err.lineno}:{err.colno}: not valid JSON: "
                            f"{err.msg}") from None
        try:
            ids = {tag: int(i) for tag, i in ids.items()}
        except (AttributeError, TypeError, ValueError):
            raise DataError(f"{mapping}: expected a JSON object {{tag: integer id}}") from None
        order = sorted(ids, key=lambda tag: ids[tag])
        if [ids[t] for t in order] != list(range(len(order))):
            raise DataError(f"{mapping}: tag ids must be 0..{len(order) - 1}, each once")
        return order, [mapping]
    train = _file(folder, "train")
    return sorted({t for _, _, tags in read_file(train) for t in tags}), [train]


def read(folder: Path, split: str, language: str) -> tuple[datasets.Dataset, list[Path]]:
    """The raw reader of task `ccg`: rows `{tokens, tags}` with `tags` a ClassLabel."""
    names, tag_files = tag_set(folder)
    index = {tag: i for i, tag in enumerate(names)}
    path = _file(folder, split)
    tokens, tags = [], []
    for number, words, line_tags in read_file(path):
        unknown = next((t for t in line_tags if t not in index), None)
        if unknown is not None:
            source = TAG_IDS if tag_files[0].name == TAG_IDS else "the training file"
            raise DataError(f"{path}:{number}: tag {unknown!r} is outside the tag set "
                            f"({len(names)} tags from {source}); add a {TAG_IDS} that covers "
                            "every split")
        tokens.append(words)
        tags.append([index[t] for t in line_tags])
    features = datasets.Features({
        "tokens": datasets.Sequence(datasets.Value("string")),
        "tags": datasets.Sequence(datasets.ClassLabel(names=names)),
    })
    rows = datasets.Dataset.from_dict({"tokens": tokens, "tags": tags}, features=features)
    return rows, sorted({path, *tag_files})
