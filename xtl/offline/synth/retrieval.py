"""Synthetic parallel sentence retrieval in the Tatoeba schema (google/xtreme ``tatoeba.<iso3>``).

Each row pairs a sentence in ``language`` with its English translation, both rendered from one
:class:`xtl.offline.synth.nli.Frame` by nli's grammars and ending in ``"\\n"`` as the real loader
keeps them. A split holds many near neighbours (sentences that differ in one animal, colour, place,
manner or companion), so retrieval needs the meaning, not the topic: a multilingual encoder
finds the translation, a random one is near chance.

Every meaning belongs to one part of nli's meaning space (common.PARTS: ``validation`` and
``test`` are what every synthetic task evaluates on, never trained on), and a split never
repeats a meaning, so its English (and foreign) sentences are all distinct and no sentence
crosses splits. ``"en"`` is accepted and pairs English with itself (a sanity check: any encoder
scores 100%).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import replace

import datasets

from xtl.offline.synth import common, nli
from xtl.offline.synth.common import bucket, check_args, part_of_split, part_rng
from xtl.offline.synth.nli import ANIMALS, COLOURS, COMPANIONS, MANNERS, PLACES, VERBS, Frame

LANGUAGES: tuple[str, ...] = nli.LANGUAGES
SPLITS: tuple[str, ...] = common.SPLITS

# Tatoeba config codes (docs/data.md section 2): the source side's ISO 639-3 code, English is "eng".
ISO3 = {"en": "eng", "de": "deu", "es": "spa", "fr": "fra", "ru": "rus", "zh": "cmn",
        "ar": "ara", "hi": "hin"}
TARGET_LANG = "eng"

FEATURES = datasets.Features(
    {
        "source_sentence": datasets.Value("string"),
        "target_sentence": datasets.Value("string"),
        "source_lang": datasets.Value("string"),
        "target_lang": datasets.Value("string"),
    }
)

_FRONTED_PER_TEN = 3  # share of action sentences with a place rendered place-first


def _key(f: Frame) -> str:
    fields = ("form", "negated", "animal", "verb", "colour", "place", "manner", "companion")
    return "|".join(str(getattr(f, name)) for name in fields)


def _meanings() -> list[Frame]:
    """Every meaning once: actions with any optional slots, negated actions, locatives."""
    opt = (None,)
    frames = [
        Frame(animal=a, verb=v, colour=c, place=p, manner=m, companion=x)
        for a, v, c, p, m, x in itertools.product(
            ANIMALS, VERBS, opt + COLOURS, opt + PLACES, opt + MANNERS, opt + COMPANIONS
        )
    ]
    frames += [
        Frame(animal=a, verb=v, colour=c, place=p, negated=True)
        for a, v, c, p in itertools.product(ANIMALS, VERBS, opt + COLOURS, opt + PLACES)
    ]
    # A locative has no activity; nli's grammars ignore the verb there, so fix it.
    frames += [
        Frame(animal=a, verb=VERBS[0], colour=c, place=p, form="locative", negated=neg)
        for a, c, p, neg in itertools.product(ANIMALS, opt + COLOURS, PLACES, (False, True))
    ]
    return frames


def _with_word_order(f: Frame) -> Frame:
    # Word order is a property of the meaning's rendering, the same in every language.
    ok = f.form == "action" and not f.negated and f.place is not None
    return replace(f, fronted=ok and bucket("fronted|" + _key(f)) < _FRONTED_PER_TEN)


@functools.cache
def _pool(part: str) -> tuple[Frame, ...]:
    # nli's parts (common.PARTS): validation and test each hold about 1,460 meanings, enough
    # for Tatoeba's 1,000 rows per language
    return tuple(_with_word_order(f) for f in _meanings() if nli.part(f) == part)


def pool_size(split: str, train_part: str = "stage") -> int:
    """How many distinct meanings (so the largest ``n``) a split has."""
    check_args("en", split, 1, LANGUAGES, train_part)
    return len(_pool(part_of_split(split, train_part)))


def sample_frames(split: str, n: int, seed: int = 0, train_part: str = "stage") -> list[Frame]:
    """The language-independent meanings behind :func:`generate`, all distinct."""
    check_args("en", split, n, LANGUAGES, train_part)
    part = part_of_split(split, train_part)
    pool = _pool(part)
    if n > len(pool):
        raise ValueError(f"n={n} exceeds the {len(pool)} distinct meanings of split {split!r}")
    return part_rng("retrieval", part, seed).sample(pool, n)


def generate(language: str, split: str, n: int, seed: int = 0, train_part: str = "stage"
             ) -> list[dict]:
    """Return ``n`` rows ``{"source_sentence", "target_sentence", "source_lang", "target_lang"}``.

    ``source_sentence`` is in ``language``, ``target_sentence`` its English translation; row
    ``i`` is the same meaning in every language, and no meaning repeats within a split.
    """
    check_args(language, split, n, LANGUAGES, train_part)
    source_lang = ISO3[language]
    return [
        {
            "source_sentence": nli.render(f, language) + "\n",
            "target_sentence": nli.render(f, "en") + "\n",
            "source_lang": source_lang,
            "target_lang": TARGET_LANG,
        }
        for f in sample_frames(split, n, seed, train_part)
    ]


def to_dataset(rows: Sequence[dict]) -> datasets.Dataset:
    """Wrap rows from :func:`generate` as a ``datasets.Dataset`` with the Tatoeba features."""
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    return datasets.Dataset.from_dict(columns, features=FEATURES)
