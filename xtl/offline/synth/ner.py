"""Synthetic parallel NER in the PAN-X schema of google/xtreme (``PAN-X.<lang>``, IOB2 tags),
with an OPEN vocabulary: no evaluation entity is ever seen in training.

Each row is a language-independent meaning (a template plus the persons, organisations and
locations filling it), rendered by a small per-language grammar. Every name is GENERATED from
syllables (consonant + a, i or u, optionally + n: "Kalu", "Tamiran") and each name belongs to
one part of the meaning space by a hash of its spelling (common.PARTS), so the names of the
validation and test rows never occur in any training row, in any language: memorising the
English training tags (`xtl.evaluation.shortcuts.lookup_tags`) finds no evaluation entity, and a
model must tag names from their context and shape. A name is spelled syllable by syllable in each
script: Latin in en/de/es/fr, Cyrillic (ru), Arabic (ar, long vowels written), Devanagari (hi,
vowel signs), and one Chinese character per syllable (zh), as transliterated foreign names
are; every spelling is uniquely decodable, so names of different parts never look the same.

Persons are a given name and a surname (sometimes two given names: three tokens; zh joins
them with "·"); organisations are a name and a kind (bank, university, group: "Kalu Bank",
"Universidad de Kalu", "卡鲁银行"); locations are cities and countries, some of two names.
Russian names the kind outside the entity ("в банке Калу") so that the name keeps its
nominative. Tokens are split on whitespace with punctuation its own token. Chinese is one
token per character, names included, as in PAN-X.zh: every character is a "word", which
makes zh the hardest language for a model trained on English, as it is on real PAN-X.
Row ``i`` is the same meaning in every language.

Phrases are written with the entity in brackets: "bei der [Kalu Bank]" is two O tokens and a
two-token ORG.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import datasets

from xtl.offline.synth import common, nli
from xtl.offline.synth.common import check_args, part_of, part_of_split, part_rng

LANGUAGES: tuple[str, ...] = nli.LANGUAGES
SPLITS: tuple[str, ...] = common.SPLITS
TAGS: tuple[str, ...] = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
ENTITY_TYPES: tuple[str, ...] = ("PER", "ORG", "LOC")

FEATURES = datasets.Features(
    {
        "tokens": datasets.Sequence(datasets.Value("string")),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=list(TAGS))),
        "langs": datasets.Sequence(datasets.Value("string")),
    }
)

_LATIN = ("en", "de", "es", "fr")

# ----------------------------------------------------------------------------------------------
# Names: syllables and their spelling per script
# ----------------------------------------------------------------------------------------------

CONSONANTS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "r", "s", "t", "z")
VOWELS = ("a", "i", "u")
CODA = "n"
# consonant -> (Cyrillic, Arabic, Devanagari); vowels and the coda below
_CONSONANT_SPELLING = {
    "b": ("б", "ب", "ब"), "d": ("д", "د", "द"), "f": ("ф", "ف", "फ़"), "g": ("г", "غ", "ग"),
    "h": ("х", "ه", "ह"), "k": ("к", "ك", "क"), "l": ("л", "ل", "ल"), "m": ("м", "م", "म"),
    "n": ("н", "ن", "न"), "r": ("р", "ر", "र"), "s": ("с", "س", "स"), "t": ("т", "ت", "त"),
    "z": ("з", "ز", "ज़"),
}
_VOWEL_SPELLING = {"a": ("а", "ا", "ा"), "i": ("и", "ي", "ी"), "u": ("у", "و", "ू")}
_CODA_SPELLING = ("н", "ن", "ं")  # Devanagari: anusvara
# One character per syllable, as Chinese transliterates foreign names (all distinct).
_HAN = {
    "ba": "巴", "bi": "比", "bu": "布", "ban": "班", "bin": "宾", "bun": "本",
    "da": "达", "di": "迪", "du": "杜", "dan": "丹", "din": "丁", "dun": "敦",
    "fa": "法", "fi": "菲", "fu": "富", "fan": "凡", "fin": "芬", "fun": "丰",
    "ga": "加", "gi": "吉", "gu": "古", "gan": "甘", "gin": "金", "gun": "衮",
    "ha": "哈", "hi": "希", "hu": "胡", "han": "汉", "hin": "欣", "hun": "洪",
    "ka": "卡", "ki": "基", "ku": "库", "kan": "坎", "kin": "钦", "kun": "昆",
    "la": "拉", "li": "利", "lu": "鲁", "lan": "兰", "lin": "林", "lun": "伦",
    "ma": "马", "mi": "米", "mu": "穆", "man": "曼", "min": "明", "mun": "蒙",
    "na": "纳", "ni": "尼", "nu": "努", "nan": "南", "nin": "宁", "nun": "农",
    "ra": "热", "ri": "里", "ru": "如", "ran": "冉", "rin": "仁", "run": "润",
    "sa": "萨", "si": "西", "su": "苏", "san": "桑", "sin": "辛", "sun": "孙",
    "ta": "塔", "ti": "提", "tu": "图", "tan": "坦", "tin": "廷", "tun": "屯",
    "za": "扎", "zi": "兹", "zu": "祖", "zan": "赞", "zin": "津", "zun": "尊",
}
_SCRIPT_COLUMN = {"ru": 0, "ar": 1, "hi": 2}
CODA_P = 0.25  # a syllable ends in n
THREE_SYLLABLES_P = 0.4

Name = tuple[str, ...]  # syllables, e.g. ("ka", "lun")


def spell(name: Name, language: str) -> str:
    """A generated name in ``language``'s script (capitalised where the script has case)."""
    if language == "zh":
        return "".join(_HAN[s] for s in name)
    if language in _LATIN:
        text = "".join(name)
        return text[:1].upper() + text[1:]
    col = _SCRIPT_COLUMN[language]
    out = []
    for syl in name:
        out.append(_CONSONANT_SPELLING[syl[0]][col] + _VOWEL_SPELLING[syl[1]][col])
        if len(syl) == 3:
            out.append(_CODA_SPELLING[col])
    text = "".join(out)
    return text[:1].upper() + text[1:]


