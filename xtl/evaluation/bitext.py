"""Tatoeba and BUCC on embeddings: the sentences of a bitext, top-1 pair search both ways, and
BUCC's margin-based mining.

The protocol (Hu et al. 2020, section 2; XTREME's `third_party/utils_retrieve.py`):
- Tatoeba: the top-1 neighbour by cosine, in both directions. XTREME's number is en->xx: it
  indexes the foreign sentences and queries with each English one (`utils_retrieve.
  similarity_search(x=foreign, y=English)`); xx->en and the mean of the two are reported
  beside it. A hit is right only at the query's own row: a duplicate sentence elsewhere is a
  miss (as the official line-index comparison).
- BUCC: margin-based mining (`margin_mine`): k = 4 neighbours each way, ratio margin, forward
  and backward candidates pooled, greedy one-to-one in descending score, pairs scoring above 0
  kept; identical sentences of one side are embedded once and a candidate whose sentence
  occurs more than once on its side cannot be given an id and is dropped (the official reader
  does both). Scoring: `xtl.evaluation.metrics` -- on `validation` (the sample part) the threshold
  is tuned on its own gold (the official dev protocol, an oracle); on `test` (the training part)
  the dev-tuned threshold is applied (`xtl.evaluation.retrieval_metrics.bucc_dev_test`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from xtl.core.errors import DataError
from xtl.data.search import knn
from xtl.evaluation import metrics

BUCC_NEIGHBOURS = 4


@dataclass
class Bitext:
    """Source (non-English) and target (English) sentences with ids, and the gold pairs."""

    source_ids: list[str]
    source: list[str]
    target_ids: list[str]
    target: list[str]
    gold: list[tuple[str, str]]

    @property
    def aligned(self) -> bool:
        """Row i of the source is the translation of row i of the target (Tatoeba)."""
        return (self.source_ids == self.target_ids
                and self.gold == list(zip(self.source_ids, self.target_ids, strict=True)))


def bitext(rows: Any) -> Bitext:
    """The two sides and the gold pairs of canonical retrieval rows (data/tasks/retrieval.py)."""
    ids, sources, targets, golds = rows["id"], rows["source"], rows["target"], rows["gold"]
    src = [(i, s, g) for i, s, g in zip(ids, sources, golds, strict=True) if s is not None]
    tgt = [(i, t) for i, t in zip(ids, targets, strict=True) if t is not None]
    if not src or not tgt:
        raise DataError(f"retrieval rows need sentences on both sides ({len(src)} source, "
                        f"{len(tgt)} target)")
    return Bitext([i for i, _, _ in src], [s for _, s, _ in src], [i for i, _ in tgt],
                  [t for _, t in tgt], [(i, t) for i, _, g in src for t in g])


# --------------------------------------------------------------------------- Tatoeba

@dataclass
class PairSearch:
    """Top-1 hits of every aligned pair in both directions: the retrieved row ids and their
    cosines, per direction ("en_xx": the English sentence of row i queries the foreign ones)."""

    ids: list[str]
    hits: dict[str, list[str]]
    cosines: dict[str, list[float]]

    def accuracy(self, direction: str) -> float:
        return metrics.accuracy(self.hits[direction], self.ids)


def pair_search(pairs: Bitext, source: torch.Tensor, target: torch.Tensor, *,
                backend: str = "torch", device: Any = None) -> PairSearch:
    """Top-1 retrieval in both directions over aligned pairs (source/target embeddings)."""
    if not pairs.aligned:
        raise DataError("top-1 retrieval accuracy needs aligned pair rows (row i of each side "
                        "translates the other); these rows are a comparable corpus (use mining)")
    hits, cosines = {}, {}
    for direction, (queries, index, ids) in {"en_xx": (target, source, pairs.source_ids),
                                             "xx_en": (source, target, pairs.target_ids)}.items():
        sims, rows = knn(queries, index, 1, backend=backend, device=device)
        hits[direction] = [ids[r] for r in rows[:, 0].tolist()]
        cosines[direction] = sims[:, 0].tolist()
    return PairSearch(list(pairs.source_ids), hits, cosines)


# --------------------------------------------------------------------------- BUCC mining

def _margins(sims: torch.Tensor, rows: torch.Tensor, own_mean: torch.Tensor,
             other_mean: torch.Tensor) -> torch.Tensor:
    """Ratio margin of each candidate: cos / ((mean knn cos of query + of candidate) / 2)."""
    return sims / ((own_mean[:, None] + other_mean[rows]) / 2)


def margin_mine(x: torch.Tensor, y: torch.Tensor, k: int = BUCC_NEIGHBOURS,
                threshold: float = 0.0, *, backend: str = "torch", device: Any = None
                ) -> list[tuple[int, int, float]]:
    """Mined (x row, y row, margin score) pairs, best first (LASER/XTREME `mine_bitext`,
    mode "mine", retrieval "max", margin "ratio").

    Each x takes its best y among its k nearest by margin (forward), each y its best x
    (backward); both lists are pooled and walked in descending score, keeping a pair only if
    neither sentence is used yet (greedy one-to-one); pairs above `threshold` are returned.
    Equal scores keep the pooled order (forward first, then by row): the official unstable
    sort leaves that order undefined.
    """
    fwd_sims, fwd_rows = knn(x, y, k, backend=backend, device=device)
    bwd_sims, bwd_rows = knn(y, x, k, backend=backend, device=device)
    x_mean, y_mean = fwd_sims.mean(1), bwd_sims.mean(1)
    fwd_score, fwd_pick = _margins(fwd_sims, fwd_rows, x_mean, y_mean).max(1)
    bwd_score, bwd_pick = _margins(bwd_sims, bwd_rows, y_mean, x_mean).max(1)
    src = torch.cat([torch.arange(len(x)), bwd_rows.gather(1, bwd_pick[:, None])[:, 0]])
    trg = torch.cat([fwd_rows.gather(1, fwd_pick[:, None])[:, 0], torch.arange(len(y))])
    scores = torch.cat([fwd_score, bwd_score])
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    src_l, trg_l, score_l = src.tolist(), trg.tolist(), scores.tolist()
    used_src, used_trg, mined = set(), set(), []
    for p in order:
        s, t = src_l[p], trg_l[p]
        if s in used_src or t in used_trg:
            continue
        used_src.add(s)
        used_trg.add(t)
        if score_l[p] > threshold:
            mined.append((s, t, score_l[p]))
    return mined


@dataclass
class Side:
    """One side of a comparable corpus with identical sentences merged (embedded once).

    `ids[u]` is the id of unique sentence u, or None when it occurs more than once: the
    official candidate reader maps text back to ids and drops repeated texts.
    """

    texts: list[str]
    ids: list[str | None]

    @classmethod
    def of(cls, ids: Sequence[str], texts: Sequence[str]) -> Side:
        first: dict[str, int] = {}
        out_ids: list[str | None] = []
        for sid, text in zip(ids, texts, strict=True):
            if text in first:
                out_ids[first[text]] = None
            else:
                first[text] = len(out_ids)
                out_ids.append(sid)
        return cls(list(first), out_ids)


@dataclass
class Mined:
    """Scored candidates {(source id, target id): margin} in mining order, and what was lost."""

    candidates: dict[tuple[str, str], float]
    dropped: int  # mined pairs whose sentence is repeated on its side (no id)
    sentences: tuple[int, int]  # unique sentences per side


def mine(source: Side, target: Side, x: torch.Tensor, y: torch.Tensor, *,
         k: int = BUCC_NEIGHBOURS, backend: str = "torch", device: Any = None) -> Mined:
    """Margin mining over the unique sentences' embeddings, mapped back to sentence ids."""
    candidates, dropped = {}, 0
    for s, t, score in margin_mine(x, y, k, backend=backend, device=device):
        sid, tid = source.ids[s], target.ids[t]
        if sid is None or tid is None:
            dropped += 1
            continue
        candidates[sid, tid] = max(score, candidates.get((sid, tid), score))
    return Mined(candidates, dropped, (len(source.texts), len(target.texts)))


