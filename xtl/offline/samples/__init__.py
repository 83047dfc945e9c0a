"""Small samples of REAL data shipped with xtl, read by the kit's raw readers (README.md here:
what each file is, where it comes from, and its licence).

Tasks registered with `bundled=True` read their raw files from `root() / task.raw_path`
instead of the user's `raw_dir`, so `panx-sample` and `tatoeba-sample` run offline on any
install that has the package data (a wheel or an editable checkout).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from xtl.core.errors import DataError


def root() -> Path:
    """The directory that holds the samples (`panx/`, `tatoeba/`, README.md)."""
    found = resources.files(__name__)
    if not isinstance(found, Path) or not (found / "README.md").is_file():
        raise DataError(f"xtl's bundled samples are not on the file system ({found!r}): install "
                        "xtl as a regular directory (pip install, not a zipped package)")
    return found


# What the real samples can and cannot show, for the reports (xtl.analysis.reports).
CAN_SHOW = (
    "panx-sample and tatoeba-sample are REAL text (PAN-X / WikiANN, Tatoeba; README.md here): "
    "zero-shot NER F1 and sentence-retrieval accuracy on them are real cross-lingual transfer, "
    "in languages of four scripts, Swahili among them.")
CANNOT_SHOW = (
    "They are small: 200 English training sentences (XTREME trains on 20,000), 200 evaluation "
    "sentences or 300 pairs per language, so absolute scores sit far below XTREME's and every "
    "number has a wide interval (the analysis gives paired-bootstrap intervals for the gains).")