def name_part(name: Name) -> str:
    """The part (common.PARTS) a generated name belongs to."""
    return part_of("ner-name|" + "-".join(name))


def _sample_name(rng: random.Random, part: str) -> Name:
    while True:
        k = 3 if rng.random() < THREE_SYLLABLES_P else 2
        name = tuple(rng.choice(CONSONANTS) + rng.choice(VOWELS)
                     + (CODA if rng.random() < CODA_P else "") for _ in range(k))
        if name_part(name) == part:
            return name


def gender(name: Name) -> str:
    """Given names ending in -a are female, the others male."""
    return "f" if name[-1].endswith("a") else "m"


# ----------------------------------------------------------------------------------------------
# Entities and how each language phrases them (the entity in brackets)
# ----------------------------------------------------------------------------------------------

ORG_KINDS: tuple[str, ...] = ("bank", "university", "group")
# kind -> language -> (nominative, "at") phrase, "{}" the name; zh/ar/hi: the entity alone
_ORG_PHRASES: dict[str, dict[str, object]] = {
    "bank": {"en": ("[{} Bank]", "at [{} Bank]"), "de": ("die [{} Bank]", "bei der [{} Bank]"),
             "es": ("el [Banco {}]", "en el [Banco {}]"),
             "fr": ("la [Banque {}]", "à la [Banque {}]"),
             "ru": ("банк [{}]", "в банке [{}]"), "zh": "{}银行", "ar": "بنك {}",
             "hi": "{} बैंक"},
    "university": {"en": ("[{} University]", "at [{} University]"),
                   "de": ("die [Universität {}]", "an der [Universität {}]"),
                   "es": ("la [Universidad de {}]", "en la [Universidad de {}]"),
                   "fr": ("l' [Université de {}]", "à l' [Université de {}]"),
                   "ru": ("университет [{}]", "в университете [{}]"), "zh": "{}大学",
                   "ar": "جامعة {}", "hi": "{} विश्वविद्यालय"},
    "group": {"en": ("the [{} Group]", "at the [{} Group]"),
              "de": ("die [{} Gruppe]", "bei der [{} Gruppe]"),
              "es": ("el [Grupo {}]", "en el [Grupo {}]"),
              "fr": ("le [Groupe {}]", "au [Groupe {}]"),
              "ru": ("группа [{}]", "в группе [{}]"), "zh": "{}集团", "ar": "مجموعة {}",
              "hi": "{} समूह"},
}
# "in <place>": the name at "{}"; Russian keeps the name in the nominative after a noun
_CITY_IN = {"en": "in [{}]", "de": "in [{}]", "es": "en [{}]", "fr": "à [{}]",
            "ru": "в городе [{}]", "zh": "在[{}]", "ar": "في [{}]", "hi": "[{}] में"}
