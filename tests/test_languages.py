"""Every language a registered task uses has a name, a script and a resource tier."""

from __future__ import annotations

import re

import pytest

from xtl.core.errors import ConfigError
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
            assert (lang.tier, languages.group(code)) == (None, "n/a")
            continue
        assert lang.tier in range(6) and lang.tier_name == languages.TIER_NAMES[lang.tier]
    assert set(languages.FILLED_TIERS) <= set(languages.LANGUAGES)


def test_known_values_and_groups():
    assert languages.info("en").tier == 5 and languages.group("en") == "high"
    assert (languages.info("sw").name, languages.group("sw")) == ("Swahili", "low")
    assert languages.info("hi").script == "Deva" and languages.group("th") == "mid"
    assert languages.info("zh").script == "Hani" and languages.info("ja").script == "Jpan"


def test_unknown_code_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"unknown language code .*'xx'"):
        languages.info("xx")
    with pytest.raises(ConfigError, match=r"did you mean 'en'"):
        languages.info("enn")
