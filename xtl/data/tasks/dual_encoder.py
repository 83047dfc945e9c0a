"""Dual-encoder retrieval TARGETS (XTREME-R's LAReQA and Mewsli-X): trained, then evaluated by
ranking a candidate pool (mAP@20).

One shared encoder embeds both sides by a masked mean over its last layer, L2-normalised (a
shared encoder as XTREME-R's; its released code pools the pooler's CLS output instead, with a
learned logit scale: docs/protocol.md). Training: each row pairs a query with its
relevant candidate; a batch of B pairs is one forward pass over 2B inputs, and the loss is the
cross-entropy of each query against all B candidates (in-batch negatives) on cosines /
`TEMPERATURE`; a batch-mate whose candidate IS the query's own (two questions answered by one
sentence) is masked out, not counted as a negative. The head has no parameters. With several
processes (`gpus_per_cell` > 1) each process embeds its share of the global batch and the
candidates of every process are gathered with their gradient (`dual_encoder_gather`), so each
query meets the whole global batch's negatives and the loss and gradients are those of one
process running the whole batch.

Canonical row: `{"id", "query", "query_context", "candidate", "candidate_context",
"candidate_id", "candidate_language", "gold": [candidate ids]}`. Each side is one text or a
(text, context) pair (the tokenizer's two segments). A row is
- a PAIR (training data, Mewsli-X's Wikipedia pairs): query and candidate, `gold` = [its id];
- a QUERY (evaluation): no candidate, `gold` = the relevant candidate ids;
- a CANDIDATE of the pool (evaluation): no query, `gold` = [].
A split's pool is every row with a candidate, one per `candidate_id` (first occurrence); its
queries are every row with a query. Training splits hold pairs only (so `train_sizes` counts
pairs); evaluation splits must give every query a relevant candidate that is in the pool.

Evaluation (`predict`): queries and the pool are embedded (`xtl.data.embeddings.embed`), the pool
once per encoder state (`xtl.data.embeddings.POOL_CACHE`: every language of a cell shares it), and
each query ranks the pool by exact chunked top-k; the prediction is the top 20 candidate ids.
Metric `map@20` (`xtl.evaluation.retrieval_metrics.map_at_k`, XTREME's AP@k: divided by
min(|relevant|, 20)).

Recipes: XTREME-R's scripts/train_lareqa.sh and train_mewslix.sh for XLM-R Large (below;
docs/protocol.md, which also lists where this module differs from XTREME-R's dual encoders:
pooling, temperature, one max length for both sides).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import datasets
import torch
from torch import nn

from xtl.core import chance as chance_levels
from xtl.core.errors import ConfigError, DataError
from xtl.core.hparams import Hparams
from xtl.data import embeddings, search
from xtl.data.readers import lareqa as lareqa_json
from xtl.data.readers import mewslix, squad_sentences
from xtl.data.tasks import Format, Task, register, register_format
from xtl.data.tasks.dual_encoder_gather import Gathered, gather_candidates

if TYPE_CHECKING:
    from xtl.data.sources import Split

FORMAT = "dual_encoder"
CANONICAL_FIELDS = ("query", "query_context", "candidate", "candidate_context", "candidate_id",
                    "candidate_language", "gold")
CANONICAL_FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    **{name: datasets.Value("string") for name in CANONICAL_FIELDS[:-1]},
    # Sequence (not List): also datasets 3.x, which the kit still allows
    "gold": datasets.Sequence(datasets.Value("string")),
})
TOP_K = 20  # the metric's cut-off: predictions are the top 20 candidates
TEMPERATURE = 0.05  # contrastive loss on cosine / T (the kit's choice; SimCSE-like)
BAR_FROM = 5000  # pools larger than this show a progress bar while embedded


def dataset(rows: list[dict] | dict[str, list]) -> datasets.Dataset:
    """Rows (a list of dicts, or columns) as a Dataset with the canonical features."""
    if isinstance(rows, dict) or not rows:  # from_list([]) cannot take features
        empty = {key: [] for key in CANONICAL_FEATURES}
        return datasets.Dataset.from_dict(rows or empty, features=CANONICAL_FEATURES)
    return datasets.Dataset.from_list(rows, features=CANONICAL_FEATURES)


def columns(rows: datasets.Dataset, names: tuple[str, ...] = tuple(CANONICAL_FEATURES)
            ) -> dict[str, list]:
    """Plain lists of `names`: datasets 4+ gives lazy `Column`s whose every `[i]` is a table
    lookup (seconds per 1,000 rows, minutes for a 1M-entity pool)."""
    return rows.select_columns(list(names))[:]


# --------------------------------------------------------------------------- canonical rows

def canonicalize(task: Task, raw: datasets.Dataset, split: str, language: str
                 ) -> tuple[datasets.Dataset, dict[str, int]]:
    """A reader's canonical rows, checked; or SQuAD-schema rows (id, question, context,
    answers) turned into question / answer-sentence pairs (`xtl.data.readers.squad_sentences`)."""
    where = f"{task.name}/{language}/{split}"
    columns = set(raw.column_names)
    if {"candidate_id", "gold"} <= columns:
        return _checked(raw.select_columns(list(CANONICAL_FEATURES)).cast(CANONICAL_FEATURES),
                        split, where)
    if {"id", "question", "context", "answers"} <= columns:
        rows, unusable = squad_sentences.pairs(raw["id"], raw["question"], raw["context"],
                                               raw["answers"], with_pool=split != "train")
        checked, dropped = _checked(dataset(rows), split, where)
        return checked, {**unusable, **dropped}
    raise DataError(f"{where}: expected dual-encoder rows ({', '.join(CANONICAL_FEATURES)}) or "
                    f"SQuAD-schema rows (id, question, context, answers); got {sorted(columns)}")


def _checked(rows: datasets.Dataset, split: str, where: str
             ) -> tuple[datasets.Dataset, dict[str, int]]:
    """Training: pairs only. Evaluation: queries with no relevant candidate are dropped and
    counted; every other gold id must be in the pool, and pool and queries non-empty."""
    cols = columns(rows)
    ids, queries, candidates = cols["id"], cols["query"], cols["candidate"]
    cids, golds = cols["candidate_id"], cols["gold"]
    for i, (cand, cid) in enumerate(zip(candidates, cids, strict=True)):
        if cand is not None and not cid:
            raise DataError(f"{where}: row {ids[i]!r} has a candidate but no candidate_id")
    if split == "train":
        bad = [ids[i] for i, (q, c, g, cid) in enumerate(zip(queries, candidates, golds, cids,
                                                             strict=True))
               if q is None or c is None or cid not in g]
        if bad:
            raise DataError(f"{where}: training rows must pair a query with its relevant "
                            f"candidate (gold holding candidate_id); rows {bad[:3]} do not")
        return rows, {}
    pool = {cid for cand, cid in zip(candidates, cids, strict=True) if cand is not None}
    if not pool:
        raise DataError(f"{where}: the candidate pool is empty (no row has a candidate)")
    keep, dropped = [], 0
    for i, (q, gold) in enumerate(zip(queries, golds, strict=True)):
        if q is not None and not gold:
            dropped += 1
            continue
        absent = [g for g in gold if g not in pool]
        if q is not None and absent:
            raise DataError(f"{where}: query {ids[i]!r} names relevant candidates {absent[:3]} "
                            f"that are not in the candidate pool ({len(pool)} candidates)")
        keep.append(i)
    if not any(queries[i] is not None for i in keep):
        raise DataError(f"{where}: no query has a relevant candidate ({dropped} dropped)")
    unusable = {"no relevant candidate (answer outside every sentence)": dropped} if dropped \
        else {}
    return (rows.select(keep) if dropped else rows), unusable


@dataclass
class View:
    """A split seen as retrieval: the query rows and the deduplicated candidate pool."""

    query_ids: list[str]
    queries: list[str]
    query_contexts: list[str | None]
    gold: list[list[str]]
    pool_ids: list[str]
    candidates: list[str]
    candidate_contexts: list[str | None]

    @classmethod
    def of(cls, rows: datasets.Dataset) -> View:
        cols = columns(rows)
        q_rows = [i for i, q in enumerate(cols["query"]) if q is not None]
        first: dict[str, int] = {}
        for i, (cand, cid) in enumerate(zip(cols["candidate"], cols["candidate_id"],
                                            strict=True)):
            if cand is not None and cid not in first:
                first[cid] = i
        pool = list(first.values())
        return cls([cols["id"][i] for i in q_rows], [cols["query"][i] for i in q_rows],
                   [cols["query_context"][i] for i in q_rows], [cols["gold"][i] for i in q_rows],
                   list(first), [cols["candidate"][i] for i in pool],
                   [cols["candidate_context"][i] for i in pool])

    def pool_fingerprint(self) -> str:
        digest = hashlib.sha256()
        for cid, text, ctx in zip(self.pool_ids, self.candidates, self.candidate_contexts,
                                  strict=True):
            digest.update(f"{cid}\x1f{text}\x1f{ctx}\x1e".encode())
        return digest.hexdigest()


def chance(rows: datasets.Dataset) -> float:
    """Expected mAP@20 (0-100) of a random ranking of the pool, averaged over the queries
    (each with its own number of relevant candidates)."""
    view = View.of(rows)
    pool = len(view.pool_ids)
    return sum(chance_levels.map_at_k(pool, len(g), TOP_K) for g in view.gold) / len(view.gold)


def example_ids(rows: datasets.Dataset) -> list[str]:
    """The ids of the rows that are scored (the queries), aligned with `predict`."""
    cols = columns(rows, ("id", "query"))
    return [i for i, q in zip(cols["id"], cols["query"], strict=True) if q is not None]


def references(rows: datasets.Dataset) -> list[list[str]]:
    """Each query's relevant candidate ids, aligned with `predict`."""
    cols = columns(rows, ("gold", "query"))
    return [g for g, q in zip(cols["gold"], cols["query"], strict=True) if q is not None]


