"""Every language a registered task uses has a name, a script and a resource tier."""

from __future__ import annotations

import re

from xtl.data import languages, tasks
from xtl.evaluation import aggregate


def test_every_registered_task_language_has_an_entry():
    used = {lang: name for name, task in tasks.REGISTRY.items() for lang in task.languages}
    missing = sorted(set(used) - set(languages.LANGUAGES))
    assert not missing, (f"no entry in xtl/data/languages.py for {missing} "
                         f"(task {used[missing[0]]!r})")


def test_every_xtreme_and_xtreme_r_language_has_an_entry():
    official = {lang for bench in aggregate.LANGUAGES.values() for langs in bench.values()
                for lang in langs}
    assert official <= set(languages.LANGUAGES)


def test_entries_are_well_formed():
    for code, lang in languages.LANGUAGES.items():
        assert lang.code == code and re.fullmatch(r"[a-z]{2,3}", code)
        assert re.fullmatch(r"[A-Z][a-z]{3}", lang.script), code  # ISO 15924
        if code == "mul":  # several languages: no tier
            assert (lang.tier, lang.group) == (None, None)
            continue
        assert lang.tier in range(6)
    assert set(languages.FILLED_TIERS) <= set(languages.LANGUAGES)


def test_known_values_and_groups():
    info = languages.LANGUAGES
    assert info["en"].tier == 5 and info["en"].group == "high"
    assert (info["sw"].name, info["sw"].group) == ("Swahili", "low")
    assert info["hi"].script == "Deva" and info["th"].group == "mid"
    assert info["zh"].script == "Hani" and info["ja"].script == "Jpan"
