"""Plain-text tables for the command line: a header row and columns aligned to their widest
entry (the last column is left ragged, so long notes do not pad every line)."""

from __future__ import annotations

from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "",
          right: Sequence[int] = ()) -> str:
    """`rows` under `headers`, two spaces between columns; columns in `right` right-aligned."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [v.rjust(w) if i in right else v.ljust(w)
                 for i, (v, w) in enumerate(zip(r, widths, strict=True))]
        parts[-1] = r[-1].rjust(widths[-1]) if len(r) - 1 in right else r[-1]
        lines.append((indent + "  ".join(parts)).rstrip())
    return "\n".join(lines)


def plural(n: int, noun: str) -> str:
    """'1 language', '3 languages'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
