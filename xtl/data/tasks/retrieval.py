"""Sentence retrieval (Tatoeba, BUCC 2018): no training, the encoder is evaluated directly.

Canonical row: `{"id": str, "source": str | None, "target": str | None, "gold": [str]}`.
`source` is the non-English sentence, `target` the English one. A row holds either
- an ALIGNED PAIR (Tatoeba): both sentences; `id` names the pair and both of its sides, and
  `gold` is `[id]`; or
- ONE SENTENCE of a comparable corpus (BUCC): `source` or `target` is None, `id` is the
  release's sentence id, and a source row's `gold` lists the ids of the target rows that are
  its translations (empty for most sentences; always empty on target rows).
So both tasks are one table: the source sentences are the rows with a `source`, the targets
the rows with a `target`, and the gold pairs are (row id, each id in `gold`) of source rows.
`xtl.evaluation.bitext.bitext` turns the rows into those two lists and the gold pairs.

Splits: Tatoeba has one set of 1,000 pairs (fewer for 8 languages), the Hub's `validation`;
XTREME reports it as test, so both canonical split names read it. BUCC: `validation` = the
release's `sample` part, `test` = `training` (XTREME's own mapping, docs/data.md section 2).

The retrieval representation (layer, pooling) is part of each task's recipe, below: jiant's
X-STILTs setting, a masked mean over layer 14 of XLM-R Large's 24 (docs/protocol.md),
written as a fraction of depth so that a 12-layer model uses its layer 7 (XTREME's base-model
layer). A preset's layer and pooling beat these (e5 is trained for its last layer);
the experiment file beats both. `tatoeba_r` is XTREME-R's Tatoeba: after a SQuAD stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import datasets

from xtl.core.errors import ConfigError, DataError
from xtl.core.hparams import Spec, one_of
from xtl.data.readers import bucc, tatoeba
from xtl.data.tasks import Format, Task, register, register_format
from xtl.offline.synth import dataset_generator

FORMAT = "retrieval"
CANONICAL_FIELDS = ("source", "target", "gold")
CANONICAL_FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "source": datasets.Value("string"),
    "target": datasets.Value("string"),
    # Sequence (not List): also datasets 3.x, which the kit still allows
    "gold": datasets.Sequence(datasets.Value("string")),
})
# jiant's layer 14 of XLM-R Large's 24 (hidden_states[14]) as a fraction of depth.
PAPER_LAYER = 14 / 24
RECIPE = {"layer": PAPER_LAYER, "pooling": "mean", "max_length": 512}


# --------------------------------------------------------------------------- no training

def _not_trained(*_: Any, **__: Any) -> Any:
    raise ConfigError("retrieval tasks (Tatoeba, BUCC) are not trained: the encoder is "
                      "evaluated directly by xtl.cells.retrieval (notebooks/retrieval.ipynb)")


featurize = collator = make_head = loss = decode = _not_trained


# --------------------------------------------------------------------------- canonical rows

def canonicalize(task: Task, raw: datasets.Dataset, split: str, language: str
                 ) -> tuple[datasets.Dataset, dict[str, int]]:
    """Aligned pairs from a Hub-schema table (Tatoeba), or sentence rows checked as they are
    (a reader that already yields the canonical columns, BUCC). Sentences are stripped: the
    Hub keeps Tatoeba's trailing "\\n", and XTREME strips every line before embedding."""
    if "gold" in raw.column_names:
        return _checked_sentences(task, raw, split, language), {}
    return _pairs(task, raw, split, language), {}


