"""Sentence retrieval with an encoder as it is: embeddings, cosine search, Tatoeba and BUCC.

The protocol, pinned here (Hu et al. 2020, section 2; XTREME's `third_party/utils_retrieve.py`):
- Representation: `hidden_states[i]` of the encoder (0 = the embedding layer, n = the last of
  n blocks). `layer` is an index (negative counts from the end: -1 = last) or a FRACTION of
  depth, i = round(f * n): the tasks' recipe 14/24 is jiant's `hidden_states[14]` of XLM-R
  Large and block 7 of a 12-layer model (XTREME's base-model layer). Pooling: masked mean over
  every non-pad token, `<s>` and `</s>` included (jiant's MeanPoolerHead), or the first token
  ("cls"); then L2-normalised, so the inner product is the cosine.
- Tatoeba: the top-1 neighbour by cosine, in both directions. XTREME's number is en->xx: it
  indexes the foreign sentences and queries with each English one (`utils_retrieve.
  similarity_search(x=foreign, y=English)`); xx->en and the mean of the two are reported
  beside it. A hit is right only at the query's own row: a duplicate sentence elsewhere is a
  miss (as the official line-index comparison).
- BUCC: margin-based mining (`margin_mine`): k = 4 neighbours each way, ratio margin, forward
  and backward candidates pooled, greedy one-to-one in descending score, pairs scoring above 0
  kept; identical sentences of one side are embedded once and a candidate whose sentence
  occurs more than once on its side cannot be given an id and is dropped (the official reader
  does both). Scoring: `xtl.metrics` -- on `validation` (the sample part) the threshold is
  tuned on its own gold (the official dev protocol, an oracle); on `test` (the training part)
  the dev-tuned threshold is applied (`metrics.bucc_dev_test`).

Search is exact inner product in torch, streaming the index in `INDEX_CHUNK`-row chunks
(each read and moved to the device once; a memory-mapped pool from `load_embeddings` never
has to fit in memory) against the queries in `QUERY_CHUNK`s, with a running top-k (memory:
one `QUERY_CHUNK x INDEX_CHUNK` block of similarities); or faiss (`IndexFlatIP`) where it is
importable and the search runs on the CPU; ties go to the lower index in torch.

Dual-encoder targets (xtl/tasks/dual_encoder.py: LAReQA, Mewsli-X) use the same pieces:
`embed` with a second segment per text (`pairs`), tokenised chunk by chunk, and
`POOL_CACHE`, which keeps one candidate pool's embeddings for as long as the encoder's
weights do not change, so the languages of a cell share one encoding of the pool.

`start(...)` opens a retrieval cell for notebooks/retrieval.ipynb: it loads the encoder (the
base model or an intermediate checkpoint's `encoder/`), evaluates each language and writes
metrics.json and predictions through `xtl.phases.CellRun` (kind "target" until the phases
module knows "retrieval").
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from xtl import metrics, shortcuts, zoo
from xtl.errors import ConfigError, DataError, unknown
from xtl.precision import autocast
from xtl.progress import bar as progress_bar

Layer = int | float
QUERY_CHUNK = 1024
INDEX_CHUNK = 32768
TOKENIZE_CHUNK = 8192
BUCC_NEIGHBOURS = 4
DIRECTIONS = {"en_xx": "English query, foreign index (XTREME's number)",
              "xx_en": "foreign query, English index"}
# Why a preset's own layer is the one to retrieve with (Wang et al. 2024 for e5).
MODEL_LAYERS = {"multilingual-e5-small": "e5 is trained as a sentence embedder on the mean of "
                "its LAST layer (with a 'query: ' prefix), which is how its users retrieve"}


# --------------------------------------------------------------------------- embeddings

def layer_index(layer: Layer, num_layers: int) -> int:
    """Index into `hidden_states` (num_layers + 1 entries; 0 = embeddings) for a `layer`
    hyperparameter: an int index (negative from the end) or a float fraction of depth."""
    if isinstance(layer, bool) or not isinstance(layer, (int, float)):
        raise ConfigError(f"layer must be an int index or a float fraction, got {layer!r}")
    if isinstance(layer, float):
        if not 0.0 <= layer <= 1.0:
            raise ConfigError(f"layer {layer} is a float, so a fraction of depth: it must be in "
                              f"[0, 1] (an index is an int, e.g. 14)")
        return math.floor(layer * num_layers + 0.5)  # round half up, unlike round()
    if not -(num_layers + 1) <= layer <= num_layers:
        raise ConfigError(f"layer {layer} is outside this encoder's hidden states: 0 (embeddings)"
                          f" to {num_layers} (last), or -1 to -{num_layers + 1}")
    return layer % (num_layers + 1)


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """[batch, tokens, dim] -> [batch, dim]; padding never enters a mean."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


