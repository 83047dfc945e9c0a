"""The `tag_subtoken` experiment as a table: zero-shot PAN-X F1 per language and labelling rule.

Usage: .venv/bin/python bench/panx_label_rule.py RUN_DIR
RUN_DIR is the output of `xtl run bench/panx_label_rule.yaml` (see that file). Prints, in
Markdown: the mean, standard deviation (over seeds, n - 1) and range of F1 per language and
rule, the difference content - first, whether the two rules' seed ranges overlap, and the
tokenisation fact behind it: the share of words (and of entity words) whose FIRST sub-token is
a bare "▁" under the model's tokenizer, on the same validation rows. Then each cell's time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from xtl.analysis import results
from xtl.data import sources, tasks
from xtl.data.tasks import tagging_windows as tag_windows
from xtl.grid.plan import Plan
from xtl.model import zoo


def scores(run_dir: Path) -> pd.DataFrame:
    """seed x (rule, language) F1 on validation."""
    table = results.load(run_dir)
    f1 = table[(table["task"] == "panx") & (table["metric"] == "f1")
               & (table["split"] == "validation")]
    return f1.pivot_table(index="seed", columns=["grid.tag_subtoken", "language"],
                          values="value")


def bare_first_shares(run_dir: Path, languages: list[str]) -> dict[str, tuple[float, float]]:
    """Per language: share of words, and of entity words, whose first sub-token is bare."""
    from transformers import AutoTokenizer

    plan = Plan.from_json(json.loads((run_dir / "plan.json").read_text()))
    cell = next(c for c in plan.cells if c.kind == "target")
    location, _ = zoo.materialize(cell.axes["model"])
    tok = AutoTokenizer.from_pretrained(location)
    bare = tag_windows._bare_ids(tok)
    prefix = (cell.recipe.get("hparams", {}).get("input_prefix", "")).split()
    mirror = Path(plan.mirror) if plan.mirror else None
    out = {}
    for lang in languages:
        rows = sources.load(tasks.get("panx"), "validation", lang, mirror).rows
        words = entity = bare_words = bare_entity = 0
        enc = tok([prefix + list(t) for t in rows["tokens"]], is_split_into_words=True,
                  add_special_tokens=False)
        for i, tags in enumerate(rows["tags"]):
            first: dict[int, int] = {}
            for k, w in enumerate(enc.word_ids(i)):
                if w is not None and w >= len(prefix) and (w - len(prefix)) not in first:
                    first[w - len(prefix)] = enc["input_ids"][i][k]
            for w, tag in enumerate(tags):
                is_bare = first.get(w) in bare
                words += 1
                bare_words += is_bare
                if tag != 0:  # not "O"
                    entity += 1
                    bare_entity += is_bare
        out[lang] = (100 * bare_words / words, 100 * bare_entity / max(1, entity))
    return out


def cell_times(run_dir: Path) -> pd.DataFrame:
    rows = []
    for status in sorted(run_dir.glob("cells/*/status.json")):
        doc = json.loads(status.read_text())
        rows.append({"cell": doc["cell"], "label": doc.get("label"), "seconds": doc.get("seconds")})
    return pd.DataFrame(rows)


def main(run_dir: Path) -> None:
    f1 = scores(run_dir)
    rules = [r for r in ("first", "content") if r in f1.columns.get_level_values(0)]
    order = ["en", "de", "ar", "hi", "zh", "sw"]
    languages = [lang for lang in order if lang in f1.columns.get_level_values(1)]
    shares = bare_first_shares(run_dir, languages)
    print(f"seeds: {sorted(f1.index.tolist())}; F1 on 200 validation sentences per language\n")
    head = "| language | " + " | ".join(f"{r}: mean ± sd [min, max]" for r in rules)
    print(head + " | content - first | ranges overlap | words with a bare first piece "
                 "| entity words with a bare first piece |")
    print("|" + "---|" * (len(rules) + 5))
    means = {}
    for lang in languages + ["mean (zero-shot)"]:
        cells = []
        spans = {}
        for rule in rules:
            if lang.startswith("mean"):
                values = f1[rule][[x for x in languages if x != "en"]].mean(axis=1)
            else:
                values = f1[rule][lang]
            means[(rule, lang)] = values.mean()
            spans[rule] = (values.min(), values.max())
            cells.append(f"{values.mean():.1f} ± {values.std(ddof=1):.1f} "
                         f"[{values.min():.1f}, {values.max():.1f}]")
        diff = (means[("content", lang)] - means[("first", lang)] if len(rules) == 2
                else float("nan"))
        overlap = (len(rules) == 2 and spans["first"][0] <= spans["content"][1]
                   and spans["content"][0] <= spans["first"][1])
        share = shares.get(lang)
        share_cells = [f"{share[0]:.1f}%", f"{share[1]:.1f}%"] if share else ["", ""]
        print(f"| {lang} | " + " | ".join(cells) + f" | {diff:+.1f} | "
              f"{'yes' if overlap else 'NO'} | " + " | ".join(share_cells) + " |")
    print("\nper seed:\n")
    print("| rule | seed | " + " | ".join(languages) + " |")
    print("|" + "---|" * (len(languages) + 2))
    for rule in rules:
        for seed, row in f1[rule].iterrows():
            print(f"| {rule} | {seed} | " + " | ".join(f"{row[lang]:.1f}" for lang in languages)
                  + " |")
    times = cell_times(run_dir)
    print(f"\n{len(times)} cells, {times['seconds'].sum():.0f} s of cell time "
          f"(mean {times['seconds'].mean():.0f} s per cell)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