_COUNTRY_IN = {**_CITY_IN, "fr": "en [{}]", "ru": "в стране [{}]"}
TWO_NAME_PLACE_P = 0.2  # "Kalu Tamira": a two-word place (zh: two two-syllable names, joined)
SECOND_GIVEN_P = 0.2


@dataclass(frozen=True)
class Person:
    given: tuple[Name, ...]  # one or two given names, of one gender
    surname: Name

    @property
    def gender(self) -> str:
        return gender(self.given[0])


@dataclass(frozen=True)
class Organisation:
    name: Name
    kind: str  # one of ORG_KINDS


@dataclass(frozen=True)
class Place:
    names: tuple[Name, ...]  # one name, or two (a two-word place)


Entity = Person | Organisation | Place


def person_name(person: Person, language: str) -> str:
    """The person's full name in ``language`` (Chinese joins foreign names with "·")."""
    parts = [spell(g, language) for g in person.given] + [spell(person.surname, language)]
    return ("·" if language == "zh" else " ").join(parts)


def _place_name(place: Place, language: str) -> str:
    return ("" if language == "zh" else " ").join(spell(n, language) for n in place.names)


def _organisation(org: Organisation, language: str, at: bool) -> str:
    entry = _ORG_PHRASES[org.kind][language]
    name = spell(org.name, language)
    if isinstance(entry, tuple):
        return entry[at].format(name)
    return _CITY_IN[language].format(entry.format(name)) if at else f"[{entry.format(name)}]"


# ----------------------------------------------------------------------------------------------
# Templates. Slots: PER, PER2 (persons), ORG, ORG2 (nominative), ORG_AT ("at" phrase), CITY
# (nominative), CITY_IN, LOC_IN (a city or a country), COUNTRY_IN, COUNTRY (plain name, zh/
# hi), YEAR (not an entity). "<m|f>" picks the form agreeing with the subject: f when every
# person in it is female.
# ----------------------------------------------------------------------------------------------

