"""Synthetic parallel NER in the PAN-X schema of google/xtreme (``PAN-X.<lang>``, IOB2 tags).

Each row is a language-independent meaning (a template plus the persons, organisations and
locations filling it), rendered by a small per-language grammar with the entities' names in
that language: Latin spelling in en/de/es/fr, transliterated into Cyrillic (ru), Chinese
characters (zh), Arabic (ar) and Devanagari (hi) script. Many names span several tokens
("Anna Maria Schmidt", "World Health Organization", "Rio de Janeiro"), so I- tags occur.

An entity's type is decidable from its context ("lives in", "works at", "is a city in") and
from the name lists alone, so a model trained on English transfers. Tokens are split on
whitespace with punctuation as its own token. Chinese text is one token per character, as in
PAN-X.zh (and unimelb-nlp/wikiann zh), except that each name is one token, as a word
segmenter keeps it: with every character a "word", an XLM-R tokenizer marks each one as a word
start, and a model trained on English tags every character B- (zero-shot F1 0 on this task
with e5-small; the real PAN-X.zh is the weakest language of XTREME's NER for the same reason).
Row ``i`` is the same meaning in every language; meanings are hashed into splits, so no
sentence crosses splits.

Phrases are written with the entity in brackets: "bei der [Deutschen Bank]" is two O tokens
and a two-token ORG.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import datasets

from xtl.synth import common, nli
from xtl.synth.common import check_args, split_of, split_rng

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
_SCRIPTED = ("ru", "zh", "ar", "hi")

# ----------------------------------------------------------------------------------------------
# Name lists. Persons: (gender, Latin, ru, zh, ar, hi); Latin spelling serves en/de/es/fr.
# ----------------------------------------------------------------------------------------------

GIVEN_NAMES: dict[str, tuple[str, ...]] = {
    "anna": ("f", "Anna", "Анна", "安娜", "آنا", "अन्ना"),
    "maria": ("f", "Maria", "Мария", "玛丽亚", "ماريا", "मारिया"),
    "elena": ("f", "Elena", "Елена", "埃莱娜", "إيلينا", "एलेना"),
    "sofia": ("f", "Sofia", "София", "索菲亚", "صوفيا", "सोफ़िया"),
    "fatima": ("f", "Fatima", "Фатима", "法蒂玛", "فاطمة", "फ़ातिमा"),
    "laura": ("f", "Laura", "Лаура", "劳拉", "لورا", "लॉरा"),
    "peter": ("m", "Peter", "Питер", "彼得", "بيتر", "पीटर"),
    "john": ("m", "John", "Джон", "约翰", "جون", "जॉन"),
    "ahmed": ("m", "Ahmed", "Ахмед", "艾哈迈德", "أحمد", "अहमद"),
    "ivan": ("m", "Ivan", "Иван", "伊万", "إيفان", "इवान"),
    "carlos": ("m", "Carlos", "Карлос", "卡洛斯", "كارلوس", "कार्लोस"),
    "david": ("m", "David", "Дэвид", "大卫", "ديفيد", "डेविड"),
    "raj": ("m", "Raj", "Радж", "拉吉", "راج", "राज"),
    "thomas": ("m", "Thomas", "Томас", "托马斯", "توماس", "थॉमस"),
}

# Surnames that Russian does not inflect for gender. (Latin, ru, zh, ar, hi)
SURNAMES: dict[str, tuple[str, ...]] = {
    "schmidt": ("Schmidt", "Шмидт", "施密特", "شميت", "श्मिट"),
    "mueller": ("Müller", "Мюллер", "穆勒", "مولر", "मुलर"),
    "garcia": ("García", "Гарсия", "加西亚", "غارسيا", "गार्सिया"),
    "martin": ("Martin", "Мартин", "马丁", "مارتن", "मार्टिन"),
    "khan": ("Khan", "Хан", "汗", "خان", "ख़ान"),
    "kumar": ("Kumar", "Кумар", "库马尔", "كومار", "कुमार"),
    "silva": ("Silva", "Силва", "席尔瓦", "سيلفا", "सिल्वा"),
    "rossi": ("Rossi", "Росси", "罗西", "روسي", "रॉसी"),
    "tanaka": ("Tanaka", "Танака", "田中", "تاناكا", "तनाका"),
    "novak": ("Novak", "Новак", "诺瓦克", "نوفاك", "नोवाक"),
    "weber": ("Weber", "Вебер", "韦伯", "فيبر", "वेबर"),
    "lopez": ("López", "Лопес", "洛佩斯", "لوبيز", "लोपेज़"),
}

# ----------------------------------------------------------------------------------------------
# Locations. Cities: (country, en, de, es, fr, ru nominative, ru locative, zh, ar, hi).
# ----------------------------------------------------------------------------------------------

CITIES: dict[str, tuple[str, ...]] = {
    "berlin": ("germany", "Berlin", "Berlin", "Berlín", "Berlin", "Берлин", "Берлине",
               "柏林", "برلين", "बर्लिन"),
    "hamburg": ("germany", "Hamburg", "Hamburg", "Hamburgo", "Hambourg", "Гамбург", "Гамбурге",
                "汉堡", "هامبورغ", "हैम्बर्ग"),
    "paris": ("france", "Paris", "Paris", "París", "Paris", "Париж", "Париже",
              "巴黎", "باريس", "पेरिस"),
    "london": ("uk", "London", "London", "Londres", "Londres", "Лондон", "Лондоне",
               "伦敦", "لندن", "लंदन"),
    "madrid": ("spain", "Madrid", "Madrid", "Madrid", "Madrid", "Мадрид", "Мадриде",
               "马德里", "مدريد", "मैड्रिड"),
    "barcelona": ("spain", "Barcelona", "Barcelona", "Barcelona", "Barcelone", "Барселона",
                  "Барселоне", "巴塞罗那", "برشلونة", "बार्सिलोना"),
    "moscow": ("russia", "Moscow", "Moskau", "Moscú", "Moscou", "Москва", "Москве",
               "莫斯科", "موسكو", "मॉस्को"),
    "st_petersburg": ("russia", "Saint Petersburg", "Sankt Petersburg", "San Petersburgo",
                      "Saint-Pétersbourg", "Санкт-Петербург", "Санкт-Петербурге",
                      "圣彼得堡", "سانت بطرسبرغ", "सेंट पीटर्सबर्ग"),
    "tokyo": ("japan", "Tokyo", "Tokio", "Tokio", "Tokyo", "Токио", "Токио",
              "东京", "طوكيو", "टोक्यो"),
    "cairo": ("egypt", "Cairo", "Kairo", "El Cairo", "Le Caire", "Каир", "Каире",
              "开罗", "القاهرة", "काहिरा"),
    "new_delhi": ("india", "New Delhi", "Neu-Delhi", "Nueva Delhi", "New Delhi", "Нью-Дели",
                  "Нью-Дели", "新德里", "نيودلهي", "नई दिल्ली"),
    "mumbai": ("india", "Mumbai", "Mumbai", "Bombay", "Bombay", "Мумбаи", "Мумбаи",
               "孟买", "مومباي", "मुंबई"),
    "new_york": ("usa", "New York", "New York", "Nueva York", "New York", "Нью-Йорк",
                 "Нью-Йорке", "纽约", "نيويورك", "न्यूयॉर्क"),
    "los_angeles": ("usa", "Los Angeles", "Los Angeles", "Los Ángeles", "Los Angeles",
                    "Лос-Анджелес", "Лос-Анджелесе", "洛杉矶", "لوس أنجلوس", "लॉस एंजेलिस"),
    "buenos_aires": ("argentina", "Buenos Aires", "Buenos Aires", "Buenos Aires",
                     "Buenos Aires", "Буэнос-Айрес", "Буэнос-Айресе",
                     "布宜诺斯艾利斯", "بوينس آيرس", "ब्यूनस आयर्स"),
    "rio": ("brazil", "Rio de Janeiro", "Rio de Janeiro", "Río de Janeiro", "Rio de Janeiro",
            "Рио-де-Жанейро", "Рио-де-Жанейро", "里约热内卢", "ريو دي جانيرو", "रियो डी जनेरियो"),
    "beijing": ("china", "Beijing", "Peking", "Pekín", "Pékin", "Пекин", "Пекине",
                "北京", "بكين", "बीजिंग"),
    "shanghai": ("china", "Shanghai", "Shanghai", "Shanghái", "Shanghai", "Шанхай", "Шанхае",
                 "上海", "شانغهاي", "शंघाई"),
}

# French "à" + "Le Caire" contracts to "au Caire": (nominative, locative) phrases.
_CITY_FR_OVERRIDES = {"cairo": ("[Le Caire]", "au [Caire]")}

# Countries appear only after "in": (en, de, es, fr, ru) phrases, then zh, ar, hi names.
COUNTRIES: dict[str, tuple[str, ...]] = {
    "germany": ("in [Germany]", "in [Deutschland]", "en [Alemania]", "en [Allemagne]",
                "в [Германии]", "德国", "ألمانيا", "जर्मनी"),
    "france": ("in [France]", "in [Frankreich]", "en [Francia]", "en [France]", "во [Франции]",
               "法国", "فرنسا", "फ़्रांस"),
    "uk": ("in the [United Kingdom]", "im [Vereinigten Königreich]", "en el [Reino Unido]",
           "au [Royaume-Uni]", "в [Великобритании]", "英国", "المملكة المتحدة", "यूनाइटेड किंगडम"),
    "spain": ("in [Spain]", "in [Spanien]", "en [España]", "en [Espagne]", "в [Испании]",
              "西班牙", "إسبانيا", "स्पेन"),
    "russia": ("in [Russia]", "in [Russland]", "en [Rusia]", "en [Russie]", "в [России]",
               "俄罗斯", "روسيا", "रूस"),
    "japan": ("in [Japan]", "in [Japan]", "en [Japón]", "au [Japon]", "в [Японии]",
              "日本", "اليابان", "जापान"),
    "egypt": ("in [Egypt]", "in [Ägypten]", "en [Egipto]", "en [Égypte]", "в [Египте]",
              "埃及", "مصر", "मिस्र"),
    "india": ("in [India]", "in [Indien]", "en [India]", "en [Inde]", "в [Индии]",
              "印度", "الهند", "भारत"),
    "usa": ("in the [United States]", "in den [Vereinigten Staaten]", "en [Estados Unidos]",
            "aux [États-Unis]", "в [Соединённых Штатах]", "美国", "الولايات المتحدة",
            "संयुक्त राज्य अमेरिका"),
    "argentina": ("in [Argentina]", "in [Argentinien]", "en [Argentina]", "en [Argentine]",
                  "в [Аргентине]", "阿根廷", "الأرجنتين", "अर्जेंटीना"),
    "brazil": ("in [Brazil]", "in [Brasilien]", "en [Brasil]", "au [Brésil]", "в [Бразилии]",
               "巴西", "البرازيل", "ब्राज़ील"),
    "china": ("in [China]", "in [China]", "en [China]", "en [Chine]", "в [Китае]",
              "中国", "الصين", "चीन"),
}

# ----------------------------------------------------------------------------------------------
# Organisations: (nominative, "at") phrases for en, de, es, fr, ru; plain names for zh, ar, hi.
# ----------------------------------------------------------------------------------------------


def _company(latin: str, ru: str, zh: str, ar: str, hi: str) -> dict[str, object]:
    # Russian names a foreign company with the common noun, which takes the case.
    return {
        "en": (f"[{latin}]", f"at [{latin}]"),
        "de": (f"[{latin}]", f"bei [{latin}]"),
        "es": (f"[{latin}]", f"en [{latin}]"),
        "fr": (f"[{latin}]", f"chez [{latin}]"),
        "ru": (f"компания [{ru}]", f"в компании [{ru}]"),
        "zh": zh,
        "ar": ar,
        "hi": hi,
    }


ORGANISATIONS: dict[str, dict[str, object]] = {
    "world_bank": {
        "en": ("the [World Bank]", "at the [World Bank]"),
        "de": ("die [Weltbank]", "bei der [Weltbank]"),
        "es": ("el [Banco Mundial]", "en el [Banco Mundial]"),
        "fr": ("la [Banque mondiale]", "à la [Banque mondiale]"),
        "ru": ("[Всемирный банк]", "во [Всемирном банке]"),
        "zh": "世界银行", "ar": "البنك الدولي", "hi": "विश्व बैंक",
    },
    "red_cross": {
        "en": ("the [Red Cross]", "at the [Red Cross]"),
        "de": ("das [Rote Kreuz]", "beim [Roten Kreuz]"),
        "es": ("la [Cruz Roja]", "en la [Cruz Roja]"),
        "fr": ("la [Croix-Rouge]", "à la [Croix-Rouge]"),
        "ru": ("[Красный Крест]", "в [Красном Кресте]"),
        "zh": "红十字会", "ar": "الصليب الأحمر", "hi": "रेड क्रॉस",
    },
    "who": {
        "en": ("the [World Health Organization]", "at the [World Health Organization]"),
        "de": ("die [Weltgesundheitsorganisation]", "bei der [Weltgesundheitsorganisation]"),
        "es": ("la [Organización Mundial de la Salud]",
               "en la [Organización Mundial de la Salud]"),
        "fr": ("l' [Organisation mondiale de la santé]",
               "à l' [Organisation mondiale de la santé]"),
        "ru": ("[Всемирная организация здравоохранения]",
               "во [Всемирной организации здравоохранения]"),
        "zh": "世界卫生组织", "ar": "منظمة الصحة العالمية", "hi": "विश्व स्वास्थ्य संगठन",
    },
    "oxford": {
        "en": ("[Oxford University]", "at [Oxford University]"),
        "de": ("die [Universität Oxford]", "an der [Universität Oxford]"),
        "es": ("la [Universidad de Oxford]", "en la [Universidad de Oxford]"),
        "fr": ("l' [Université d' Oxford]", "à l' [Université d' Oxford]"),
        "ru": ("[Оксфордский университет]", "в [Оксфордском университете]"),
        "zh": "牛津大学", "ar": "جامعة أكسفورد", "hi": "ऑक्सफ़ोर्ड विश्वविद्यालय",
    },
    "deutsche_bank": {
        "en": ("[Deutsche Bank]", "at [Deutsche Bank]"),
        "de": ("die [Deutsche Bank]", "bei der [Deutschen Bank]"),
        "es": ("el [Deutsche Bank]", "en el [Deutsche Bank]"),
        "fr": ("la [Deutsche Bank]", "à la [Deutsche Bank]"),
        "ru": ("[Дойче банк]", "в [Дойче банке]"),
        "zh": "德意志银行", "ar": "دويتشه بنك", "hi": "डॉयचे बैंक",
    },
    "real_madrid": {
        "en": ("[Real Madrid]", "at [Real Madrid]"),
        "de": ("[Real Madrid]", "bei [Real Madrid]"),
        "es": ("el [Real Madrid]", "en el [Real Madrid]"),
        "fr": ("le [Real Madrid]", "au [Real Madrid]"),
        "ru": ("клуб [Реал Мадрид]", "в клубе [Реал Мадрид]"),
        "zh": "皇家马德里", "ar": "ريال مدريد", "hi": "रियल मैड्रिड",
    },
    "unesco": {
        "en": ("[UNESCO]", "at [UNESCO]"),
        "de": ("die [UNESCO]", "bei der [UNESCO]"),
        "es": ("la [UNESCO]", "en la [UNESCO]"),
        "fr": ("l' [UNESCO]", "à l' [UNESCO]"),
        "ru": ("[ЮНЕСКО]", "в [ЮНЕСКО]"),
        "zh": "联合国教科文组织", "ar": "اليونسكو", "hi": "यूनेस्को",
    },
    "siemens": _company("Siemens", "Сименс", "西门子", "سيمنس", "सीमेंस"),
    "toyota": _company("Toyota", "Тойота", "丰田", "تويوتا", "टोयोटा"),
    "microsoft": _company("Microsoft", "Майкрософт", "微软", "مايكروسوفت", "माइक्रोसॉफ्ट"),
    "samsung": _company("Samsung", "Самсунг", "三星", "سامسونج", "सैमसंग"),
    "airbus": _company("Airbus", "Эйрбас", "空中客车", "إيرباص", "एयरबस"),
    "lufthansa": _company("Lufthansa", "Люфтганза", "汉莎航空", "لوفتهانزا", "लुफ़्थांसा"),
    "nestle": _company("Nestlé", "Нестле", "雀巢", "نستله", "नेस्ले"),
    "harvard": {
        "en": ("[Harvard University]", "at [Harvard University]"),
        "de": ("die [Harvard University]", "an der [Harvard University]"),
        "es": ("la [Universidad de Harvard]", "en la [Universidad de Harvard]"),
        "fr": ("l' [Université Harvard]", "à l' [Université Harvard]"),
        "ru": ("[Гарвардский университет]", "в [Гарвардском университете]"),
        "zh": "哈佛大学", "ar": "جامعة هارفارد", "hi": "हार्वर्ड विश्वविद्यालय",
    },
}

# ----------------------------------------------------------------------------------------------
# Templates. Slots: PER, PER2 (names), ORG, ORG2 (nominative), ORG_AT ("at" phrase), CITY
# (nominative), CITY_IN, LOC_IN (a city or a country), COUNTRY_IN, COUNTRY (plain name, zh/ar/
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

# Sampling weights: about as many PER, ORG and LOC mentions, and few rows of the small spaces
# ("city in country" has 18 true sentences) so they repeat little; a year (an O token, as in
# PAN-X) widens the organisation-only templates.
TEMPLATE_WEIGHTS = {"lives": 3, "works_in_city": 4, "city_in_country": 1, "org_office": 2,
                    "two_live": 3, "works_at": 4, "orgs_together": 1, "office_since": 2,
                    "together_since": 2, "born": 3}

# A slot names an entity variable in some form ("ORG_AT" is ORG after "at"); the meaning is
# the variables' values, which every language's template of a template name must share.
_VARIABLE = {"ORG_AT": "ORG", "CITY_IN": "CITY", "LOC_IN": "LOC", "COUNTRY_IN": "COUNTRY"}
_ORDER = ("PER", "PER2", "ORG", "ORG2", "CITY", "COUNTRY", "LOC", "YEAR")  # COUNTRY after CITY
_TYPE = {"PER": "PER", "PER2": "PER", "ORG": "ORG", "ORG2": "ORG", "CITY": "LOC",
         "COUNTRY": "LOC", "LOC": "LOC", "YEAR": None}
_TEMPLATE_NAMES = tuple(TEMPLATES)
_ORGANISATION_KEYS = tuple(ORGANISATIONS)
_WEIGHTS = tuple(TEMPLATE_WEIGHTS[t] for t in _TEMPLATE_NAMES)


@functools.cache
def _variables(template: str) -> tuple[str, ...]:
    slots = set(re.findall(r"\{(\w+)\}", "".join(TEMPLATES[template].values())))
    found = {_VARIABLE.get(slot, slot) for slot in slots}
    return tuple(v for v in _ORDER if v in found)


@dataclass(frozen=True)
class Person:
    given: tuple[str, ...]  # one or two keys of GIVEN_NAMES, of one gender
    surname: str  # a key of SURNAMES

    @property
    def gender(self) -> str:
        return GIVEN_NAMES[self.given[0]][0]


@dataclass(frozen=True)
class Sentence:
    """One meaning: a template name and its entity variables' values."""

    template: str
    values: tuple[tuple[str, Person | str], ...]  # (variable, Person or a name-list key)

    def key(self) -> str:
        return f"{self.template}|{self.values}"


