"""Readers of raw release formats, one module per format; each returns rows in the schema of
the task's Hub counterpart, plus the files it read (for the data fingerprint).

A reader is `read(folder, split, language) -> (rows, files)`; a task names it as `raw_reader`
with the folder under the raw root as `raw_path`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from xtl.core.errors import DataError


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, as iterating the open file gives them.

    A byte-order mark is dropped and CRLF/CR line ends read as "\n" (files saved on Windows).

    Bytes that are not UTF-8 are a `DataError` naming the file and the first bad line (a text
    stream decodes ahead in blocks, so that line is found again in the raw bytes); so is a
    missing file.
    """
    try:
        with open(path, encoding="utf-8-sig") as f:
            yield from enumerate(f, start=1)
    except UnicodeDecodeError:
        raise DataError(_not_utf8(Path(path))) from None
    except FileNotFoundError:
        raise DataError(f"raw file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"raw file {str(path)!r} is a directory") from None


def _not_utf8(path: Path) -> str:
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return f"{path}:{number}: not UTF-8 text ({err.reason} at byte {err.start} of the line)"
    return f"{path}: not UTF-8 text"