TEMPLATES: dict[str, dict[str, str]] = {
    "lives": {
        "en": "{PER} lives {LOC_IN} .",
        "de": "{PER} wohnt {LOC_IN} .",
        "es": "{PER} vive {LOC_IN} .",
        "fr": "{PER} habite {LOC_IN} .",
        "ru": "{PER} живёт {LOC_IN} .",
        "zh": "{PER}住{LOC_IN}。",
        "ar": "{PER} <يعيش|تعيش> {LOC_IN} .",
        "hi": "{PER} {LOC_IN} <रहता|रहती> है ।",
    },
    "works_in_city": {
        "en": "{PER} works {ORG_AT} {CITY_IN} .",
        "de": "{PER} arbeitet {ORG_AT} {CITY_IN} .",
        "es": "{PER} trabaja {ORG_AT} {CITY_IN} .",
        "fr": "{PER} travaille {ORG_AT} {CITY_IN} .",
        "ru": "{PER} работает {ORG_AT} {CITY_IN} .",
        "zh": "{PER}{CITY_IN}的{ORG}工作。",
        "ar": "{PER} <يعمل|تعمل> {ORG_AT} {CITY_IN} .",
        "hi": "{PER} {CITY} स्थित {ORG_AT} काम <करता|करती> है ।",
    },
    "city_in_country": {
        "en": "{CITY} is a city {COUNTRY_IN} .",
        "de": "{CITY} ist eine Stadt {COUNTRY_IN} .",
        "es": "{CITY} es una ciudad {COUNTRY_IN} .",
        "fr": "{CITY} est une ville {COUNTRY_IN} .",
        "ru": "{CITY} — город {COUNTRY_IN} .",
        "zh": "{CITY}是{COUNTRY}的一座城市。",
        "ar": "{CITY} مدينة {COUNTRY_IN} .",
        "hi": "{CITY} {COUNTRY} का एक शहर है ।",
    },
    "org_office": {
        "en": "{ORG} has an office {CITY_IN} .",
        "de": "{ORG} hat ein Büro {CITY_IN} .",
        "es": "{ORG} tiene una oficina {CITY_IN} .",
        "fr": "{ORG} a un bureau {CITY_IN} .",
        "ru": "{ORG} имеет офис {CITY_IN} .",
        "zh": "{ORG}{CITY_IN}有一个办事处。",
        "ar": "لدى {ORG} مكتب {CITY_IN} .",
        "hi": "{ORG} का {CITY_IN} एक दफ़्तर है ।",
    },
    "two_live": {
        "en": "{PER} and {PER2} live {LOC_IN} .",
        "de": "{PER} und {PER2} wohnen {LOC_IN} .",
        "es": "{PER} y {PER2} viven {LOC_IN} .",
        "fr": "{PER} et {PER2} habitent {LOC_IN} .",
        "ru": "{PER} и {PER2} живут {LOC_IN} .",
        "zh": "{PER}和{PER2}住{LOC_IN}。",
        "ar": "{PER} و {PER2} <يعيشان|تعيشان> {LOC_IN} .",
        "hi": "{PER} और {PER2} {LOC_IN} <रहते|रहती> हैं ।",
    },
    "works_at": {
        "en": "{PER} works {ORG_AT} .",
        "de": "{PER} arbeitet {ORG_AT} .",
        "es": "{PER} trabaja {ORG_AT} .",
        "fr": "{PER} travaille {ORG_AT} .",
        "ru": "{PER} работает {ORG_AT} .",
        "zh": "{PER}在{ORG}工作。",
        "ar": "{PER} <يعمل|تعمل> {ORG_AT} .",
        "hi": "{PER} {ORG_AT} काम <करता|करती> है ।",
    },
    "orgs_together": {
        "en": "{ORG} and {ORG2} work together .",
        "de": "{ORG} und {ORG2} arbeiten zusammen .",
        "es": "{ORG} y {ORG2} trabajan juntos .",
        "fr": "{ORG} et {ORG2} travaillent ensemble .",
        "ru": "{ORG} и {ORG2} сотрудничают .",
        "zh": "{ORG}和{ORG2}正在合作。",
        "ar": "هناك تعاون بين {ORG} و {ORG2} .",
        "hi": "{ORG} और {ORG2} मिलकर काम करते हैं ।",
    },
    "office_since": {
        "en": "{ORG} has had an office {CITY_IN} since {YEAR} .",
        "de": "{ORG} hat seit {YEAR} ein Büro {CITY_IN} .",
        "es": "{ORG} tiene una oficina {CITY_IN} desde {YEAR} .",
        "fr": "{ORG} a un bureau {CITY_IN} depuis {YEAR} .",
        "ru": "{ORG} имеет офис {CITY_IN} с {YEAR} года .",
        "zh": "{ORG}自{YEAR}年起{CITY_IN}设有办事处。",
        "ar": "لدى {ORG} مكتب {CITY_IN} منذ عام {YEAR} .",
        "hi": "{YEAR} से {ORG} का {CITY_IN} एक दफ़्तर है ।",
    },
    "together_since": {
        "en": "{ORG} and {ORG2} have worked together since {YEAR} .",
        "de": "{ORG} und {ORG2} arbeiten seit {YEAR} zusammen .",
        "es": "{ORG} y {ORG2} trabajan juntos desde {YEAR} .",
        "fr": "{ORG} et {ORG2} travaillent ensemble depuis {YEAR} .",
        "ru": "{ORG} и {ORG2} сотрудничают с {YEAR} года .",
        "zh": "{ORG}和{ORG2}自{YEAR}年起开始合作。",
        "ar": "هناك تعاون بين {ORG} و {ORG2} منذ عام {YEAR} .",
        "hi": "{ORG} और {ORG2} {YEAR} से मिलकर काम कर रहे हैं ।",
    },
    "born": {
        "en": "{PER} was born {CITY_IN} .",
        "de": "{PER} wurde {CITY_IN} geboren .",
        "es": "{PER} nació {CITY_IN} .",
        "fr": "{PER} est <né|née> {CITY_IN} .",
        "ru": "{PER} <родился|родилась> {CITY_IN} .",
        "zh": "{PER}出生{CITY_IN}。",
        "ar": "<ولد|ولدت> {PER} {CITY_IN} .",
        "hi": "{PER} का जन्म {CITY_IN} हुआ था ।",
    },
}

# Sampling weights: about as many PER, ORG and LOC mentions; a year (an O token, as in PAN-X)
# widens the organisation-only templates.
TEMPLATE_WEIGHTS = {"lives": 3, "works_in_city": 4, "city_in_country": 2, "org_office": 2,
                    "two_live": 3, "works_at": 4, "orgs_together": 1, "office_since": 2,
                    "together_since": 2, "born": 3}