# --------------------------------------------------------------------------- model side

def _key(candidate_id: str) -> int:
    """A 63-bit integer for a candidate id: equal ids in a batch are the same candidate."""
    return int.from_bytes(hashlib.sha1(candidate_id.encode()).digest()[:8], "big") >> 1


def featurize(batch: dict[str, list], tokenizer: Any, hp: Hparams, train: bool = False
              ) -> dict[str, list]:
    """Token ids of both sides of each pair: the query's as `input_ids` (what length grouping
    reads), the candidate's as `cand_*`, and `cand_key` to spot repeated candidates."""
    ids = batch["id"]
    bad = [ids[i] for i, (q, c) in enumerate(zip(batch["query"], batch["candidate"],
                                                 strict=True)) if q is None or c is None]
    if bad:
        raise DataError(f"dual-encoder features need (query, candidate) pairs; rows {bad[:3]} "
                        "lack one (evaluation splits are ranked by `predict`, not featurised)")
    prefix, limit = hp.input_prefix, hp.max_length
    query = embeddings.encode_texts(tokenizer, batch["query"], batch["query_context"], prefix,
                                    limit)
    cand = embeddings.encode_texts(tokenizer, batch["candidate"], batch["candidate_context"],
                                   prefix, limit)
    return {**query, **{f"cand_{k}": v for k, v in cand.items()},
            "cand_key": [_key(c) for c in batch["candidate_id"]]}


