"""Synthetic parallel NLI task in the MNLI/XNLI schema (offline demo for zero-shot transfer).

Every example is built as a language-independent meaning (a :class:`Frame`) and then rendered
by a hand-written grammar per language, so example ``i`` of a (split, n, seed) is the same
meaning in every language, like XNLI. Labels follow from the frames alone, reading premise
and hypothesis as one scene (SNLI's convention): "an animal" is the animal the other sentence
is about, an animal named differently is another individual.

* entailment: the hypothesis drops details, says "an animal", states only the location, or
  denies another location or another activity (one event, one place, one activity);
* neutral: the hypothesis adds a detail the premise does not give (colour, place, manner,
  companion, hunger), names the animal of "an animal", or is about another animal;
* contradiction: the hypothesis changes the colour, place or activity (possibly adding a
  detail), or negates it.

Surface cues are matched away: rows are made in triples, one per label, whose English pairs
have the same word counts and word overlap (`signature`), so the labels are balanced and
every length/overlap feature of `xtl.evaluation.shortcuts.overlap_features` has the same
distribution under each label: a classifier on them, fit on English rows, is at chance (33.3%) in
every language. Fit on a language's OWN labelled rows, such a tree still finds grammar-made cues
(agreement: another animal changes the verb's gender in Hindi and Arabic; articles): a model
trained in English cannot learn those, which is why the shortcut is fit on English.

Premise and hypothesis of a row belong to the split's part (common.PARTS), so no sentence of
a training row occurs in an evaluation row, nor in the other training part.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import datasets

from xtl.offline.synth import common
from xtl.offline.synth.common import check_args, part_of, part_of_split, part_rng

LANGUAGES: tuple[str, ...] = ("en", "de", "es", "fr", "ru", "zh", "ar", "hi")
LABELS = ("entailment", "neutral", "contradiction")
SPLITS: tuple[str, ...] = common.SPLITS

FEATURES = datasets.Features(
    {
        "premise": datasets.Value("string"),
        "hypothesis": datasets.Value("string"),
        "label": datasets.ClassLabel(names=list(LABELS)),
    }
)

ENTAILMENT, NEUTRAL, CONTRADICTION = range(3)

# Language-independent vocabulary; every renderer has an entry for each key.
ANIMALS = ("cat", "dog", "horse", "bird", "cow", "rabbit")
COLOURS = ("black", "white", "brown", "grey")
VERBS = ("sleep", "eat", "play")  # mutually exclusive activities, so a swap contradicts
PLACES = ("kitchen", "garden", "living_room", "yard", "field")
MANNERS = ("quietly", "peacefully")
COMPANIONS = ("child", "girl", "old_man")
SLOTS = ("colour", "place", "manner", "companion")
_VALUES = {"colour": COLOURS, "place": PLACES, "manner": MANNERS, "companion": COMPANIONS}


@dataclass(frozen=True)
class Frame:
    """One sentence meaning. Optional slots are None when the sentence does not mention them."""

    animal: str
    verb: str
    colour: str | None = None
    place: str | None = None
    manner: str | None = None
    companion: str | None = None
    form: str = "action"  # "action" (X is V-ing), "locative" (X is in P), "hungry" (never negated)
    negated: bool = False
    hypernym: bool = False  # subject rendered as "an animal"
    fronted: bool = False  # place phrase first ("In the kitchen, ...")


# Premise templates: which optional slots are filled, and whether the place is fronted.
PREMISE_TEMPLATES: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("colour", "place"), False),
    (("colour", "place"), True),
    (("colour", "place", "manner"), False),
    (("colour", "place", "manner"), True),
    (("colour", "place", "companion"), False),
    (("colour", "place", "manner", "companion"), False),
    (("place", "manner"), False),
    (("place", "companion"), False),
    (("colour", "manner"), False),
    (("colour", "companion"), False),
    (("colour",), False),
    (("place",), False),
    ((), False),
)
HYPERNYM_PREMISES = 0.2  # share of premises about "an animal" (whose hyponym is then neutral)


# ----------------------------------------------------------------------------------------------
# Sampling (language independent)
# ----------------------------------------------------------------------------------------------


def key(frame: Frame) -> str:
    """The meaning of a frame as a string: what the parts are hashed by. Two frames that every
    grammar renders alike (word order aside) have the same key: "an animal" hides which."""
    animal = "animal" if frame.hypernym else frame.animal
    if frame.form == "hungry":
        fields = ("hungry", animal, frame.colour)
    elif frame.form == "locative":
        fields = ("locative", animal, frame.colour, frame.place, frame.negated)
    else:
        fields = ("action", animal, frame.verb, frame.colour, frame.place, frame.manner,
                  frame.companion, frame.negated)
    return "|".join(map(str, fields))


def part(frame: Frame) -> str:
    """The part (common.PARTS) a sentence meaning belongs to."""
    return part_of(key(frame))


def _other(values: Sequence[str], current: str | None, rng: random.Random) -> str:
    return rng.choice([v for v in values if v != current])


def _present(frame: Frame) -> list[str]:
    return [s for s in SLOTS if getattr(frame, s) is not None]


def _sample_premise(rng: random.Random, wanted: str) -> Frame:
    # Rejection sampling: only meanings hashed into the wanted part are kept.
    while True:
        slots, fronted = rng.choice(PREMISE_TEMPLATES)
        fields = {s: rng.choice(_VALUES[s]) for s in slots}
        frame = Frame(animal=rng.choice(ANIMALS), verb=rng.choice(VERBS),
                      fronted=fronted and "place" in fields, **fields)
        if rng.random() < HYPERNYM_PREMISES:  # "an animal" carries no colour
            frame = replace(frame, hypernym=True, colour=None)
        if part(frame) == wanted:
            return frame


def _thin(frame: Frame, keep: Sequence[str], rng: random.Random, p: float = 0.3) -> Frame:
    """Drop each optional slot not in ``keep`` with probability p (never changes the label)."""
    drops = {s: None for s in _present(frame) if s not in keep and rng.random() < p}
    return replace(frame, **drops)


def _core(frame: Frame, keep_place: bool = True) -> Frame:
    """Reduce to subject colour (+ place): negated/stative forms only carry these slots."""
    return replace(
        frame,
        manner=None,
        companion=None,
        fronted=False,
        place=frame.place if keep_place else None,
    )


def _add(frame: Frame, rng: random.Random, keep: Sequence[str] = ()) -> Frame:
    """Add one slot the frame lacks (a detail the premise did not give), if any."""
    missing = [s for s in SLOTS if getattr(frame, s) is None and s not in keep
               and not (s == "colour" and frame.hypernym)]
    if not missing or frame.form != "action" or frame.negated:
        return frame
    slot = rng.choice(missing)
    return replace(frame, **{slot: rng.choice(_VALUES[slot])})


# Entailment transformations ------------------------------------------------------------------


def _e_drop(p: Frame, rng: random.Random) -> Frame | None:
    present = _present(p)
    if not present:
        return None
    dropped = rng.sample(present, rng.randint(1, len(present)))
    return replace(p, **{s: None for s in dropped})


def _e_hypernym(p: Frame, rng: random.Random) -> Frame | None:
    if p.hypernym:
        return None
    return _thin(replace(p, hypernym=True, colour=None), keep=(), rng=rng)


def _e_locative(p: Frame, rng: random.Random) -> Frame | None:
    if p.place is None:
        return None
    return _thin(replace(_core(p), form="locative"), keep=("place",), rng=rng, p=0.5)


def _e_deny_other_place(p: Frame, rng: random.Random) -> Frame | None:
    # "sleeping in the kitchen" entails "not sleeping in the garden" (one event, one place).
    if p.place is None:
        return None
    form = rng.choice(("action", "locative"))
    other = replace(_core(p), place=_other(PLACES, p.place, rng), negated=True, form=form)
    return _thin(other, keep=("place",), rng=rng, p=0.5)


def _e_deny_other_verb(p: Frame, rng: random.Random) -> Frame | None:
    # The activities exclude each other: sleeping entails not playing.
    return _thin(replace(_core(p), verb=_other(VERBS, p.verb, rng), negated=True), keep=(),
                 rng=rng, p=0.5)


# Neutral transformations ---------------------------------------------------------------------


def _n_add(p: Frame, rng: random.Random) -> Frame | None:
    added = _add(p, rng)
    if added == p:
        return None
    new = [s for s in SLOTS if getattr(added, s) != getattr(p, s)]
    return _thin(added, keep=new, rng=rng)


def _n_hungry(p: Frame, rng: random.Random) -> Frame | None:
    return _thin(replace(_core(p, keep_place=False), form="hungry"), keep=(), rng=rng, p=0.5)


def _n_place_unknown(p: Frame, rng: random.Random) -> Frame | None:
    # The premise gives no place, so both "is in P" and "is not V-ing in P" are undecided.
    if p.place is not None:
        return None
    negated = rng.random() < 0.5
    form = "action" if negated else "locative"
    new = replace(_core(p), place=rng.choice(PLACES), negated=negated, form=form)
    return _thin(new, keep=("place",), rng=rng, p=0.5)


def _n_hyponym(p: Frame, rng: random.Random) -> Frame | None:
    # "An animal is sleeping" does not say which animal: "the cat is sleeping" is undecided.
    if not p.hypernym:
        return None
    return _thin(replace(p, hypernym=False), keep=(), rng=rng)


def _n_other_animal(p: Frame, rng: random.Random) -> Frame | None:
    # Another animal is another individual: what it does is not given.
    if p.hypernym:
        return None
    new = replace(p, animal=_other(ANIMALS, p.animal, rng))
    if rng.random() < 0.5:  # ... and so is anything about it
        new = replace(new, verb=_other(VERBS, p.verb, rng))
    return _thin(new, keep=(), rng=rng)


# Contradiction transformations ---------------------------------------------------------------
# Each may add a detail the premise lacks: the hypothesis stays false.


def _contradict(new: Frame, rng: random.Random, keep: Sequence[str]) -> Frame:
    new = _thin(new, keep=keep, rng=rng)
    return _add(new, rng, keep=keep) if rng.random() < 0.4 else new


def _c_change_colour(p: Frame, rng: random.Random) -> Frame | None:
    if p.colour is None:
        return None
    return _contradict(replace(p, colour=_other(COLOURS, p.colour, rng)), rng, ("colour",))


def _c_change_place(p: Frame, rng: random.Random) -> Frame | None:
    if p.place is None or p.hypernym:
        return None
    form = rng.choice(("action", "action", "locative"))
    new = replace(p, place=_other(PLACES, p.place, rng))
    if form == "locative":
        return _thin(replace(_core(new), form=form), keep=("place",), rng=rng)
    return _contradict(new, rng, ("place",))


def _c_change_verb(p: Frame, rng: random.Random) -> Frame | None:
    if p.hypernym:
        return None
    return _contradict(replace(p, verb=_other(VERBS, p.verb, rng)), rng, ())


def _c_negate(p: Frame, rng: random.Random) -> Frame | None:
    keep_place = p.place is not None and rng.random() < 0.6
    return _thin(replace(_core(p, keep_place), negated=True), keep=("place",), rng=rng, p=0.5)


def _c_negate_locative(p: Frame, rng: random.Random) -> Frame | None:
    if p.place is None:
        return None
    new = replace(_core(p), form="locative", negated=True)
    return _thin(new, keep=("place",), rng=rng, p=0.5)


Transform = Callable[[Frame, random.Random], Frame | None]

_TRANSFORMS: dict[int, tuple[Transform, ...]] = {
    ENTAILMENT: (_e_drop, _e_hypernym, _e_locative, _e_deny_other_place, _e_deny_other_verb),
    NEUTRAL: (_n_add, _n_hungry, _n_place_unknown, _n_hyponym, _n_other_animal),
    CONTRADICTION: (_c_change_colour, _c_change_place, _c_change_verb, _c_negate,
                    _c_negate_locative),
}


def _sample_hypothesis(premise: Frame, label: int, rng: random.Random) -> Frame | None:
    options = list(_TRANSFORMS[label])
    rng.shuffle(options)
    for transform in options:
        hyp = transform(premise, rng)
        if hyp is not None and hyp != premise:
            return _maybe_front(replace(hyp, fronted=False), rng)
    return None


def _maybe_front(frame: Frame, rng: random.Random) -> Frame:
    ok = frame.form == "action" and not frame.negated and frame.place is not None
    return replace(frame, fronted=ok and rng.random() < 0.3)


def _english_words(text: str) -> list[str]:
    # xtl.evaluation.shortcuts.words on the English grammar's output (its only punctuation: "." and
    # "," at word ends), without that function's Unicode scan: this runs for every candidate.
    return text.lower().replace(".", " ").replace(",", " ").split()


def signature(premise: Frame, hypothesis: Frame) -> tuple[int, ...]:
    """What a surface classifier sees of a pair: the English sentences' word counts, distinct
    word counts and shared words. Every feature of `xtl.evaluation.shortcuts.overlap_features` is a
    function of it."""
    a, b = _english_words(render(premise, "en")), _english_words(render(hypothesis, "en"))
    return len(a), len(b), len(set(a)), len(set(b)), len(set(a) & set(b))


class _Stream:
    """The rows of one (part, seed), as matched triples, made on demand and kept: the first
    ``n`` rows never depend on how many were asked for before."""

    def __init__(self, wanted: str, seed: int) -> None:
        self.wanted = wanted
        self.rng = part_rng("nli", wanted, seed)
        self.waiting: dict[tuple, list[list[tuple[Frame, Frame]]]] = {}
        self.seen: set[tuple[str, str]] = set()
        self.rows: list[tuple[Frame, Frame, int]] = []

    def take(self, n: int) -> list[tuple[Frame, Frame, int]]:
        rng = self.rng
        while len(self.rows) < n:
            premise = _sample_premise(rng, self.wanted)
            label = rng.randrange(3)
            hyp = _sample_hypothesis(premise, label, rng)
            if hyp is None or part(hyp) != self.wanted or (key(premise), key(hyp)) in self.seen:
                continue
            self.seen.add((key(premise), key(hyp)))
            queues = self.waiting.setdefault(signature(premise, hyp), [[], [], []])
            queues[label].append((premise, hyp))
            if all(queues):
                triple = [(*queues[k].pop(0), k) for k in range(3)]
                rng.shuffle(triple)
                self.rows += triple
        return self.rows[:n]


_STREAMS: dict[tuple[str, int], _Stream] = {}


def sample_frames(split: str, n: int, seed: int = 0, train_part: str = "stage"
                  ) -> list[tuple[Frame, Frame, int]]:
    """Language-independent (premise, hypothesis, label) triples behind :func:`generate`.

    Rows come in matched triples: one row per label with the same `signature`, so the labels
    are balanced and no function of the English pair's lengths and word overlap separates
    them (a row's premise and hypothesis both belong to the split's part, common.PARTS).
    """
    check_args("en", split, n, LANGUAGES, train_part)
    wanted = part_of_split(split, train_part)
    stream = _STREAMS.setdefault((wanted, seed), _Stream(wanted, seed))
    return stream.take(n)


# ----------------------------------------------------------------------------------------------
# Rendering: one small grammar per language. Inflected forms are stored, not composed.
# ----------------------------------------------------------------------------------------------


def _join(*parts: str | None, sep: str = " ") -> str:
    return sep.join(p for p in parts if p)


def _sentence(text: str, end: str = ".") -> str:
    return text[:1].upper() + text[1:] + end


def _get(table: dict[str, str], key: str | None) -> str:
    return table[key] if key is not None else ""


# English ------------------------------------------------------------------------------------

_EN = {
    "animal": {a: a for a in ANIMALS},
    "colour": {c: c for c in COLOURS},
    "verb": {"sleep": "sleeping", "eat": "eating", "play": "playing"},
    "place": {
        "kitchen": "in the kitchen",
        "garden": "in the garden",
        "living_room": "in the living room",
        "yard": "in the yard",
        "field": "in the field",
    },
    "manner": {"quietly": "quietly", "peacefully": "peacefully"},
    "companion": {"child": "with a child", "girl": "with a girl", "old_man": "with an old man"},
}


def _render_en(f: Frame) -> str:
    lex = _EN
    subj = (
        "an animal"
        if f.hypernym
        else _join("the", _get(lex["colour"], f.colour), lex["animal"][f.animal])
    )
    copula = "is not" if f.negated else "is"
    place, manner, comp = (_get(lex[k], getattr(f, k)) for k in ("place", "manner", "companion"))
    if f.form == "hungry":
        return _sentence(_join(subj, copula, "hungry"))
    if f.form == "locative":
        return _sentence(_join(subj, copula, place))
    verb = lex["verb"][f.verb]
    if f.fronted:
        return _sentence(_join(place + ",", subj, copula, verb, manner, comp))
    return _sentence(_join(subj, copula, verb, manner, place, comp))


# German (animals "fressen"; definite article + weak adjective "-e" in the nominative) ----------

_DE = {
    "animal": {
        "cat": ("die", "Katze"),
        "dog": ("der", "Hund"),
        "horse": ("das", "Pferd"),
        "bird": ("der", "Vogel"),
        "cow": ("die", "Kuh"),
        "rabbit": ("das", "Kaninchen"),
    },
    "colour": {"black": "schwarze", "white": "weiße", "brown": "braune", "grey": "graue"},
    "verb": {"sleep": "schläft", "eat": "frisst", "play": "spielt"},
    "place": {
        "kitchen": "in der Küche",
        "garden": "im Garten",
        "living_room": "im Wohnzimmer",
        "yard": "im Hof",
        "field": "auf dem Feld",
    },
    "manner": {"quietly": "leise", "peacefully": "friedlich"},
    "companion": {
        "child": "mit einem Kind",
        "girl": "mit einem Mädchen",
        "old_man": "mit einem alten Mann",
    },
}


def _render_de(f: Frame) -> str:
    lex = _DE
    article, noun = lex["animal"][f.animal]
    subj = "ein Tier" if f.hypernym else _join(article, _get(lex["colour"], f.colour), noun)
    nicht = "nicht" if f.negated else ""
    place, manner, comp = (_get(lex[k], getattr(f, k)) for k in ("place", "manner", "companion"))
    if f.form == "hungry":
        return _sentence(_join(subj, "hat Hunger"))
    if f.form == "locative":
        return _sentence(_join(subj, "ist", nicht, place))
    verb = lex["verb"][f.verb]
    if f.fronted:  # verb second: "In der Küche schläft die Katze ..."
        return _sentence(_join(place, verb, subj, manner, comp))
    return _sentence(_join(subj, verb, nicht, manner, comp, place))


# Spanish ------------------------------------------------------------------------------------

_ES = {
    "animal": {
        "cat": ("m", "gato"),
        "dog": ("m", "perro"),
        "horse": ("m", "caballo"),
        "bird": ("m", "pájaro"),
        "cow": ("f", "vaca"),
        "rabbit": ("m", "conejo"),
    },
    "colour": {
        "black": {"m": "negro", "f": "negra"},
        "white": {"m": "blanco", "f": "blanca"},
        "brown": {"m": "marrón", "f": "marrón"},
        "grey": {"m": "gris", "f": "gris"},
    },
    "verb": {"sleep": "duerme", "eat": "come", "play": "juega"},
    "place": {
        "kitchen": "en la cocina",
        "garden": "en el jardín",
        "living_room": "en la sala de estar",
        "yard": "en el patio",
        "field": "en el campo",
    },
    "manner": {"quietly": "en silencio", "peacefully": "tranquilamente"},
    "companion": {"child": "con un niño", "girl": "con una niña", "old_man": "con un anciano"},
}


def _render_es(f: Frame) -> str:
    lex = _ES
    gender, noun = lex["animal"][f.animal]
    colour = lex["colour"][f.colour][gender] if f.colour else ""
    subj = "un animal" if f.hypernym else _join("el" if gender == "m" else "la", noun, colour)
    no = "no" if f.negated else ""
    place, manner, comp = (_get(lex[k], getattr(f, k)) for k in ("place", "manner", "companion"))
    if f.form == "hungry":
        return _sentence(_join(subj, "tiene hambre"))
    if f.form == "locative":
        return _sentence(_join(subj, no, "está", place))
    verb = lex["verb"][f.verb]
    if f.fronted:
        return _sentence(_join(place + ",", subj, verb, manner, comp))
    return _sentence(_join(subj, no, verb, manner, place, comp))


# French -------------------------------------------------------------------------------------

_FR = {
    "animal": {
        "cat": ("m", "chat"),
        "dog": ("m", "chien"),
        "horse": ("m", "cheval"),
        "bird": ("m", "oiseau"),
        "cow": ("f", "vache"),
        "rabbit": ("m", "lapin"),
    },
    "colour": {
        "black": {"m": "noir", "f": "noire"},
        "white": {"m": "blanc", "f": "blanche"},
        "brown": {"m": "brun", "f": "brune"},
        "grey": {"m": "gris", "f": "grise"},
    },
    "verb": {"sleep": "dort", "eat": "mange", "play": "joue"},
    "place": {
        "kitchen": "dans la cuisine",
        "garden": "dans le jardin",
        "living_room": "dans le salon",
        "yard": "dans la cour",
        "field": "dans le champ",
    },
    "manner": {"quietly": "en silence", "peacefully": "paisiblement"},
    "companion": {
        "child": "avec un enfant",
        "girl": "avec une petite fille",
        "old_man": "avec un vieil homme",
    },
}


def _fr_subject(f: Frame) -> str:
    if f.hypernym:
        return "un animal"
    gender, noun = _FR["animal"][f.animal]
    colour = _FR["colour"][f.colour][gender] if f.colour else ""
    if noun[0] in "aeiouh":  # elision: l'oiseau
        return _join("l'" + noun, colour)
    return _join("le" if gender == "m" else "la", noun, colour)


def _render_fr(f: Frame) -> str:
    lex = _FR
    subj = _fr_subject(f)
    place, manner, comp = (_get(lex[k], getattr(f, k)) for k in ("place", "manner", "companion"))
    if f.form == "hungry":
        return _sentence(_join(subj, "a faim"))
    if f.form == "locative":
        return _sentence(_join(subj, "n'est pas" if f.negated else "est", place))
    verb = lex["verb"][f.verb]
    verb = f"ne {verb} pas" if f.negated else verb
    if f.fronted:
        return _sentence(_join(place + ",", subj, verb, manner, comp))
    return _sentence(_join(subj, verb, manner, place, comp))


# Russian (no articles; adjectives agree in gender; predicative short form for "hungry") -------

_RU = {
    "animal": {
        "cat": ("m", "кот"),
        "dog": ("f", "собака"),
        "horse": ("f", "лошадь"),
        "bird": ("f", "птица"),
        "cow": ("f", "корова"),
        "rabbit": ("m", "кролик"),
    },
    "colour": {
        "black": {"m": "чёрный", "f": "чёрная"},
        "white": {"m": "белый", "f": "белая"},
        "brown": {"m": "коричневый", "f": "коричневая"},
        "grey": {"m": "серый", "f": "серая"},
    },
    "hungry": {"m": "голоден", "f": "голодна"},
    "verb": {"sleep": "спит", "eat": "ест", "play": "играет"},
    "place": {
        "kitchen": "на кухне",
        "garden": "в саду",
        "living_room": "в гостиной",
        "yard": "во дворе",
        "field": "в поле",
    },
    "manner": {"quietly": "тихо", "peacefully": "спокойно"},
    "companion": {"child": "с ребёнком", "girl": "с девочкой", "old_man": "со стариком"},
}


def _render_ru(f: Frame) -> str:
    lex = _RU
    gender, noun = lex["animal"][f.animal]
    colour = lex["colour"][f.colour][gender] if f.colour else ""
    subj = "животное" if f.hypernym else _join(colour, noun)
    ne = "не" if f.negated else ""
    place, manner, comp = (_get(lex[k], getattr(f, k)) for k in ("place", "manner", "companion"))
    if f.form == "hungry":
        return _sentence(_join(subj, lex["hungry"][gender]))
    if f.form == "locative":  # "находится не на кухне" avoids the genitive of "нет"
        return _sentence(_join(subj, "находится", ne, place))
    verb = lex["verb"][f.verb]
    if f.fronted:  # "На кухне тихо спит чёрный кот."
        return _sentence(_join(place, manner, verb, subj, comp))
    return _sentence(_join(subj, manner, ne, verb, place, comp))


# Chinese (no spaces; classifier only in the existential "厨房里有一只猫在睡觉") ------------------

_ZH = {
    "animal": {
        "cat": ("只", "猫"),
        "dog": ("只", "狗"),
        "horse": ("匹", "马"),
        "bird": ("只", "鸟"),
        "cow": ("头", "牛"),
        "rabbit": ("只", "兔子"),
    },
    "colour": {"black": "黑色的", "white": "白色的", "brown": "棕色的", "grey": "灰色的"},
    "verb": {"sleep": "睡觉", "eat": "吃东西", "play": "玩耍"},
    "place": {
        "kitchen": "厨房里",
        "garden": "花园里",
        "living_room": "客厅里",
        "yard": "院子里",
        "field": "田野里",
    },
    "manner": {"quietly": "安静地", "peacefully": "平静地"},
    "companion": {"child": "和一个孩子一起", "girl": "和一个女孩一起", "old_man": "和一位老人一起"},
}


def _render_zh(f: Frame) -> str:
    lex = _ZH
    classifier, noun = lex["animal"][f.animal]
    colour = _get(lex["colour"], f.colour)
    subj = "一只动物" if f.hypernym else colour + noun
    place, manner, comp = (_get(lex[k], getattr(f, k)) for k in ("place", "manner", "companion"))
    at_place = "在" + place if place else ""
    if f.form == "hungry":
        return _sentence(subj + "饿了", "。")
    if f.form == "locative":
        return _sentence(_join(subj, "不" if f.negated else "", at_place, sep=""), "。")
    verb = lex["verb"][f.verb]
    if f.negated:  # progressive negation: "猫没有在厨房里睡觉" / "猫没有在睡觉"
        return _sentence(_join(subj, "没有", at_place or "在", verb, sep=""), "。")
    if f.fronted:  # existential: "厨房里有一只黑色的猫在睡觉"
        who = "一只动物" if f.hypernym else "一" + classifier + colour + noun
        return _sentence(_join(place, "有", who, "在", comp, manner, verb, sep=""), "。")
    if at_place:  # "在厨房里" already marks the ongoing action
        return _sentence(_join(subj, comp, at_place, manner, verb, sep=""), "。")
    return _sentence(_join(subj, "正在", comp, manner, verb, sep=""), "。")


# Arabic (verb and predicate agree with the subject's gender) -------------------------------

_AR = {
    "animal": {
        "cat": ("f", "القطة"),
        "dog": ("m", "الكلب"),
        "horse": ("m", "الحصان"),
        "bird": ("m", "الطائر"),
        "cow": ("f", "البقرة"),
        "rabbit": ("m", "الأرنب"),
    },
    "colour": {
        "black": {"m": "الأسود", "f": "السوداء"},
        "white": {"m": "الأبيض", "f": "البيضاء"},
        "brown": {"m": "البني", "f": "البنية"},
        "grey": {"m": "الرمادي", "f": "الرمادية"},
    },
    "verb": {
        "sleep": {"m": "ينام", "f": "تنام"},
        "eat": {"m": "يأكل", "f": "تأكل"},
        "play": {"m": "يلعب", "f": "تلعب"},
    },
    "hungry": {"m": "جائع", "f": "جائعة"},
    "not_be": {"m": "ليس", "f": "ليست"},
    "place": {
        "kitchen": "في المطبخ",
        "garden": "في الحديقة",
        "living_room": "في غرفة المعيشة",
        "yard": "في الفناء",
        "field": "في الحقل",
    },
    "manner": {"quietly": "بهدوء", "peacefully": "بسلام"},
    "companion": {"child": "مع طفل", "girl": "مع فتاة", "old_man": "مع رجل عجوز"},
}


def _render_ar(f: Frame) -> str:
    lex = _AR
    gender, noun = ("m", "حيوان") if f.hypernym else lex["animal"][f.animal]
    colour = lex["colour"][f.colour][gender] if f.colour else ""
    # An indefinite subject does not open a sentence: "هناك حيوان ينام ..." ("there is an animal").
    subj = "هناك حيوان" if f.hypernym else _join(noun, colour)
    place, manner, comp = (_get(lex[k], getattr(f, k)) for k in ("place", "manner", "companion"))
    if f.form == "hungry":
        return _sentence(_join(subj, lex["hungry"][gender]))
    if f.form == "locative":
        return _sentence(_join(subj, lex["not_be"][gender] if f.negated else "", place))
    verb = lex["verb"][f.verb][gender]
    if f.fronted:  # verb-subject order after a fronted place: "في المطبخ، تنام القطة"
        return _sentence(_join(place + "،", verb, "حيوان" if f.hypernym else subj, manner, comp))
    return _sentence(_join(subj, "لا" if f.negated else "", verb, manner, place, comp))


# Hindi (SOV, progressive "रहा/रही है" agrees with the subject's gender) -------------------------

_HI = {
    "animal": {
        "cat": ("f", "बिल्ली"),
        "dog": ("m", "कुत्ता"),
        "horse": ("m", "घोड़ा"),
        "bird": ("f", "चिड़िया"),
        "cow": ("f", "गाय"),
        "rabbit": ("m", "खरगोश"),
    },
    "colour": {
        "black": {"m": "काला", "f": "काली"},
        "white": {"m": "सफ़ेद", "f": "सफ़ेद"},
        "brown": {"m": "भूरा", "f": "भूरी"},
        "grey": {"m": "स्लेटी", "f": "स्लेटी"},
    },
    "verb": {"sleep": "सो", "eat": "खा", "play": "खेल"},
    "progressive": {"m": "रहा है", "f": "रही है"},
    "hungry": {"m": "भूखा", "f": "भूखी"},
    "place": {
        "kitchen": "रसोई में",
        "garden": "बगीचे में",
        "living_room": "बैठक में",
        "yard": "आँगन में",
        "field": "खेत में",
    },
    "manner": {"quietly": "चुपचाप", "peacefully": "शांति से"},
    "companion": {
        "child": "एक बच्चे के साथ",
        "girl": "एक लड़की के साथ",
        "old_man": "एक बूढ़े आदमी के साथ",
    },
}


def _render_hi(f: Frame) -> str:
    lex = _HI
    gender, noun = ("m", "जानवर") if f.hypernym else lex["animal"][f.animal]
    colour = lex["colour"][f.colour][gender] if f.colour else ""
    subj = "एक जानवर" if f.hypernym else _join(colour, noun)
    nahin = "नहीं" if f.negated else ""
    place, manner, comp = (_get(lex[k], getattr(f, k)) for k in ("place", "manner", "companion"))
    if f.form == "hungry":
        return _sentence(_join(subj, lex["hungry"][gender], "है"), "।")
    if f.form == "locative":
        return _sentence(_join(subj, place, nahin, "है"), "।")
    verb = _join(nahin, lex["verb"][f.verb], lex["progressive"][gender])
    if f.fronted:  # "रसोई में काली बिल्ली सो रही है।"
        return _sentence(_join(place, subj, comp, manner, verb), "।")
    return _sentence(_join(subj, comp, place, manner, verb), "।")


_RENDERERS: dict[str, Callable[[Frame], str]] = {
    "en": _render_en,
    "de": _render_de,
    "es": _render_es,
    "fr": _render_fr,
    "ru": _render_ru,
    "zh": _render_zh,
    "ar": _render_ar,
    "hi": _render_hi,
}


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def render(frame: Frame, language: str) -> str:
    """Render one meaning as a sentence in ``language``."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; valid: {', '.join(LANGUAGES)}")
    return _RENDERERS[language](frame)


def generate(language: str, split: str, n: int, seed: int = 0, train_part: str = "stage"
             ) -> list[dict]:
    """Return ``n`` rows ``{"premise", "hypothesis", "label"}`` for one language and split.

    Rows are a pure function of (split, n, seed, train_part) up to the language: row ``i`` is
    the same meaning and label in every language. Labels are balanced to within one per split.
    ``train_part`` picks what ``train`` means (common.PARTS): an intermediate stage's rows or a
    target's.
    """
    check_args(language, split, n, LANGUAGES, train_part)
    render_ = _RENDERERS[language]
    return [
        {"premise": render_(p), "hypothesis": render_(h), "label": label}
        for p, h, label in sample_frames(split, n, seed, train_part)
    ]


def to_dataset(rows: Sequence[dict]) -> datasets.Dataset:
    """Wrap rows from :func:`generate` as a ``datasets.Dataset`` with the XNLI features."""
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    return datasets.Dataset.from_dict(columns, features=FEATURES)
