"""Synthetic parallel extractive QA in the SQuAD schema (XQuAD's columns plus SQuAD's ``title``).

A context is 2-4 sentences, each an :class:`xtl.offline.synth.nli.Frame` rendered by nli's grammars
("The brown cat is sleeping in the kitchen. The dog is playing in the garden with a child.").
The question asks for one slot of one sentence, and the answer is that slot's words as they
stand in the context: the place phrase ("in the kitchen"), the colour ("brown"), the companion
("a child"), the animal ("cat"), the activity ("sleeping") or the manner ("quietly").

The sentences of a context describe different animals with different colours, places,
companions and manners, so every question has exactly one answer and the model must bind the
slot to the right animal. Row ``i`` is the same context and question in every language, with
the same ``id`` (as XQuAD). Every sentence of a context belongs to the split's part of the
meaning space (common.PARTS), so no sentence an intermediate stage trains on (part ``stage``)
occurs in the rows a target trains on (``target``) or evaluates (``validation``, ``test``).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass

import datasets

from xtl.offline.synth import common, nli
from xtl.offline.synth.common import balanced, check_args, part_of_split, part_rng
from xtl.offline.synth.nli import ANIMALS, COLOURS, COMPANIONS, MANNERS, PLACES, VERBS, Frame

LANGUAGES: tuple[str, ...] = nli.LANGUAGES
SPLITS: tuple[str, ...] = common.SPLITS
QUESTION_TYPES: tuple[str, ...] = ("place", "colour", "companion", "animal", "activity", "manner")

# rajpurkar/squad(_v2) features; google/xquad and XQuAD.<l> are the same without "title".
FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "title": datasets.Value("string"),
        "context": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answers": {
            "text": datasets.Sequence(datasets.Value("string")),
            "answer_start": datasets.Sequence(datasets.Value("int32")),
        },
    }
)

# Localised like MLQA's titles; every context is about animals.
TITLES = {"en": "Animals", "de": "Tiere", "es": "Animales", "fr": "Animaux", "ru": "Животные",
          "zh": "动物", "ar": "حيوانات", "hi": "जानवर"}

# Probability that a sentence mentions each optional slot.
_SLOT_P = {"colour": 0.7, "place": 0.8, "manner": 0.3, "companion": 0.35}
_VALUES = {"colour": COLOURS, "place": PLACES, "manner": MANNERS, "companion": COMPANIONS}
_FRONTED_P = 0.2
# The slot a question type needs in its sentence ("which animal" names the place).
_NEEDS = {"place": "place", "colour": "colour", "companion": "companion", "animal": "place",
          "activity": None, "manner": "manner"}


@dataclass(frozen=True)
class Item:
    """One context (its sentences' meanings) and a question about sentence ``target``."""

    sentences: tuple[Frame, ...]
    target: int
    qtype: str


# ----------------------------------------------------------------------------------------------
# Sampling (language independent)
# ----------------------------------------------------------------------------------------------


def _sample_sentences(part: str, rng: random.Random) -> list[Frame]:
    """2-4 sentences about different animals; no two share a colour, place, manner or
    companion; every one belongs to ``part`` (drawn again until it does), so a context's
    sentences never occur in another part."""
    frames: list[Frame] = []
    for _ in range(rng.randint(2, 4)):
        used = {slot: {getattr(f, slot) for f in frames} for slot in _VALUES}
        animals = [a for a in ANIMALS if a not in {f.animal for f in frames}]
        while True:
            fields = {}
            for slot, vals in _VALUES.items():
                free = [v for v in vals if v not in used[slot]]
                fields[slot] = rng.choice(free) if free and rng.random() < _SLOT_P[slot] else None
            fronted = fields["place"] is not None and rng.random() < _FRONTED_P
            frame = Frame(animal=rng.choice(animals), verb=rng.choice(VERBS), fronted=fronted,
                          **fields)
            if nli.part(frame) == part:
                frames.append(frame)
                break
    return frames


def _sample_item(qtype: str, part: str, rng: random.Random) -> Item:
    slot = _NEEDS[qtype]
    while True:  # a context with a sentence the question can ask about
        frames = _sample_sentences(part, rng)
        candidates = [j for j, f in enumerate(frames) if slot is None
                      or getattr(f, slot) is not None]
        if candidates:
            return Item(tuple(frames), rng.choice(candidates), qtype)


@functools.lru_cache(maxsize=32)
def _items(part: str, n: int, seed: int) -> tuple[Item, ...]:
    rng = part_rng("qa", part, seed)
    return tuple(_sample_item(qtype, part, rng) for qtype in balanced(QUESTION_TYPES, n, rng))


def sample_items(split: str, n: int, seed: int = 0, train_part: str = "stage") -> list[Item]:
    """The language-independent contexts and questions behind :func:`generate`.

    Question types are balanced to within one; every sentence belongs to the split's part.
    """
    check_args("en", split, n, LANGUAGES, train_part)
    return list(_items(part_of_split(split, train_part), n, seed))


# ----------------------------------------------------------------------------------------------
# Slot surfaces: the words nli's grammars use, read from its lexicon tables
# ----------------------------------------------------------------------------------------------

_LEX = {"en": nli._EN, "de": nli._DE, "es": nli._ES, "fr": nli._FR, "ru": nli._RU,
        "zh": nli._ZH, "ar": nli._AR, "hi": nli._HI}
# Words around the companion that are not part of the answer ("with a child" -> "a child").
_COMPANION_AFFIXES = {"en": (("with ",), ""), "de": (("mit ",), ""), "es": (("con ",), ""),
                      "fr": (("avec ",), ""), "ru": (("со ", "с "), ""), "zh": (("和",), "一起"),
                      "ar": (("مع ",), ""), "hi": (("",), " के साथ")}


def _noun(language: str, animal: str) -> str:
    entry = _LEX[language]["animal"][animal]
    return entry if isinstance(entry, str) else entry[1]


def _gender(language: str, animal: str) -> str:
    """Grammatical gender where nli stores one ("m"/"f"); "" where agreement needs none."""
    entry = _LEX[language]["animal"][animal]
    return entry[0] if language in ("es", "fr", "ru", "ar", "hi") else ""


def _agree(value: str | dict[str, str], gender: str) -> str:
    return value[gender] if isinstance(value, dict) else value


def _verb(language: str, verb: str, gender: str) -> str:
    """The verb as the sentence has it (with Hindi's progressive auxiliary)."""
    lex = _LEX[language]
    form = _agree(lex["verb"][verb], gender)
    return f"{form} {lex['progressive'][gender]}" if language == "hi" else form


def _companion(language: str, companion: str) -> str:
    phrase = _LEX[language]["companion"][companion]
    prefixes, suffix = _COMPANION_AFFIXES[language]
    prefix = next(p for p in prefixes if phrase.startswith(p))
    return phrase[len(prefix) : len(phrase) - len(suffix)]


def answer_surface(frame: Frame, qtype: str, language: str) -> str:
    """The answer's words for a question of type ``qtype`` about ``frame`` (before casing)."""
    lex, gender = _LEX[language], _gender(language, frame.animal)
    if qtype == "animal":
        return _noun(language, frame.animal)
    if qtype == "activity":
        return _verb(language, frame.verb, gender)
    if qtype == "companion":
        return _companion(language, frame.companion)
    if qtype == "colour":  # Chinese "黑色的" is "black" + attributive particle
        return _agree(lex["colour"][frame.colour], gender).removesuffix("的")
    return lex[qtype][getattr(frame, qtype)]  # place, manner: whole phrase


# ----------------------------------------------------------------------------------------------
# Questions: one template per language and type; fields filled from nli's lexicon
# ----------------------------------------------------------------------------------------------

_QUESTIONS = {
    "en": ("Where is {subj} {verb}?", "What colour is {subj}?", "Who is {subj} {verb} with?",
           "Which animal is {verb} {place}?", "What is {subj} doing?", "How is {subj} {verb}?"),
    "de": ("Wo {verb} {subj}?", "Welche Farbe hat {subj}?", "Mit wem {verb} {subj}?",
           "Welches Tier {verb} {place}?", "Was macht {subj}?", "Wie {verb} {subj}?"),
    "es": ("¿Dónde {verb} {subj}?", "¿De qué color es {subj}?", "¿Con quién {verb} {subj}?",
           "¿Qué animal {verb} {place}?", "¿Qué hace {subj}?", "¿Cómo {verb} {subj}?"),
    "fr": ("Où {verb} {subj} ?", "De quelle couleur est {subj} ?", "Avec qui {verb} {subj} ?",
           "Quel animal {verb} {place} ?", "Que fait {subj} ?", "Comment {verb} {subj} ?"),
    "ru": ("Где {verb} {subj}?", "Какого цвета {subj}?", "С кем {verb} {subj}?",
           "Какое животное {verb} {place}?", "Что делает {subj}?", "Как {verb} {subj}?"),
    "zh": ("{subj}在哪里{verb}？", "{subj}是什么颜色的？", "{subj}和谁一起{verb}？",
           "哪只动物在{place}{verb}？", "{subj}在做什么？", "{subj}是怎么{verb}的？"),
    "ar": ("أين {verb} {subj}؟", "ما لون {subj}؟", "مع من {verb} {subj}؟",
           "أي حيوان {verb_m} {place}؟", "ماذا {do} {subj}؟", "كيف {verb} {subj}؟"),
    # Hindi: "which animal" takes the masculine ("जानवर"); "of" and "doing" agree with the noun.
    "hi": ("{subj} कहाँ {verb}?", "{subj} किस रंग {of} है?", "{subj} किसके साथ {verb}?",
           "{place} कौन सा जानवर {verb_m}?", "{subj} क्या कर {prog}?", "{subj} कैसे {verb}?"),
}


def _subject(language: str, animal: str) -> str:
    """The definite subject without colour, as a question names it."""
    entry = _LEX[language]["animal"][animal]
    if language == "en":
        return f"the {entry}"
    if language == "de":
        return f"{entry[0]} {entry[1]}"
    if language == "es":
        return f"{'el' if entry[0] == 'm' else 'la'} {entry[1]}"
    if language == "fr":
        return nli._fr_subject(Frame(animal=animal, verb=VERBS[0]))
    return _noun(language, animal)  # ru, zh, hi: no article; ar: the noun carries "ال"


def question(frame: Frame, qtype: str, language: str) -> str:
    """The question of type ``qtype`` about ``frame`` in ``language``."""
    gender = _gender(language, frame.animal)
    fields = {
        "subj": _subject(language, frame.animal),
        "verb": _verb(language, frame.verb, gender),
        "verb_m": _verb(language, frame.verb, "m") if language in ("ar", "hi") else "",
        "place": _LEX[language]["place"].get(frame.place, ""),
        "do": {"m": "يفعل", "f": "تفعل"}.get(gender, ""),
        "of": {"m": "का", "f": "की"}.get(gender, ""),
        "prog": _LEX["hi"]["progressive"].get(gender, ""),
    }
    return _QUESTIONS[language][QUESTION_TYPES.index(qtype)].format(**fields)


# ----------------------------------------------------------------------------------------------
# Rows
# ----------------------------------------------------------------------------------------------


def _locate(sentence: str, surface: str) -> int:
    """Offset of the answer in its sentence; nli capitalises a sentence-initial word."""
    hits = [
        i
        for form in {surface, surface[:1].upper() + surface[1:]}
        for i in _occurrences(sentence, form)
    ]
    if len(hits) != 1:
        raise AssertionError(f"answer {surface!r} found {len(hits)} times in {sentence!r}")
    return hits[0]


def _occurrences(text: str, part: str) -> list[int]:
    found, i = [], text.find(part)
    while i != -1:
        found.append(i)
        i = text.find(part, i + 1)
    return found


def render_item(item: Item, language: str) -> tuple[str, str, str, int]:
    """(context, question, answer text, answer start) of one item in ``language``."""
    sentences = [nli.render(f, language) for f in item.sentences]
    sep = "" if language == "zh" else " "
    offset = sum(len(s) + len(sep) for s in sentences[: item.target])
    frame = item.sentences[item.target]
    surface = answer_surface(frame, item.qtype, language)
    start = offset + _locate(sentences[item.target], surface)
    context = sep.join(sentences)
    text = context[start : start + len(surface)]
    return context, question(frame, item.qtype, language), text, start


def _row(item: Item, language: str, row_id: str) -> dict:
    context, q, text, start = render_item(item, language)
    return {
        "id": row_id,
        "title": TITLES[language],
        "context": context,
        "question": q,
        "answers": {"text": [text], "answer_start": [start]},
    }


def generate(language: str, split: str, n: int, seed: int = 0, train_part: str = "stage"
             ) -> list[dict]:
    """Return ``n`` SQuAD rows ``{"id", "title", "context", "question", "answers"}``.

    Row ``i`` is the same context and question in every language and has the same ``id``.
    Every answer is one span: ``context[start:start + len(text)] == text``. ``train_part``
    picks what ``train`` means (common.PARTS): an intermediate stage's rows or a target's.
    """
    check_args(language, split, n, LANGUAGES, train_part)
    prefix = f"synth-qa-{part_of_split(split, train_part)}-{seed}"
    return [
        _row(item, language, f"{prefix}-{i:06d}")
        for i, item in enumerate(sample_items(split, n, seed, train_part))
    ]


def to_dataset(rows: Sequence[dict]) -> datasets.Dataset:
    """Wrap rows from :func:`generate` as a ``datasets.Dataset`` with the SQuAD features."""
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    return datasets.Dataset.from_dict(columns, features=FEATURES)