# ----------------------------------------------------------------------------------------------
# Sampling (language independent)
# ----------------------------------------------------------------------------------------------


def _sample_person(rng: random.Random, avoid: Sequence[str]) -> Person:
    """A person whose surname differs from ``avoid`` (two people in a sentence are unrelated)."""
    first = rng.choice(list(GIVEN_NAMES))
    given: tuple[str, ...] = (first,)
    if rng.random() < 0.2:  # a second given name of the same gender: a three-token name
        gender = GIVEN_NAMES[first][0]
        given += (rng.choice([g for g, v in GIVEN_NAMES.items() if v[0] == gender and g != first]),)
    return Person(given, rng.choice([s for s in SURNAMES if s not in avoid]))


def _fill(variable: str, rng: random.Random, chosen: dict[str, Person | str]) -> Person | str:
    if variable in ("PER", "PER2"):
        avoid = [p.surname for p in chosen.values() if isinstance(p, Person)]
        return _sample_person(rng, avoid)
    if variable == "ORG":
        return rng.choice(_ORGANISATION_KEYS)
    if variable == "ORG2":
        return rng.choice([o for o in _ORGANISATION_KEYS if o != chosen["ORG"]])
    if variable == "YEAR":
        return str(rng.randint(1950, 2019))
    if variable == "COUNTRY":  # the city's own country: the sentence is true
        return CITIES[str(chosen["CITY"])][0]
    if variable == "LOC" and rng.random() < 0.4:
        return rng.choice(list(COUNTRIES))
    return rng.choice(list(CITIES))  # CITY, or LOC as a city