def _num_layers(encoder: Any) -> int:
    return int(encoder.config.num_hidden_layers)


def encode_texts(tokenizer: Any, texts: Sequence[str], pairs: Sequence[str | None] | None = None,
                 prefix: str = "", max_length: int | None = None) -> dict[str, list]:
    """Token ids of `texts`, each with its second segment from `pairs` where one is given
    (None: a single segment). Pairs are truncated longest-first, so a short first segment (a
    question, a mention, a sentence) survives and its long context is cut."""
    limit = {"max_length": max_length} if max_length else {}
    texts = [prefix + t for t in texts]
    if pairs is None or all(p is None for p in pairs):
        return dict(tokenizer(texts, truncation=True, **limit))
    if len(pairs) != len(texts):
        raise DataError(f"{len(texts)} texts but {len(pairs)} second segments")
    with_pair = [i for i, p in enumerate(pairs) if p is not None]
    if len(with_pair) == len(texts):
        return dict(tokenizer(texts, list(pairs), truncation="longest_first", **limit))
    alone = [i for i, p in enumerate(pairs) if p is None]
    parts = [(with_pair, tokenizer([texts[i] for i in with_pair], [pairs[i] for i in with_pair],
                                   truncation="longest_first", **limit)),
             (alone, tokenizer([texts[i] for i in alone], truncation=True, **limit))]
    out: dict[str, list] = {key: [None] * len(texts) for key in parts[0][1]}
    for rows, enc in parts:
        for key in out:
            for i, value in zip(rows, enc[key], strict=True):
                out[key][i] = value
    return out


@torch.inference_mode()
def embed(encoder: Any, tokenizer: Any, texts: Sequence[str], prefix: str = "",
          pooling: str = "mean", layer: Layer = -1, batch_size: int = 64, *,
          max_length: int | None = None, precision: str = "fp32",
          pairs: Sequence[str | None] | None = None, desc: str | None = None) -> torch.Tensor:
    """L2-normalised float32 embeddings of `texts` (rows in input order, on the CPU); `pairs`
    gives each text a second segment (a context) where not None.

    Texts are tokenised `TOKENIZE_CHUNK` at a time (a million candidates never sit in memory as
    token lists), and batches hold texts of similar length (longest first within a chunk), so
    little compute goes to padding; the encoder runs in eval mode under `precision`'s autocast
    on its own device. `desc` shows a progress bar.
    """
    n_layers = _num_layers(encoder)
    index = layer_index(layer, n_layers)
    if not texts:
        return torch.empty(0, encoder.config.hidden_size)
    device = next(encoder.parameters()).device
    out = torch.empty(len(texts), encoder.config.hidden_size)
    was_training = encoder.training
    encoder.eval()
    bar = progress_bar(total=len(texts), desc=desc, unit="text") if desc else None
    try:
        for c0 in range(0, len(texts), TOKENIZE_CHUNK):
            c1 = min(c0 + TOKENIZE_CHUNK, len(texts))
            enc = encode_texts(tokenizer, texts[c0:c1], None if pairs is None else pairs[c0:c1],
                               prefix, max_length)
            order = sorted(range(c1 - c0), key=lambda i: -len(enc["input_ids"][i]))
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                batch = tokenizer.pad({k: [v[i] for i in rows] for k, v in enc.items()},
                                      return_tensors="pt")
                batch = {k: v.to(device) for k, v in batch.items()}
                with autocast(precision, device):
                    states = encoder(**batch, output_hidden_states=index != n_layers)
                hidden = (states.last_hidden_state if index == n_layers
                          else states.hidden_states[index])
                vectors = pool(hidden.float(), batch["attention_mask"], pooling)
                out[[c0 + r for r in rows]] = torch.nn.functional.normalize(vectors,
                                                                            dim=-1).cpu()
                if bar is not None:
                    bar.update(len(rows))
    finally:
        encoder.train(was_training)
        if bar is not None:
            bar.close()
    return out


