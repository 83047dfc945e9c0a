"""Facts about every language the kit's tasks use: English name, script, resource tier.

Tiers are the six classes of Joshi et al. (2020), "The State and Fate of Linguistic Diversity
and Inclusion in the NLP World" (ACL 2020, Section 3), which place a language by the amount of
labelled and unlabelled data it has:
  0 "The Left-Behinds", 1 "The Scraping-Bys", 2 "The Hopefuls", 3 "The Rising Stars",
  4 "The Underdogs", 5 "The Winners".
The per-language classes are the paper's published taxonomy (lang2tax.txt, linked from the
paper: https://microsoft.github.io/linguisticdiversity/assets/lang2tax.txt). That file could not
be fetched here; the values were transcribed from a copy of it, and every language below appears
in that copy with one class, except those in `FILLED_TIERS`, whose values were decided here
(reason given there). Re-check against lang2tax.txt before publishing tier-level results.
Names are the English names UD / ISO 639 use; scripts (ISO 15924) are the script each
benchmark's text is written in, filled in here (Chinese: `Hani`, the datasets mix simplified and
traditional text; Japanese `Jpan` and Korean `Kore` are the mixed-script codes).

`Language.group` folds the tiers into three bands for research question (c):
high = 4-5, mid = 3, low = 0-2 (a convention of this kit, not of the paper). `mul` (a
multilingual mix, e.g. the MLM corpus) is not one language and has no tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1 where one exists (what the benchmarks use)
    name: str
    script: str  # ISO 15924
    tier: int | None  # Joshi et al. (2020) class, 0-5; None: not one language

    @property
    def group(self) -> str | None:
        """'high' (tiers 4-5), 'mid' (3) or 'low' (0-2); None without a tier (`mul`)."""
        if self.tier is None:
            return None
        return "high" if self.tier >= 4 else "mid" if self.tier == 3 else "low"


# code: (name, script, Joshi class)
_TABLE = {
    "af": ("Afrikaans", "Latn", 3), "ar": ("Arabic", "Arab", 5),
    "az": ("Azerbaijani", "Latn", 1), "bg": ("Bulgarian", "Cyrl", 3),
    "bn": ("Bengali", "Beng", 3), "de": ("German", "Latn", 5),
    "el": ("Greek", "Grek", 3), "en": ("English", "Latn", 5),
    "es": ("Spanish", "Latn", 5), "et": ("Estonian", "Latn", 3),
    "eu": ("Basque", "Latn", 4), "fa": ("Persian", "Arab", 4),
    "fi": ("Finnish", "Latn", 4), "fr": ("French", "Latn", 5),
    "gu": ("Gujarati", "Gujr", 1), "he": ("Hebrew", "Hebr", 3),
    "hi": ("Hindi", "Deva", 4), "ht": ("Haitian Creole", "Latn", 2),
    "hu": ("Hungarian", "Latn", 4), "id": ("Indonesian", "Latn", 3),
    "it": ("Italian", "Latn", 4), "ja": ("Japanese", "Jpan", 5),
    "jv": ("Javanese", "Latn", 1), "ka": ("Georgian", "Geor", 3),
    "kk": ("Kazakh", "Cyrl", 3), "ko": ("Korean", "Kore", 4),
    "lt": ("Lithuanian", "Latn", 3), "ml": ("Malayalam", "Mlym", 1),
    "mr": ("Marathi", "Deva", 2), "ms": ("Malay", "Latn", 3),
    "my": ("Burmese", "Mymr", 1), "nl": ("Dutch", "Latn", 4),
    "pa": ("Punjabi", "Guru", 2), "pl": ("Polish", "Latn", 4),
    "pt": ("Portuguese", "Latn", 4), "qu": ("Quechua", "Latn", 1),
    "ro": ("Romanian", "Latn", 3), "ru": ("Russian", "Cyrl", 4),
    "sw": ("Swahili", "Latn", 2), "ta": ("Tamil", "Taml", 3),
    "te": ("Telugu", "Telu", 1), "th": ("Thai", "Thai", 3),
    "tl": ("Tagalog", "Latn", 3), "tr": ("Turkish", "Latn", 4),
    "uk": ("Ukrainian", "Cyrl", 3), "ur": ("Urdu", "Arab", 3),
    "vi": ("Vietnamese", "Latn", 4), "wo": ("Wolof", "Latn", 2),
    "yo": ("Yoruba", "Latn", 2), "zh": ("Chinese", "Hani", 5),
    # ISO 639-2 "multiple languages": a multilingual corpus (the MLM task's `mul`); no tier,
    # script "Zyyy" (ISO 15924: undetermined)
    "mul": ("Multiple languages", "Zyyy", None),
}

# Tiers decided here rather than read off one unambiguous entry of the taxonomy.
FILLED_TIERS = MappingProxyType({
    # the copy consulted lists Haitian among the class-2 names but its ISO code `hat` under
    # class 1; 2 is kept (the name list), pending a check against lang2tax.txt
    "ht": "copies disagree (class 1 or 2); 2 kept",
})

LANGUAGES = MappingProxyType({code: Language(code, *facts) for code, facts in _TABLE.items()})