def _sample_sentence(rng: random.Random) -> Sentence:
    template = rng.choices(_TEMPLATE_NAMES, weights=_WEIGHTS)[0]
    chosen: dict[str, Person | str] = {}
    for variable in _variables(template):
        chosen[variable] = _fill(variable, rng, chosen)
    return Sentence(template, tuple(chosen.items()))


def sample_sentences(split: str, n: int, seed: int = 0) -> list[Sentence]:
    """The language-independent meanings behind :func:`generate`."""
    check_args("en", split, n, LANGUAGES)
    rng = split_rng("ner", split, seed)
    out: list[Sentence] = []
    while len(out) < n:
        sentence = _sample_sentence(rng)
        if split_of(sentence.key()) == split:  # meanings never cross splits
            out.append(sentence)
    return out


# ----------------------------------------------------------------------------------------------
# Rendering: phrases in bracket notation, then tokens and IOB2 tags
# ----------------------------------------------------------------------------------------------

# "in <place>" where no table gives the phrase: the name is inserted at "{}".
_IN = {"en": "in [{}]", "de": "in [{}]", "es": "en [{}]", "fr": "à [{}]", "ru": "в [{}]",
       "zh": "在[{}]", "ar": "في [{}]", "hi": "[{}] में"}
_COLUMN = {lang: i for i, lang in enumerate(_SCRIPTED)}  # scripted columns of the name lists