def weights_token(module: torch.nn.Module) -> tuple:
    """Changes whenever the module's weights may have changed: every parameter's storage and
    in-place version counter (optimizer steps, load_state_dict), plus a float64 checksum (the
    belt to those braces: a write through `.data` bumps no counter)."""
    params = list(module.parameters())
    marks = tuple((p.data_ptr(), p._version) for p in params)
    with torch.no_grad():
        total = float(sum(p.detach().double().sum() for p in params)) if params else 0.0
    return marks, total


@dataclass
class _Slot:
    key: Any
    owner: Any  # weakref to the encoder
    token: tuple
    vectors: torch.Tensor


class EmbeddingCache:
    """A candidate pool's embeddings, encoded once per encoder state and pool and reused by
    every query set until either changes: LAReQA's 11 languages and Mewsli-X's share one
    multilingual pool. One slot, so memory holds at most one pool (plus the one being built
    after the old is dropped)."""

    def __init__(self) -> None:
        self._slot: _Slot | None = None
        self.hits = self.misses = 0

    def get(self, encoder: torch.nn.Module, key: Any, compute: Callable[[], torch.Tensor]
            ) -> torch.Tensor:
        token = weights_token(encoder)
        slot = self._slot
        if slot is not None and slot.key == key and slot.owner() is encoder and \
                slot.token == token:
            self.hits += 1
            return slot.vectors
        self._slot = None  # drop the old pool before encoding the new one
        self.misses += 1
        vectors = compute()
        self._slot = _Slot(key, weakref.ref(encoder), token, vectors)
        return vectors

    def clear(self) -> None:
        self._slot = None


POOL_CACHE = EmbeddingCache()