def collator(tokenizer: Any) -> Callable[[list[dict]], dict]:
    """B pairs -> one padded batch of 2B inputs (queries first) and `cand_key` [B]."""

    def collate(features: list[dict]) -> dict:
        keys = [k for k in features[0] if not k.startswith("cand_")]
        sides = [{k: f[k] for k in keys} for f in features] + \
                [{k: f[f"cand_{k}"] for k in keys} for f in features]
        batch = dict(tokenizer.pad(sides, return_tensors="pt"))
        batch["cand_key"] = torch.tensor([f["cand_key"] for f in features], dtype=torch.long)
        return batch

    return collate


class MeanPoolHead(nn.Module):
    """Masked mean of the last layer, L2-normalised: the embedding of every input row."""

    def forward(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = embeddings.pool(hidden.float(), batch["attention_mask"], "mean")
        return nn.functional.normalize(pooled, dim=-1)


def make_head(task: Task, hidden_size: int) -> nn.Module:
    return MeanPoolHead()


# What `xtl.training.train_data.micro_batches` adds to a process's stand-in batch (its share of a
# global batch was empty, so it runs one row with loss weight 0): those rows are no one's negatives.
STAND_IN = "stand_in"


def loss(logits: torch.Tensor, batch: dict[str, torch.Tensor],
         gather: Callable[[torch.Tensor, torch.Tensor], Gathered] = gather_candidates
         ) -> torch.Tensor:
    """In-batch-negatives cross-entropy of each query over the batch's candidates: with
    several processes, over every process's candidates (`gather`), so the negatives and the
    loss are those of the whole global batch."""
    keys = batch["cand_key"]
    n = keys.shape[0]
    queries, candidates = logits[:n], logits[n:]
    if STAND_IN in batch:  # weight 0: its rows join the gather as nothing, then score locally
        pool, pool_keys, _ = gather(candidates[:0], keys[:0])
        pool, pool_keys = torch.cat([pool, candidates]), torch.cat([pool_keys, keys])
        start = pool.shape[0] - n
    else:
        pool, pool_keys, start = gather(candidates, keys)
    own = torch.arange(start, start + n, device=keys.device)
    sims = queries @ pool.T / TEMPERATURE
    # a batch-mate with this query's own candidate is not a negative
    same = keys[:, None] == pool_keys[None, :]
    same[torch.arange(n, device=keys.device), own] = False
    sims = sims.masked_fill(same, float("-inf"))
    return nn.functional.cross_entropy(sims, own)


def decode(*_: Any) -> Any:
    raise ConfigError("dual-encoder tasks are evaluated by ranking (predict), not decoded")


@torch.inference_mode()
def predict(model: Any, tokenizer: Any, task: Task, split: Split, hp: Hparams,
            precision: str = "fp32") -> list[list[str]]:
    """Each query's top-20 candidate ids (best first; ties to the earlier pool row)."""
    view = View.of(split.rows)
    if not view.queries or not view.pool_ids:
        raise DataError(f"{task.name}/{split.language}/{split.split}: {len(view.queries)} "
                        f"queries and {len(view.pool_ids)} candidates; both must be non-empty")
    encoder = model.encoder
    device = next(encoder.parameters()).device

    def embed(texts: list[str], pairs: list[str | None], desc: str | None) -> torch.Tensor:
        return embeddings.embed(encoder, tokenizer, texts, hp.input_prefix, "mean", -1,
                                2 * hp.batch_size, max_length=hp.max_length,
                                precision=precision, pairs=pairs, desc=desc)

    key = (view.pool_fingerprint(), hp.input_prefix, hp.max_length, precision)
    shown = f"embed {len(view.pool_ids):,} candidates" if len(view.pool_ids) > BAR_FROM else None
    pool = embeddings.POOL_CACHE.get(
        encoder, key, lambda: embed(view.candidates, view.candidate_contexts, shown))
    queries = embed(view.queries, view.query_contexts, None)
    _, rows = search.knn(queries, pool, TOP_K, backend="torch", device=device)
    return [[view.pool_ids[j] for j in ranked] for ranked in rows.tolist()]


@register_format
class DualEncoder(Format):
    """Queries and candidates embedded apart; each query's top-20 candidates by cosine."""

    name, canonical_fields = FORMAT, CANONICAL_FIELDS
    canonicalize = staticmethod(canonicalize)
    featurize = staticmethod(featurize)
    collator = staticmethod(collator)
    make_head = staticmethod(make_head)
    loss = staticmethod(loss)
    decode = staticmethod(decode)
    predict = staticmethod(predict)
    references = staticmethod(references)
    example_ids = staticmethod(example_ids)
    chance = staticmethod(chance)


# --------------------------------------------------------------------------- tasks

LAREQA_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
MEWSLIX_LANGUAGES = ("ar", "de", "en", "es", "fa", "ja", "pl", "ro", "ta", "tr", "uk")
# XTREME-R's scripts/train_lareqa.sh (docs/protocol.md): lr 2e-5, 3 epochs, batch 4 x 4, no
# warmup, no weight decay, answers (sentence + paragraph) up to 256 tokens (questions: 96; the
# kit has one max length for both).
LAREQA_RECIPE = {"learning_rate": 2e-5, "epochs": 3, "max_length": 256, "batch_size": 16,
                 "warmup_ratio": 0.0, "weight_decay": 0.0}
# XTREME-R's scripts/train_mewslix.sh for XLM-R Large: lr 1e-5 (mBERT: 2e-5), 2 epochs, max
# sequence length 64, batch 8 x 4, no warmup, no weight decay.
MEWSLIX_RECIPE = {"learning_rate": 1e-5, "epochs": 2, "max_length": 64, "batch_size": 32,
                  "warmup_ratio": 0.0, "weight_decay": 0.0}


def _mentions_reader(folder: Any, split: str, language: str) -> tuple[datasets.Dataset, list]:
    columns, files = mewslix.read_mentions(folder, split, language)
    return dataset(columns), files


def _pairs_reader(folder: Any, split: str, language: str) -> tuple[datasets.Dataset, list]:
    rows, files = mewslix.read_pairs(folder, split, language)
    return dataset(rows), files


def _lareqa_reader(pool_languages: tuple[str, ...]) -> Callable:
    read = lareqa_json.reader(pool_languages)

    def typed(folder: Any, split: str, language: str) -> tuple[datasets.Dataset, list]:
        rows, files = read(folder, split, language)
        return dataset(rows), files

    return typed


def lareqa_task(languages: tuple[str, ...] = LAREQA_LANGUAGES, name: str = "lareqa") -> Task:
    """LAReQA over XQuAD-R in `languages` (each language's questions against all of their
    sentences); the registered task has the 11, a test may take the languages it has."""
    return Task(
        name=name,
        format=FORMAT,
        languages=languages,
        # XQuAD-R has one set of questions (1,190 per language); XTREME-R reports it as test
        splits={"validation": "validation", "test": "validation"},
        metric="map@20",
        train_task="squad-sentences",
        raw_reader=_lareqa_reader(languages),
        raw_files=lareqa_json.pool_files(languages),
        raw_path="lareqa/xquad-r",
        hparams=LAREQA_RECIPE,
        description="LAReQA (XQuAD-R): answer-sentence retrieval from an 11-language pool; "
                    "dual encoder trained on SQuAD v1.1; mAP@20",
    )


register(lareqa_task())

register(Task(
    name="squad-sentences",
    format=FORMAT,
    languages=("en",),
    # the rows of the `squad` task, split into sentences here (xtl.data.readers.squad_sentences)
    hub_id="rajpurkar/squad",
    config="plain_text",
    splits={"train": "train", "validation": "validation"},
    metric="map@20",
    hparams=LAREQA_RECIPE,
    description="SQuAD v1.1 question -> answer sentence (with its paragraph) pairs: LAReQA's "
                "English training data; dev = retrieval among all SQuAD dev sentences",
))

register(Task(
    name="mewslix",
    format=FORMAT,
    languages=MEWSLIX_LANGUAGES,
    splits={"validation": "validation", "test": "test"},
    metric="map@20",
    train_task="mewslix-wikipedia",
    raw_reader=_mentions_reader,
    raw_files=mewslix.mention_files,
    raw_path="mewslix",
    hparams=MEWSLIX_RECIPE,
    description="Mewsli-X entity linking: WikiNews mentions against the ~1M-entity candidate "
                "set (50 description languages); trained on English Wikipedia pairs; mAP@20",
))

register(Task(
    name="mewslix-wikipedia",
    format=FORMAT,
    languages=("en",),
    splits={"train": "train", "validation": "validation"},
    metric="map@20",
    raw_reader=_pairs_reader,
    raw_files=mewslix.pair_files,
    raw_path="mewslix",
    hparams=MEWSLIX_RECIPE,
    description="Mewsli-X English Wikipedia mention-entity pairs (training data of mewslix); "
                "dev = retrieval among the dev pairs' own entities",
))
