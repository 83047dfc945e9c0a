"""Screenshots of rendered reports in headless Chromium, to look at what a reader sees.

    python bench/screenshot_reports.py RUN_DIR [RUN_DIR ...] --out shots/ [--height 6000]
        [--split 1500]

For each run directory: index.html and analysis/report.html (and with --cells, every cell's
report.html) are opened as file:// URLs and saved as PNGs named <run>_<page>.png. Chromium:
Debian's `chromium` package (`apt-get install -y chromium`), or pass --chromium PATH.
The page is captured at a fixed window size, then the blank space below the page is cropped
off; a page that fills the whole --height is reported as cut (ask for a taller one). --split N
also writes <run>_<page>_pN.png parts N pixels tall, small enough for an image viewer.

    python bench/screenshot_reports.py --docs [RUN_DIR]

regenerates the screenshots committed under docs/figures/ (report_analysis.png,
report_cell_target.png, report_cell_retrieval.png): RUN_DIR (default runs/screenshots) is
first filled by `xtl run bench/screenshot_run.yaml` (cells already done are skipped), then
its analysis report, its panx-sample cell after synth-nli and its retrieval cell after
synth-nli are captured, 1200 px wide, in a 256-colour palette to keep the files small.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium(explicit: str | None) -> str:
    for name in ([explicit] if explicit else list(CANDIDATES)):
        path = shutil.which(name) if name else None
        if path:
            return path
    sys.exit("no Chromium found: apt-get install -y chromium, or pass --chromium PATH")


def pages(root: Path, cells: bool) -> list[tuple[str, Path]]:
    found = [("index", root / "index.html"), ("analysis", root / "analysis" / "report.html")]
    if cells:
        found += [(f"cell_{p.parent.name}", p) for p in sorted(root.glob("cells/*/report.html"))]
    return [(name, path) for name, path in found if path.is_file()]


def screenshot(chromium: str, page: Path, dest: Path, width: int, height: int) -> float:
    """One PNG of `page`; returns the seconds Chromium took."""
    started = time.perf_counter()
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size={width},{height}",
                    f"--screenshot={dest}", page.resolve().as_uri()],
                   check=True, capture_output=True, timeout=180)
    return time.perf_counter() - started


def trim(png: Path, split: int) -> tuple[int, bool, list[Path]]:
    """Crop the blank rows below the page; (height kept, whether the page was cut by the
    window, the parts written when `split`)."""
    import numpy as np
    from PIL import Image

    image = Image.open(png).convert("RGB")
    gray = np.asarray(image.convert("L"))
    inked = np.flatnonzero(gray.min(axis=1) < 250)
    bottom = int(inked.max()) + 11 if len(inked) else image.height
    cut = bottom >= image.height - 5
    image = image.crop((0, 0, image.width, min(bottom, image.height)))
    image.save(png)
    parts = []
    if split:
        for k, top in enumerate(range(0, image.height, split)):
            part = png.with_name(f"{png.stem}_p{k}.png")
            image.crop((0, top, image.width, min(top + split, image.height))).save(part)
            parts.append(part)
    return image.height, cut, parts


SCREENSHOT_RUN = Path(__file__).with_name("screenshot_run.yaml")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "figures"


def docs_pages(root: Path) -> list[tuple[str, Path]]:
    """(figure name, page) of the committed screenshots, from a run of SCREENSHOT_RUN."""
    import json

    cells = json.loads((root / "plan.json").read_text())["cells"]

    def cell(kind: str, target: str) -> Path:
        found = [c["id"] for c in cells if c["kind"] == kind and c["axes"].get("target") == target
                 and c["axes"].get("intermediate") == "synth-nli"]
        if len(found) != 1:
            sys.exit(f"{root}: expected one {kind} cell for {target} after synth-nli, "
                     f"found {found}")
        return root / "cells" / found[0] / "report.html"

    return [("report_analysis", root / "analysis" / "report.html"),
            ("report_cell_target", cell("target", "panx-sample")),
            ("report_cell_retrieval", cell("retrieval", "tatoeba-sample"))]


def docs(root: Path, chromium: str, height: int) -> None:
    """Run SCREENSHOT_RUN into `root` (done cells are skipped), then write docs/figures."""
    from PIL import Image

    xtl = Path(sys.executable).with_name("xtl")
    subprocess.run([str(xtl), "run", str(SCREENSHOT_RUN), "--out", str(root)], check=True)
    for name, page in docs_pages(root):
        dest = DOCS / f"{name}.png"
        seconds = screenshot(chromium, page, dest, 1200, height)
        kept, cut, _ = trim(dest, 0)
        Image.open(dest).convert("RGB").quantize(256).save(dest, optimize=True)
        note = " CUT: the page is taller than --height" if cut else ""
        print(f"{dest} ({page}, {kept}px, {seconds:.1f}s, "
              f"{dest.stat().st_size / 1e3:.0f} kB){note}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run directories")
    parser.add_argument("--docs", action="store_true",
                        help="regenerate docs/figures/report_*.png (see above)")
    parser.add_argument("--out", type=Path, default=Path("shots"))
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=6000)
    parser.add_argument("--split", type=int, default=0,
                        help="also write parts this many pixels tall (0: none)")
    parser.add_argument("--cells", action="store_true", help="also every cell's report")
    parser.add_argument("--chromium")
    args = parser.parse_args(argv)
    chromium = find_chromium(args.chromium)
    if args.docs:
        docs((args.runs or [Path("runs/screenshots")])[0], chromium, max(args.height, 16000))
        return
    if not args.runs:
        parser.error("give run directories, or --docs")
    args.out.mkdir(parents=True, exist_ok=True)
    for root in args.runs:
        found = pages(root, args.cells)
        if not found:
            print(f"{root}: no index.html or report.html", file=sys.stderr)
        for name, page in found:
            dest = args.out / f"{root.name}_{name}.png"
            seconds = screenshot(chromium, page, dest, args.width, args.height)
            height, cut, parts = trim(dest, args.split)
            note = " CUT: the page is taller than --height" if cut else ""
            print(f"{dest} ({page}, {height}px, {seconds:.1f}s, {len(parts)} parts){note}")


if __name__ == "__main__":
    main()