def save_embeddings(path: str | Path, vectors: torch.Tensor) -> Path:
    """Embeddings as a .npy file, for `load_embeddings` to memory-map (a pool too large to
    keep in RAM is searched chunk by chunk from disk)."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors.float().contiguous().numpy())
    return path


def load_embeddings(path: str | Path, mmap: bool = True) -> Any:
    """A saved embedding matrix; memory-mapped (read lazily by `knn`'s chunks) by default."""
    import numpy as np

    return np.load(Path(path), mmap_mode="r" if mmap else None)


# --------------------------------------------------------------------------- search

def faiss_available() -> bool:
    try:
        import faiss
    except ImportError:
        return False
    return hasattr(faiss, "IndexFlatIP")  # not a stray directory named faiss


def search_backend(requested: str = "auto", device: torch.device | str | None = None) -> str:
    """"auto" -> faiss for a CPU search where it is importable, else torch (on a GPU, torch's
    matrix products beat faiss-cpu)."""
    if requested == "auto":
        on_cpu = torch.device(device or "cpu").type == "cpu"
        return "faiss" if on_cpu and faiss_available() else "torch"
    if requested not in ("torch", "faiss"):
        raise ConfigError(f"search backend must be 'auto', 'torch' or 'faiss', got {requested!r}")
    return requested


def knn(queries: Any, index: Any, k: int, *, backend: str = "torch",
        device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most similar `index` rows of each query by inner product (cosine for normalised
    rows), best first: ([n, k] similarities, [n, k] row numbers), both on the CPU.

    `queries` and `index` are tensors or numpy arrays; a memory-mapped `index`
    (`load_embeddings`) is read one chunk at a time, so it never has to fit in memory.
    """
    k = min(k, len(index))
    if k < 1 or len(queries) == 0:
        raise DataError(f"knn: {len(queries)} queries against {len(index)} index rows")
    if search_backend(backend) == "faiss":
        return _knn_faiss(queries, index, k)
    return _knn_torch(queries, index, k, torch.device(device or "cpu"))


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    import numpy as np

    # a copy: a memory-mapped chunk is read-only, which torch tensors cannot be
    return torch.from_numpy(np.array(x, dtype=np.float32))


def _top(block: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    # max(dim) returns the FIRST maximum, so k = 1 ties go to the lower index
    if k == 1:
        values, rows = block.max(dim=1, keepdim=True)
        return values, rows
    return block.topk(min(k, block.shape[1]), dim=1)


def _knn_torch(queries: Any, index: Any, k: int, device: torch.device
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact search, streaming the index: each `INDEX_CHUNK` rows go to the device once and
    meet every query `QUERY_CHUNK` at a time; a running top-k per query is merged with each
    chunk's. Memory: the queries, one index chunk, one QUERY_CHUNK x INDEX_CHUNK block."""
    q_all = _as_tensor(queries).to(device, torch.float32)
    best_s = best_r = None
    for i0 in range(0, len(index), INDEX_CHUNK):
        block = _as_tensor(index[i0:i0 + INDEX_CHUNK]).to(device, torch.float32)
        parts = [_top(q_all[q0:q0 + QUERY_CHUNK] @ block.T, k)
                 for q0 in range(0, len(q_all), QUERY_CHUNK)]
        s, r = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]) + i0
        if best_s is not None:  # merge; a stable sort keeps earlier (lower) rows first on ties
            s, r = torch.cat([best_s, s], 1), torch.cat([best_r, r], 1)
            keep = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k]
            s, r = s.gather(1, keep), r.gather(1, keep)
        best_s, best_r = s, r
    return best_s.cpu(), best_r.cpu()