def person_name(person: Person, language: str) -> str:
    """The person's full name in ``language`` (Chinese joins foreign names with "·")."""
    col = 1 if language in _LATIN else 2 + _COLUMN[language]
    parts = [GIVEN_NAMES[g][col] for g in person.given] + [SURNAMES[person.surname][col - 1]]
    return ("·" if language == "zh" else " ").join(parts)


def _city(key: str, language: str, locative: bool) -> str:
    row = CITIES[key]
    if language == "fr" and key in _CITY_FR_OVERRIDES:
        return _CITY_FR_OVERRIDES[key][locative]
    if language == "ru":
        return _IN["ru"].format(row[6]) if locative else f"[{row[5]}]"
    name = row[1 + _LATIN.index(language)] if language in _LATIN else row[6 + _COLUMN[language]]
    return _IN[language].format(name) if locative else f"[{name}]"


def _country(key: str, language: str, locative: bool) -> str:
    row = COUNTRIES[key]
    if language in _LATIN or language == "ru":
        return row[(*_LATIN, "ru").index(language)]  # only ever used after "in"
    name = row[4 + _COLUMN[language]]
    return _IN[language].format(name) if locative else f"[{name}]"


def _organisation(key: str, language: str, at: bool) -> str:
    entry = ORGANISATIONS[key][language]
    if isinstance(entry, tuple):
        return entry[at]
    return _IN[language].format(entry) if at else f"[{entry}]"


