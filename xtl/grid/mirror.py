"""`xtl data download`: fill a Hub-layout mirror with every split an experiment reads.

Run it on a machine with Hub access; copy the directory to the cluster; point `mirror` (or
`XTL_HUB_MIRROR`) at it. Files keep the Hub's layout and features (ClassLabel names included).
"""

from __future__ import annotations

from pathlib import Path

import datasets

from xtl.core import hub
from xtl.grid import config, plan


def download(exp_path: str | Path, dest: Path) -> list[Path]:
    """Write `<dest>/<owner>/<repo>/<config>/<split>-00000-of-00001.parquet` for each need."""
    exp = config.load(exp_path)
    exp.values["mirror"] = None  # read from the Hub, whatever the file says
    built = plan.build(exp)
    written = []
    for task, split, lang in plan.needed_splits(built, exp):
        if task.generator is not None or task.from_raw(lang):
            continue  # generated or raw-only: nothing on the Hub to mirror
        source_split = task.source_split(split)
        out = (Path(dest) / task.hub_id / (task.hub_config(lang) or "data")
               / f"{source_split}-00000-of-00001.parquet")
        if out.is_file():
            continue
        hub.require_datasets([(f"{task.name}/{lang}/{split}", task.hub_id)])
        rows = datasets.load_dataset(task.hub_id, task.hub_config(lang) or None,
                                     split=source_split)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        rows.to_parquet(str(tmp))
        tmp.rename(out)
        written.append(out)
        print(f"{task.hub_id}/{task.hub_config(lang) or 'data'}:{source_split} "
              f"{len(rows)} rows -> {out}")
    return written