def _knn_faiss(queries: Any, index: Any, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    import faiss
    import numpy as np

    flat = faiss.IndexFlatIP(index.shape[1])
    flat.add(np.ascontiguousarray(_as_tensor(index).float().numpy()))
    sims, rows = flat.search(np.ascontiguousarray(_as_tensor(queries).float().numpy()), k)
    return torch.from_numpy(sims), torch.from_numpy(rows).long()


# --------------------------------------------------------------------------- data

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
    """The two sides and the gold pairs of canonical retrieval rows (xtl/tasks/retrieval.py)."""
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


# --------------------------------------------------------------------------- the cell

def _record(task: str, language: str, split: str, metric: str, value: float, n: int) -> dict:
    return {"task": task, "language": language, "split": split, "metric": metric,
            "value": float(value), "n": int(n), "flags": []}


@dataclass
class LanguageResult:
    """One language's metric records, prediction lines and figures for the notebook."""

    language: str
    records: list[dict]
    examples: list[dict]
    info: dict[str, Any] = field(default_factory=dict)
    baselines: list[dict] = field(default_factory=list)  # xtl.shortcuts: random ranking


def frozen_encoder(run: Any, model: str, init_checkpoint: str | None,
                   hp: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(encoder in eval mode on its device, tokenizer, device): the base model's encoder, or the
    `encoder/` of an intermediate checkpoint (checksum verified, architecture checked against
    the base model); `run` (a phases.Run) records where it came from and the precision."""
    from xtl import devices  # lazy: accelerate; the format registry imports this module
    from xtl.models import build

    location, source = zoo.materialize(model)
    init = Path(init_checkpoint) if init_checkpoint else None
    net, tokenizer, report = build(location, [], init, expect_like=location if init else None)
    run.model_source = source
    if report.parent is not None:
        run.model_source = (f"encoder of checkpoint {init} (cell "
                            f"{report.parent.get('cell')}; base model: {source})")
        run.parent = {"cell": report.parent.get("cell"),
                      "checksum": report.parent.get("checksum"), "path": str(init)}
    device = devices.resolve_device(hp["device"])
    run.precision = devices.resolve_precision(hp["precision"], device)
    return net.encoder.to(device).eval(), tokenizer, device


@dataclass
class RetrievalCell:
    """A retrieval evaluation: the encoder as it is, every language, no training."""

    run: Any  # xtl.phases.CellRun
    task: Any  # xtl.tasks.Task
    model: str
    init_checkpoint: str | None
    split: str
    languages: list[str]
    encoder: Any = None
    tokenizer: Any = None
    device: torch.device = torch.device("cpu")
    backend: str = "torch"
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def hp(self) -> dict:
        return self.run.hparams

    def intro(self) -> str:
        what = ("top-1 accuracy in both directions" if self.task.metric == "accuracy"
                else "F1 of margin-mined pairs")
        start = f"intermediate checkpoint {self.init_checkpoint}" if self.init_checkpoint \
            else f"the base model {self.model}"
        return (f"{self.task.name}: {what} on {self.split} in {len(self.languages)} languages "
                f"({', '.join(self.languages)}), embedding with {start}; no training")

    def load_encoder(self) -> tuple[Any, Any]:
        """The base model's encoder, or the `encoder/` of an intermediate checkpoint (its
        checksum verified and its architecture checked against the base model)."""
        self.encoder, self.tokenizer, self.device = frozen_encoder(
            self.run, self.model, self.init_checkpoint, self.hp)
        self.backend = search_backend("auto", self.device)
        return self.encoder, self.tokenizer

    def settings(self) -> dict[str, Any]:
        """The representation and search actually used (also written to metrics.json)."""
        n = _num_layers(self.encoder)
        return {"layer": self.hp["layer"], "layer_index": layer_index(self.hp["layer"], n),
                "num_layers": n, "layer_reason": self.layer_reason(),
                "pooling": self.hp["pooling"],
                "input_prefix": self.hp["input_prefix"], "max_length": self.hp["max_length"],
                "precision": self.run.precision, "device": str(self.device),
                "search": self.backend}

    def layer_reason(self) -> str:
        """Why this layer: the model's own layer, the task's recipe, or the experiment file."""
        layer = self.hp["layer"]
        preset = zoo.PRESETS.get(self.model)
        if preset is not None and preset.hparams.get("layer") == layer:
            return f"the layer {self.model} is made to embed with: " + MODEL_LAYERS.get(
                self.model, "its preset's setting")
        if self.task.hparams.get("layer") == layer:
            return ("the task's recipe: X-STILTs' retrieval layer (Phang et al. 2020: layer 14 "
                    "of XLM-R Large's 24, as a fraction of depth)")
        return "set in the experiment file (hparams or tasks.<name>.layer)"

    def describe(self) -> str:
        s = self.settings()
        which = "the last" if s["layer_index"] == s["num_layers"] else (
            "the embedding layer" if s["layer_index"] == 0 else f"block {s['layer_index']}")
        return (f"encoder: {self.run.model_source}\n"
                f"representation: hidden_states[{s['layer_index']}] ({which} of {s['num_layers']}"
                f" layers; layer = {s['layer']!r}), {s['pooling']} pooling, prefix "
                f"{s['input_prefix']!r}, max {s['max_length']} tokens, L2-normalised\n"
                f"why this layer: {s['layer_reason']}\n"
                f"running on {s['device']} in {s['precision']}; cosine search with "
                f"{s['search']}")

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        if self.encoder is None:
            raise ConfigError("load_encoder() first")
        return embed(self.encoder, self.tokenizer, texts, self.hp["input_prefix"],
                     self.hp["pooling"], self.hp["layer"], 2 * self.hp["batch_size"],
                     max_length=self.hp["max_length"], precision=self.run.precision)

    def evaluate(self, language: str, log: Callable[[str], None] = print) -> LanguageResult:
        """Load, embed, search or mine, and score one language."""
        if self.task.metric == "accuracy":
            result = self._tatoeba(language)
        elif self.task.metric == "bucc_f1":
            result = self._bucc(language)
        else:
            raise ConfigError(f"task {self.task.name!r}: retrieval scores 'accuracy' (top-1) "
                              f"or 'bucc_f1' (mining), not {self.task.metric!r}")
        log(f"{language}: " + ", ".join(f"{k} {v}" for k, v in result.info.items()))
        return result

    def _timed_embed(self, *sides: Sequence[str]) -> tuple[list[torch.Tensor], dict]:
        started = time.perf_counter()
        vectors = [self.embed(texts) for texts in sides]
        seconds = time.perf_counter() - started
        n = sum(len(t) for t in sides)
        return vectors, {"sentences": n, "embed_s": round(seconds, 2),
                         "sentences_per_s": round(n / max(seconds, 1e-9), 1)}

    def _tatoeba(self, language: str) -> LanguageResult:
        split = self.run.load(self.task, self.split, language)
        pairs = bitext(split.rows)
        (src, tgt), info = self._timed_embed(pairs.source, pairs.target)
        found = pair_search(pairs, src, tgt, backend=self.backend, device=self.device)
        scores = {d: found.accuracy(d) for d in DIRECTIONS}
        n, name = len(pairs.source), self.task.name
        records = [_record(name, language, self.split, "accuracy", scores["en_xx"], n),
                   _record(name, language, self.split, "accuracy_en_xx", scores["en_xx"], n),
                   _record(name, language, self.split, "accuracy_xx_en", scores["xx_en"], n),
                   _record(name, language, self.split, "accuracy_mean",
                           (scores["en_xx"] + scores["xx_en"]) / 2, n)]
        examples = [{"id": rid, "task": name, "language": language, "split": self.split,
                     "prediction": {d: found.hits[d][i] for d in DIRECTIONS}, "reference": rid,
                     "logits": {d: round(found.cosines[d][i], 6) for d in DIRECTIONS}}
                    for i, rid in enumerate(found.ids)]
        info = {"pairs": n, **info, "en->xx": round(scores["en_xx"], 2),
                "xx->en": round(scores["xx_en"], 2)}
        return LanguageResult(language, records, examples, info,
                              shortcuts.for_cell(self.task, None, [split]))

    def _mine_split(self, language: str, split: str) -> tuple[Mined, list, dict]:
        pairs = bitext(self.run.load(self.task, split, language).rows)
        source, target = Side.of(pairs.source_ids, pairs.source), Side.of(pairs.target_ids,
                                                                           pairs.target)
        (x, y), info = self._timed_embed(source.texts, target.texts)
        mined = mine(source, target, x, y, backend=self.backend, device=self.device)
        return mined, pairs.gold, info

    def _bucc(self, language: str) -> LanguageResult:
        splits = ["validation"] if self.split == "validation" else ["validation", self.split]
        done = {s: self._mine_split(language, s) for s in splits}
        (dev, dev_gold, _), (evaluated, gold, info) = done["validation"], done[self.split]
        if self.split == "validation":  # the official dev protocol: tuned on its own gold
            scores = metrics.score(self.task, dev.candidates, dev_gold, language)
        else:
            scores = metrics.bucc_dev_test(dev.candidates, dev_gold, evaluated.candidates, gold)
        self.thresholds[language] = scores["threshold"]
        records = [_record(self.task.name, language, self.split, m, scores[m], len(gold))
                   for m in ("f1", "precision", "recall")]
        examples = [line for s in splits
                    for line in _mined_lines(self.task.name, language, s, *done[s][:2])]
        info = {"gold": len(gold), "candidates": len(evaluated.candidates), **info,
                "threshold": round(scores["threshold"], 4), "f1": round(scores["f1"], 2)}
        if evaluated.dropped:
            info["dropped (repeated sentence)"] = evaluated.dropped
        return LanguageResult(language, records, examples, info)

    def finish(self, results: Sequence[LanguageResult]) -> dict:
        """metrics.json (one record per language and metric) and the predictions files."""
        extra = {"retrieval": {**self.settings(), "split": self.split,
                               "headline": _headline(self.task.metric)}}
        if self.thresholds:
            extra["retrieval"]["bucc_thresholds"] = dict(self.thresholds)
        return self.run.finish([r for res in results for r in res.records],
                               [e for res in results for e in res.examples], extra,
                               [b for res in results for b in res.baselines])


def _headline(metric: str) -> str:
    if metric == "accuracy":
        return ("accuracy = accuracy_en_xx: English queries against the foreign sentences, "
                "XTREME's direction; accuracy_xx_en is the reverse, accuracy_mean their mean")
    return ("f1 at the threshold tuned on validation (BUCC sample); on validation itself that "
            "is the official oracle dev number")


def _mined_lines(task: str, language: str, split: str, mined: Mined, gold: list
                 ) -> list[dict]:
    """One line per source sentence that was mined or has a gold pair: its candidate (or
    None) with the margin score, and its gold targets -- enough to re-score with
    xtl.metrics.bucc_f1 (candidates {(id, prediction): logits}, gold (id, each reference))."""
    refs: dict[str, list[str]] = {}
    for sid, tid in gold:
        refs.setdefault(sid, []).append(tid)
    picked = {sid: (tid, score) for (sid, tid), score in mined.candidates.items()}
    lines = []
    for sid in list(picked) + [s for s in refs if s not in picked]:
        tid, score = picked.get(sid, (None, None))
        lines.append({"id": sid, "task": task, "language": language, "split": split,
                      "prediction": tid, "reference": refs.get(sid, []),
                      "logits": None if score is None else round(score, 6)})
    return lines


def start(cell_id: str, model: str, task: str, hparams: dict, init_checkpoint: str | None,
          eval_split: str, eval_languages: list[str] | None, cell_dir: str,
          mirror: str | None = None, raw_dir: str | None = None,
          declared_tasks: dict | None = None, hparam_sources: dict | None = None
          ) -> RetrievalCell:
    """Validate the notebook's parameters and open the cell (also for ad-hoc runs)."""
    from xtl import phases

    run = phases.start("retrieval", cell_id, cell_dir, cell_dir, hparams, mirror, declared_tasks,
                       raw_dir, hparam_sources=hparam_sources, model=model, task=task,
                       init_checkpoint=init_checkpoint, eval_split=eval_split,
                       eval_languages=eval_languages)
    resolved = run.task(task)
    if resolved.format != "retrieval":
        raise ConfigError(f"task {task!r} has format {resolved.format!r}; the retrieval notebook"
                          " evaluates retrieval tasks (tatoeba, bucc2018)")
    languages = list(eval_languages or resolved.languages)
    for lang in languages:
        if lang not in resolved.languages:
            raise unknown(f"language of task {task!r}", lang, resolved.languages)
    resolved.source_split(eval_split)
    return RetrievalCell(run, resolved, model, init_checkpoint, eval_split, languages)


# --------------------------------------------------------------------------- display

def table(results: Sequence[LanguageResult]):
    """Language x metric (pandas), the mean over languages as the last row."""
    from xtl.phases import records_table

    records = [r for res in results for r in res.records]
    frame = records_table(records)[list(dict.fromkeys(r["metric"] for r in records))]
    frame.loc["mean"] = frame.mean().round(2)
    return frame


def plot(frame: Any, metric: str):
    """Bars per language: the two directions (Tatoeba) or F1/precision/recall (BUCC)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from xtl import plots

    shown = (["accuracy_en_xx", "accuracy_xx_en"] if metric == "accuracy"
             else ["f1", "precision", "recall"])
    long = (frame.drop(index="mean", errors="ignore")[shown].reset_index()
            .melt(id_vars="language", var_name="metric", value_name="score"))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * long["language"].nunique() + 2), 3.2))
    sns.barplot(data=long, x="language", y="score", hue="metric", ax=ax)
    for bars in ax.containers:  # the value on each bar: near 1 % the axis alone is vague
        ax.bar_label(bars, fmt="%.1f", fontsize="x-small", padding=1)
    ax.set_ylim(0, plots.score_ceiling(long["score"].tolist()) * 1.08)
    ax.set_title("top-1 accuracy per language and direction" if metric == "accuracy"
                 else "mined-pair scores per language")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig
