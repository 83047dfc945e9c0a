"""Chance levels: the score a guess without a model gets. The one place that computes them;
the target cells (`notebooks/target.ipynb`), the shortcut baselines, the dual-encoder format's
`chance` hook and the analysis report (`xtl.analysis.sections.chance_levels`) all call it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from xtl.core.errors import DataError

F1_BAR = 30.0  # F1 has no chance level; the demo's bar (0.3) on the 0-100 scale


def random_ranking(pool: int) -> float:
    """Expected top-1 accuracy (0-100) of a random ranking of `pool` candidates."""
    return 100.0 / pool if pool > 0 else float("nan")


def map_at_k(candidates: int, relevant: int, k: int = 20) -> float:
    """Expected mAP@k (0-100) of a uniformly random ranking of `candidates` items of which
    `relevant` are relevant: E[rel_i * hits_i / i] = (R/N) (1 + (i-1)(R-1)/(N-1)) / i."""
    if not 1 <= relevant <= candidates:
        raise DataError(f"chance mAP: need 1 <= relevant ({relevant}) <= candidates ({candidates})")
    n, r = candidates, relevant
    other = (r - 1) / (n - 1) if n > 1 else 0.0
    total = sum((r / n) * (1 + (i - 1) * other) / i for i in range(1, min(k, n) + 1))
    return 100.0 * total / min(r, k)


def level(task: Any, metric: str, n: Any,
          on_rows: Sequence[float | None] = ()) -> tuple[float, str, str]:
    """(level, kind, note) of `metric` on a split of `task` (an `xtl.data.tasks.Task`; None when
    unknown) with `n` scored items: retrieval top-1 accuracy a random ranking's of a pool of
    `n` (kind "pool"), classification and multiple choice 1 / labels or choices ("chance");
    F1 has none, so the bar F1 30 ("bar"). `on_rows`: the format's own levels on the scored
    splits, for a metric whose level depends on the rows (the `chance` hook: a random
    ranking's mAP@20); their mean when every split has one ("ranking"). Else NaN."""
    if task is not None and metric == "accuracy" and task.format == "retrieval":
        pool = int(n) if n == n and n else 0  # NaN or 0: unknown
        if pool:
            return random_ranking(pool), "pool", f"1/{pool} (pool of {pool} sentences)"
    elif task is not None and metric == "accuracy" and task.label_names:
        k = len(task.label_names)
        what = "choices" if task.format == "multiple_choice" else "labels"
        return 100 / k, "chance", f"1/{k} ({k} {what})"
    elif metric == "f1":
        return F1_BAR, "bar", f"F1 has no chance level; bar {F1_BAR:g} ({F1_BAR / 100:g})"
    elif on_rows and None not in on_rows:
        mean = sum(on_rows) / len(on_rows)  # type: ignore[arg-type]
        return mean, "ranking", f"{metric} of a random ranking of each query's candidates"
    return math.nan, "", "no chance level known"