# A slot names an entity variable in some form ("ORG_AT" is ORG after "at"); the meaning is
# the variables' values, which every language's template of a template name must share.
_VARIABLE = {"ORG_AT": "ORG", "CITY_IN": "CITY", "LOC_IN": "LOC", "COUNTRY_IN": "COUNTRY"}
_ORDER = ("PER", "PER2", "ORG", "ORG2", "CITY", "COUNTRY", "LOC", "YEAR")
_TYPE = {"PER": "PER", "PER2": "PER", "ORG": "ORG", "ORG2": "ORG", "CITY": "LOC",
         "COUNTRY": "LOC", "LOC": "LOC", "YEAR": None}
_TEMPLATE_NAMES = tuple(TEMPLATES)
_WEIGHTS = tuple(TEMPLATE_WEIGHTS[t] for t in _TEMPLATE_NAMES)
COUNTRY_LOC_P = 0.4  # "lives in" a country rather than a city


@functools.cache
def _variables(template: str) -> tuple[str, ...]:
    slots = set(re.findall(r"\{(\w+)\}", "".join(TEMPLATES[template].values())))
    found = {_VARIABLE.get(slot, slot) for slot in slots}
    return tuple(v for v in _ORDER if v in found)


@dataclass(frozen=True)
class Sentence:
    """One meaning: a template name and its variables' values (entities, or a year)."""

    template: str
    values: tuple[tuple[str, Entity | str], ...]
    # LOC is a country (phrased as one) rather than a city
    country: bool = False

    def key(self) -> str:
        return f"{self.template}|{self.values}|{self.country}"

    def names(self) -> list[Name]:
        """Every generated name of the sentence's entities."""
        out: list[Name] = []
        for _, v in self.values:
            if isinstance(v, Person):
                out += [*v.given, v.surname]
            elif isinstance(v, Organisation):
                out.append(v.name)
            elif isinstance(v, Place):
                out += list(v.names)
        return out


# ----------------------------------------------------------------------------------------------
# Sampling (language independent)
# ----------------------------------------------------------------------------------------------


def _sample_person(rng: random.Random, part: str, avoid: Sequence[Name]) -> Person:
    first = _sample_name(rng, part)
    given: tuple[Name, ...] = (first,)
    if rng.random() < SECOND_GIVEN_P:  # a second given name of the same gender
        second = _sample_name(rng, part)
        while gender(second) != gender(first) or second == first:
            second = _sample_name(rng, part)
        given += (second,)
    surname = _sample_name(rng, part)
    while surname in avoid or surname in given:
        surname = _sample_name(rng, part)
    return Person(given, surname)


def _sample_place(rng: random.Random, part: str) -> Place:
    if rng.random() < TWO_NAME_PLACE_P:  # two two-syllable names (see _place_name for zh)
        names = []
        while len(names) < 2:
            name = _sample_name(rng, part)
            if len(name) == 2 and name not in names:
                names.append(name)
        return Place(tuple(names))
    return Place((_sample_name(rng, part),))


def _fill(variable: str, rng: random.Random, part: str, chosen: dict) -> Entity | str:
    if variable in ("PER", "PER2"):
        avoid = [p.surname for p in chosen.values() if isinstance(p, Person)]
        return _sample_person(rng, part, avoid)
    if variable in ("ORG", "ORG2"):
        org = Organisation(_sample_name(rng, part), rng.choice(ORG_KINDS))
        while variable == "ORG2" and org.name == chosen["ORG"].name:
            org = Organisation(_sample_name(rng, part), rng.choice(ORG_KINDS))
        return org
    if variable == "YEAR":
        return str(rng.randint(1950, 2019))
    return _sample_place(rng, part)  # CITY, COUNTRY, LOC


def _sample_sentence(rng: random.Random, part: str) -> Sentence:
    while True:  # a name occurs once in a sentence (a person is not the city they live in)
        template = rng.choices(_TEMPLATE_NAMES, weights=_WEIGHTS)[0]
        chosen: dict[str, Entity | str] = {}
        for variable in _variables(template):
            chosen[variable] = _fill(variable, rng, part, chosen)
        country = "LOC" in chosen and rng.random() < COUNTRY_LOC_P
        sentence = Sentence(template, tuple(chosen.items()), country)
        names = sentence.names()
        if len(set(names)) == len(names):
            return sentence