def _phrase(slot: str, value: Person | str, language: str) -> str:
    variable = _VARIABLE.get(slot, slot)
    if variable == "YEAR":
        return str(value)  # digits, not an entity
    if isinstance(value, Person):
        return f"[{person_name(value, language)}]"
    if variable in ("ORG", "ORG2"):
        return _organisation(value, language, at=slot == "ORG_AT")
    if variable == "COUNTRY" or (variable == "LOC" and value in COUNTRIES):
        return _country(value, language, locative=slot != "COUNTRY")
    return _city(value, language, locative=slot != "CITY")


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
        phrase = _phrase(part, values[variable], language)
        for j, sub in enumerate(re.split(r"\[([^\]]+)\]", phrase)):
            pieces.append((sub, _TYPE[variable] if j % 2 else None))
    return pieces


def _tokens(text: str, language: str, name: bool = False) -> list[str]:
    """Whitespace tokens; Chinese: one per character, a name one token (module docstring)."""
    if language != "zh":
        return text.split()
    return [text] if name else [c for c in text if not c.isspace()]


def _spanish_y(tokens: list[str]) -> None:
    # "y" becomes "e" before an /i/ sound: "Anna e Ivan".
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
        toks = _tokens(text, language, name=etype is not None)
        tokens += toks
        if etype is None:
            tags += [0] * len(toks)
        else:
            tags += [TAGS.index(f"B-{etype}")] + [TAGS.index(f"I-{etype}")] * (len(toks) - 1)
    tokens[0] = tokens[0][:1].upper() + tokens[0][1:]
    if language == "es":
        _spanish_y(tokens)
    return tokens, tags


def generate(language: str, split: str, n: int, seed: int = 0) -> list[dict]:
    """Return ``n`` PAN-X rows ``{"tokens", "ner_tags", "langs"}`` for one language and split.

    Row ``i`` is the same meaning (template and entities) in every language.
    """
    check_args(language, split, n, LANGUAGES)
    rows = []
    for sentence in sample_sentences(split, n, seed):
        tokens, tags = render(sentence, language)
        rows.append({"tokens": tokens, "ner_tags": tags, "langs": [language] * len(tokens)})
    return rows


def to_dataset(rows: Sequence[dict]) -> datasets.Dataset:
    """Wrap rows from :func:`generate` as a ``datasets.Dataset`` with the PAN-X features."""
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    return datasets.Dataset.from_dict(columns, features=FEATURES)