def _pairs(task: Task, raw: datasets.Dataset, split: str, language: str) -> datasets.Dataset:
    cols = {canon: task.fields.get(canon, canon) for canon in ("source", "target")}
    missing = [c for c in cols.values() if c not in raw.column_names]
    if missing:
        raise DataError(f"{task.name}/{language}/{split}: columns {missing} missing; the source "
                        f"has {raw.column_names}")
    id_col, prefix = task.fields.get("id"), f"{language}-{split}-"

    def convert(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        ids = ([str(i) for i in batch[id_col]] if id_col
               else [f"{prefix}{i:07d}" for i in indices])
        return {"id": ids, "source": [s.strip() for s in batch[cols["source"]]],
                "target": [t.strip() for t in batch[cols["target"]]], "gold": [[i] for i in ids]}

    return raw.map(convert, batched=True, with_indices=True, remove_columns=raw.column_names,
                   features=CANONICAL_FEATURES, desc=f"{task.name}/{language}/{split}")


def _checked_sentences(task: Task, raw: datasets.Dataset, split: str, language: str
                       ) -> datasets.Dataset:
    where = f"{task.name}/{language}/{split}"
    rows = raw.select_columns(["id", "source", "target", "gold"]).cast(CANONICAL_FEATURES)
    ids, sources, targets = rows["id"], rows["source"], rows["target"]
    for side, texts in (("source", sources), ("target", targets)):
        seen = [i for i, text in zip(ids, texts, strict=True) if text is not None]
        if len(set(seen)) != len(seen):
            raise DataError(f"{where}: repeated {side} sentence ids")
    target_ids = {i for i, text in zip(ids, targets, strict=True) if text is not None}
    stray = {g for gold in rows["gold"] for g in gold} - target_ids
    if stray:
        raise DataError(f"{where}: gold ids {sorted(stray)[:3]} are not target sentences")
    return rows.map(lambda b: {"source": [s.strip() if s is not None else None
                                          for s in b["source"]],
                               "target": [t.strip() if t is not None else None
                                          for t in b["target"]]},
                    batched=True, features=CANONICAL_FEATURES, desc=where)


# Sentence embeddings (xtl.data.embeddings); a model preset sets them (e5: last layer, mean).
POOLING = Spec("pooling", "mean", (str,), 'sentence embeddings: "mean" (masked) or "cls"',
               one_of(("mean", "cls")), per_task=True, intrinsic=True)
LAYER = Spec("layer", -1, (int, float),
             "layer embedded: an index (-1 = last) or a fraction of depth (0.5 = middle)",
             per_task=True, intrinsic=True)


@register_format
class Retrieval(Format):
    """Sentence retrieval with the encoder as it is (xtl.cells.retrieval): never trained."""

    name, canonical_fields = FORMAT, CANONICAL_FIELDS
    hparams = (POOLING, LAYER)
    canonicalize = staticmethod(canonicalize)
    featurize = staticmethod(featurize)
    collator = staticmethod(collator)
    make_head = staticmethod(make_head)
    loss = staticmethod(loss)
    decode = staticmethod(decode)


# --------------------------------------------------------------------------- tasks

@dataclass(frozen=True)
class MappedConfigTask(Task):
    """A task whose Hub config per language comes from a table, not from `config`'s pattern
    (Tatoeba: XTREME's code `de` is the Hub config `tatoeba.deu`)."""

    configs: Mapping[str, str] = field(default_factory=dict)

    def hub_config(self, language: str) -> str:
        return self.configs.get(language, super().hub_config(language))


XTREME_TATOEBA = ("af", "ar", "bg", "bn", "de", "el", "es", "et", "eu", "fa", "fi", "fr", "he",
                  "hi", "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "nl", "pt",
                  "ru", "sw", "ta", "te", "th", "tl", "tr", "ur", "vi", "zh")
XTREME_R_EXTRA = ("az", "lt", "pl", "ro", "uk")

tatoeba_task = register(MappedConfigTask(
    name="tatoeba",
    format=FORMAT,
    # XTREME's 36 (docs/data.md section 2) + XTREME-R's 5 (section 3), XTREME's two-letter codes
    languages=tuple(sorted(XTREME_TATOEBA + XTREME_R_EXTRA)),
    hub_id="google/xtreme",
    configs={lang: f"tatoeba.{tatoeba.ISO3[lang]}" for lang in XTREME_TATOEBA},
    # one set of pairs; XTREME reports it as test (Hu et al. 2020: "no separate test set")
    splits={"validation": "validation", "test": "validation"},
    fields={"source": "source_sentence", "target": "target_sentence"},
    # the XTREME-R languages are not google/xtreme configs: LASER's release files
    hub_languages=XTREME_TATOEBA,
    raw_reader=tatoeba.read,
    raw_files=tatoeba.files,
    raw_path="tatoeba/v1",
    metric="accuracy",
    hparams=RECIPE,
    description="Tatoeba sentence retrieval (XTREME 36 + XTREME-R 5 languages, each with "
                "English); no training; top-1 accuracy",
))

# XTREME-R's protocol: the encoder is fine-tuned on SQuAD v1.1 before retrieval (Ruder et al.
# 2021; docs/protocol.md): after the intermediate stages, a SQuAD stage with XTREME-R's recipe
# (`squad_xtreme_r`), then the same retrieval from that checkpoint's encoder.
register(replace(
    tatoeba_task,
    name="tatoeba_r",
    train_prelude=("squad_xtreme_r",),
    description="Tatoeba as XTREME-R evaluates it: retrieval from an encoder fine-tuned on "
                "SQuAD v1.1 (after any intermediate stages); 41 languages; top-1 accuracy",
))

# Real Tatoeba pairs shipped with xtl (xtl/offline/samples/README.md): the first 300 pairs of
# five languages in four scripts, read by the LASER release reader.
register(Task(
    name="tatoeba-sample",
    format=FORMAT,
    languages=("de", "ar", "hi", "zh", "sw"),
    splits={"validation": "validation", "test": "validation"},
    fields={"source": "source_sentence", "target": "target_sentence"},
    raw_reader=tatoeba.read,
    raw_files=tatoeba.files,
    raw_path="tatoeba",
    bundled=True,
    metric="accuracy",
    hparams=RECIPE,
    description="Tatoeba retrieval, a real sample shipped with xtl (300 pairs of de ar hi zh "
                "sw with English); no training; top-1 accuracy; offline",
))

register(Task(
    name="bucc2018",
    format=FORMAT,
    languages=("de", "fr", "ru", "zh"),
    # raw release files only: the Hub copy lacks the corpora (docs/data.md section 2)
    splits=dict(bucc.PARTS),
    raw_reader=bucc.read,
    raw_files=bucc.files,
    raw_path="bucc2018",
    metric="bucc_f1",
    hparams=RECIPE,
    description="BUCC 2018 bitext mining (margin-based, threshold tuned on the sample part); "
                "no training; F1",
))

register(Task(
    name="synth-retrieval",
    format=FORMAT,
    languages=("de", "es", "fr", "ru", "zh", "ar", "hi"),
    splits={"validation": "validation", "test": "test"},
    fields={"source": "source_sentence", "target": "target_sentence"},
    metric="accuracy",
    generator=dataset_generator("retrieval"),
    # validation is what the CPU demo embeds (3 checkpoints x 8 x 200 sentences); test keeps
    # Tatoeba's 1,000 pairs per language
    sizes={"validation": 200, "test": 1000},
    hparams=RECIPE,
    description="Synthetic sentence retrieval (xtl.offline.synth.retrieval) in the Tatoeba schema",
))