def sample_sentences(split: str, n: int, seed: int = 0, train_part: str = "stage"
                     ) -> list[Sentence]:
    """The language-independent meanings behind :func:`generate`: every name in them belongs
    to the split's part."""
    check_args("en", split, n, LANGUAGES, train_part)
    part = part_of_split(split, train_part)
    rng = part_rng("ner", part, seed)
    return [_sample_sentence(rng, part) for _ in range(n)]


# ----------------------------------------------------------------------------------------------
# Rendering: phrases in bracket notation, then tokens and IOB2 tags
# ----------------------------------------------------------------------------------------------


def _phrase(slot: str, value: Entity | str, language: str, country: bool = False) -> str:
    variable = _VARIABLE.get(slot, slot)
    if variable == "YEAR":
        return str(value)  # digits, not an entity
    if isinstance(value, Person):
        return f"[{person_name(value, language)}]"
    if isinstance(value, Organisation):
        return _organisation(value, language, at=slot == "ORG_AT")
    name = _place_name(value, language)
    if slot in ("CITY", "COUNTRY"):
        return f"[{name}]"
    as_country = slot == "COUNTRY_IN" or (slot == "LOC_IN" and country)
    return (_COUNTRY_IN if as_country else _CITY_IN)[language].format(name)


def _segments(sentence: Sentence, language: str) -> list[tuple[str, str | None]]:
    """The sentence as (text, entity type or None) pieces."""
    values = dict(sentence.values)
    persons = [v for v in values.values() if isinstance(v, Person)]
    female = bool(persons) and all(p.gender == "f" for p in persons)
    text = re.sub(r"<([^|>]*)\|([^>]*)>", r"\2" if female else r"\1",
                  TEMPLATES[sentence.template][language])
    pieces: list[tuple[str, str | None]] = []
    for i, part in enumerate(re.split(r"\{(\w+)\}", text)):
        if i % 2 == 0:
            pieces.append((part, None))
            continue
        variable = _VARIABLE.get(part, part)
        phrase = _phrase(part, values[variable], language, sentence.country)
        for j, sub in enumerate(re.split(r"\[([^\]]+)\]", phrase)):
            pieces.append((sub, _TYPE[variable] if j % 2 else None))
    return pieces


def _tokens(text: str, language: str) -> list[str]:
    """Whitespace tokens; Chinese: one per character (module docstring)."""
    if language != "zh":
        return text.split()
    return [c for c in text if not c.isspace()]


def _spanish_y(tokens: list[str]) -> None:
    # "y" becomes "e" before an /i/ sound: "Kalu e Hila".
    for i, tok in enumerate(tokens[:-1]):
        nxt = tokens[i + 1].lower()
        if tok == "y" and nxt.startswith(("i", "hi")) and not nxt.startswith("hie"):
            tokens[i] = "e"


def render(sentence: Sentence, language: str) -> tuple[list[str], list[int]]:
    """(tokens, IOB2 tag ids) of one meaning in ``language``."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; valid: {', '.join(LANGUAGES)}")
    tokens: list[str] = []
    tags: list[int] = []
    for text, etype in _segments(sentence, language):
        toks = _tokens(text, language)
        tokens += toks
        if etype is None:
            tags += [0] * len(toks)
        else:
            tags += [TAGS.index(f"B-{etype}")] + [TAGS.index(f"I-{etype}")] * (len(toks) - 1)
    tokens[0] = tokens[0][:1].upper() + tokens[0][1:]
    if language == "es":
        _spanish_y(tokens)
    return tokens, tags


def generate(language: str, split: str, n: int, seed: int = 0, train_part: str = "stage"
             ) -> list[dict]:
    """Return ``n`` PAN-X rows ``{"tokens", "ner_tags", "langs"}`` for one language and split.

    Row ``i`` is the same meaning (template and entities) in every language; ``train_part``
    picks what ``train`` means (common.PARTS): an intermediate stage's rows or a target's.
    """
    check_args(language, split, n, LANGUAGES, train_part)
    rows = []
    for sentence in sample_sentences(split, n, seed, train_part):
        tokens, tags = render(sentence, language)
        rows.append({"tokens": tokens, "ner_tags": tags, "langs": [language] * len(tokens)})
    return rows


def to_dataset(rows: Sequence[dict]) -> datasets.Dataset:
    """Wrap rows from :func:`generate` as a ``datasets.Dataset`` with the PAN-X features."""
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    return datasets.Dataset.from_dict(columns, features=FEATURES)
