"""`xtl plan --check`: every gap between a plan and the data it reads, listed in one pass.

The preflight of `xtl run` stops at the first missing file; before GPU time a researcher wants
the whole list (each missing mirror config, raw directory, Hub split), then one verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xtl.core import hub
from xtl.core.errors import XtlError
from xtl.data import sources
from xtl.data.tasks import Task, get
from xtl.grid.config import Experiment
from xtl.grid.plan import Plan, needed_splits


@dataclass
class CheckResult:
    """What `--check` found: one line per gap, and how many splits it looked at, by source."""

    gaps: list[str] = field(default_factory=list)
    counted: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.gaps

    def summary(self) -> str:
        checked = sum(self.counted.values())
        where = ", ".join(f"{n} {src}" for src, n in sorted(self.counted.items()))
        if self.ok:
            return f"check: OK: all {checked} splits the plan reads are available ({where})"
        return (f"check: NOT OK: {len(self.gaps)} problem(s) above, in {checked} splits the plan "
                f"reads; fix them before `xtl run`")

    def report(self) -> str:
        lines = [f"  - {gap}" for gap in self.gaps]
        return "\n".join([*lines, self.summary()])


def _leaf_sources(task: Task, split: str, language: str) -> list[tuple[Task, str]]:
    """The (task, split) pairs a split really reads: a combined task's members, each with the
    split it asks of them (as `sources.load` does)."""
    if task.combine:
        return [leaf for name in task.combine
                for leaf in _leaf_sources(get(name), task.source_split(split), language)]
    return [(task, split)]


def _kind(task: Task, language: str, mirror: Path | None) -> str:
    if task.generator is not None:
        return "generated"
    if task.from_raw(language):
        return "bundled" if task.bundled else "raw"
    return "mirror" if mirror is not None else "hub"


def run_check(plan: Plan, exp: Experiment) -> CheckResult:
    """Every gap, never stopping at the first; the Hub is asked only when no mirror is set."""
    result = CheckResult()
    mirror = Path(plan.mirror) if plan.mirror else None
    raw = Path(plan.raw_dir) if plan.raw_dir else None
    hub_needs: dict[tuple[str, str | None], list[str]] = {}
    for task, split, lang in needed_splits(plan, exp):
        for leaf, leaf_split in _leaf_sources(task, split, lang):
            kind = _kind(leaf, lang, mirror)
            result.counted[kind] = result.counted.get(kind, 0) + 1
            if kind == "hub":
                key = (leaf.hub_id, leaf.hub_config(lang) or None)
                hub_needs.setdefault(key, []).append(leaf.source_split(leaf_split))
                continue
            try:
                sources.check_available(leaf, leaf_split, lang, mirror, raw)
            except XtlError as err:
                result.gaps.append(f"{leaf.name}/{lang}/{split}: {err}")
    if hub_needs:
        _check_hub(hub_needs, result)
    return result


def require_hub(plan: Plan, exp: Experiment) -> None:
    """Before `xtl run` starts a cell: refuse at once when splits must come from a Hub that is
    not usable here (each cell would otherwise spend 20-40 s in retries, then fail)."""
    if plan.mirror:
        return
    needs = [(f"{leaf.name}/{lang}/{split}", leaf.hub_id)  # as the user's plan names it
             for task, split, lang in needed_splits(plan, exp)
             for leaf, _ in _leaf_sources(task, split, lang) if _kind(leaf, lang, None) == "hub"]
    if needs:
        hub.require_datasets(needs)


def _check_hub(needs: dict[tuple[str, str | None], list[str]], result: CheckResult) -> None:
    why = hub.unavailable()
    if why is not None:
        names = [f"{repo} ({config or 'default'})" for repo, config in needs]
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        result.gaps.append(f"no mirror is set and the Hugging Face Hub is not usable here "
                           f"({why}); {len(names)} Hub dataset config(s) cannot be checked or "
                           f"read: {shown}. {hub.dataset_advice(sorted({r for r, _ in needs}))}")
        return
    import datasets

    for (repo, config), splits in needs.items():
        try:
            have = datasets.get_dataset_split_names(repo, config)
        except Exception as err:  # any Hub answer is a gap to report, not a crash
            result.gaps.append(f"{repo!r} config {config!r}: cannot list its splits on the Hub "
                               f"({type(err).__name__}: {err})")
            continue
        for split in sorted(set(splits) - set(have)):
            result.gaps.append(f"{repo!r} config {config!r} has no split {split!r} "
                               f"(it has {have})")
