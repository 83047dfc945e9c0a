"""Transferability estimators: how well frozen features fit a task's labels, without training.

Each takes features F [N, D] (one row per labelled unit: a sentence, a labelled sub-token, a
token of a QA window) and integer labels y [N], and returns one number, higher = better fit:

- `logme`: LogME (You et al., ICML 2021, "LogME: Practical Assessment of Pre-trained Models
  for Transfer Learning"; fixed-point form of arXiv 2110.10545). One Bayesian linear
  regression per class on the one-hot target t = 1[y = c], with prior w ~ N(0, 1/alpha I)
  and noise N(0, 1/beta); alpha and beta maximise the marginal likelihood (MacKay's fixed
  point); the score is that maximised log evidence divided by N, averaged over classes.
  Unlike the reference code, the log-determinant counts the D - rank directions where
  A = alpha I + beta F^T F is alpha alone, so the evidence stays exact when N < D.
- `hscore`: H-score (Bao et al., ICIP 2019, "An Information-Theoretic Approach to
  Transferability in Task Transfer Learning"): tr(cov(f)^+ cov(E[f | y])).
- `hscore_shrunk`: the regularised H-score (Ibrahim, Ponomareva and Mazumder, "Newer is not
  always better: rethinking transferability metrics", 2022): Ledoit-Wolf shrinkage of cov(f)
  with factor a, and (1 - a) cov(E[f | y]); stable when N is not much larger than D.
- `knn_accuracy`: leave-one-out k-nearest-neighbour accuracy by cosine (a probe with no
  fitted parameters).

Which units each target format scores is in docs/protocol.md ("Transferability estimates").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from xtl.core.errors import ConfigError, unknown

ESTIMATORS = ("logme", "hscore", "hscore_shrunk", "knn")
# Target formats with an estimate, and the unit each scores (xtl.cells.transferability_cell)
FORMATS = {"pair_classification": "sentence (first token)",
           "multiple_choice": "choice pair (first token)",
           "tagging": "labelled sub-token", "span_qa": "token of an answer window"}
# A bump changes every transferability cell's id (what the estimates compute changed).
REVISION = 1
LOGME_ITERATIONS = 100
LOGME_TOLERANCE = 1e-7  # relative change of alpha / beta


def _checked(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if f.ndim != 2:
        raise ValueError(f"features must be a 2-D array [N, D], got shape {f.shape}")
    if y.ndim != 1 or len(y) != len(f):
        raise ValueError(f"labels must be a 1-D array of the {len(f)} rows' labels, got shape "
                         f"{y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers (class ids), got dtype {y.dtype}")
    if len(f) < 2 or len(np.unique(y)) < 2:
        raise ValueError(f"an estimate needs at least 2 rows and 2 classes, got {len(f)} rows "
                         f"and classes {sorted(set(y.tolist()))}")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or infinite values")
    return f, y


@dataclass
class Evidence:
    """One class's maximised evidence: L / N at (alpha, beta), and how many iterations.
    `exact_fit`: the features have rank N, so every target is fit exactly and the noise
    precision beta grows without bound (the evidence means little): give the estimate more
    rows than feature dimensions."""

    value: float
    alpha: float
    beta: float
    iterations: int
    exact_fit: bool = False


def logme_evidence(features: np.ndarray, target: np.ndarray, alpha: float, beta: float
                   ) -> float:
    """log p(t | F, alpha, beta) (not divided by N), straight from its definition:
    D/2 log a + N/2 log b - 1/2 log|A| - b/2 |F m - t|^2 - a/2 m^T m - N/2 log 2 pi, with
    A = a I + b F^T F and m = b A^-1 F^T t."""
    f = np.asarray(features, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ t)
    return float(d / 2 * math.log(alpha) + n / 2 * math.log(beta)
                 - 0.5 * np.linalg.slogdet(a)[1] - beta / 2 * np.sum((f @ m - t) ** 2)
                 - alpha / 2 * (m @ m) - n / 2 * math.log(2 * math.pi))


def _spectrum(f: np.ndarray) -> tuple[np.ndarray, Any]:
    """The non-zero eigenvalues sigma of F^T F and a map t -> x = U^T t (F = U S V^T), from
    the smaller Gram matrix (one N x D x min(N, D) product, no SVD of F)."""
    n, d = f.shape
    gram = f.T @ f if n >= d else f @ f.T
    sigma, vec = np.linalg.eigh(gram)
    keep = sigma > sigma.max() * max(n, d) * np.finfo(np.float64).eps * 10
    sigma, vec = sigma[keep], vec[:, keep]
    if n >= d:  # U = F V S^-1, so U^T t = S^-1 V^T F^T t
        root = np.sqrt(sigma)
        return sigma, lambda t: (vec.T @ (f.T @ t)) / root
    return sigma, lambda t: vec.T @ t


def logme_classes(features: np.ndarray, labels: np.ndarray) -> dict[int, Evidence]:
    """Per class present in `labels`: the maximised evidence of its one-vs-rest target."""
    f, y = _checked(features, labels)
    n, d = f.shape
    sigma, project = _spectrum(f)
    k = len(sigma)
    out = {}
    for c in np.unique(y):
        t = (y == c).astype(np.float64)
        x2 = project(t) ** 2
        rest = max(float(t @ t - x2.sum()), 0.0)  # the part of t outside F's column space
        alpha, beta, it, last = 1.0, 1.0, 0, -math.inf
        for it in range(1, LOGME_ITERATIONS + 1):  # noqa: B007  (the count is reported)
            tau = alpha / beta
            gamma = float(np.sum(sigma / (sigma + tau)))
            mtm = float(np.sum(sigma * x2 / (sigma + tau) ** 2))
            err = float(np.sum(x2 * (tau / (sigma + tau)) ** 2)) + rest
            alpha = gamma / max(mtm, 1e-300)
            beta = (n - gamma) / max(err, 1e-300)
            value = _evidence(alpha, beta, sigma, x2, rest, n, d)
            # alpha alone may run to infinity (features no better than w = 0) while the
            # evidence settles: stop on either
            if (abs(alpha / beta - tau) <= LOGME_TOLERANCE * tau
                    or abs(value - last) <= 1e-12 * abs(value)):
                break
            last = value
        out[int(c)] = Evidence(value / n, alpha, beta, it, exact_fit=k >= n)
    return out


def _evidence(alpha: float, beta: float, sigma: np.ndarray, x2: np.ndarray, rest: float,
              n: int, d: int) -> float:
    """The log evidence in the eigenbasis (`logme_evidence`, in O(rank))."""
    tau = alpha / beta
    mtm = float(np.sum(sigma * x2 / (sigma + tau) ** 2))
    err = float(np.sum(x2 * (tau / (sigma + tau)) ** 2)) + rest
    logdet = float(np.sum(np.log(alpha + beta * sigma))) + (d - len(sigma)) * math.log(alpha)
    return (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - logdet / 2
            - beta / 2 * err - alpha / 2 * mtm - n / 2 * math.log(2 * math.pi))


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME: the mean over classes of the maximised log evidence per row (higher = better)."""
    return float(np.mean([e.value for e in logme_classes(features, labels).values()]))


def _class_means(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    g = np.empty_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(axis=0)
    return g


def hscore(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score (Bao et al. 2019): tr(pinv(cov f) cov g), g = each row's class mean."""
    f, y = _checked(features, labels)
    cov_f = np.atleast_2d(np.cov(f, rowvar=False))
    cov_g = np.atleast_2d(np.cov(_class_means(f, y), rowvar=False))
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g))


def ledoit_wolf(f: np.ndarray) -> tuple[np.ndarray, float]:
    """The Ledoit-Wolf shrunk covariance of centred rows and its shrinkage (Ledoit and Wolf
    2004, "A well-conditioned estimator for large-dimensional covariance matrices"; the
    formula of scikit-learn's `ledoit_wolf_shrinkage`, in two matrix products)."""
    n, p = f.shape
    emp = f.T @ f / n
    mu = np.trace(emp) / p
    beta_ = float(np.sum(np.sum(f ** 2, axis=1) ** 2))  # sum of (X^2)^T X^2
    delta_ = float(np.sum(emp ** 2))  # |X^T X|^2 / n^2
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2 * mu * np.trace(emp) + p * mu ** 2) / p
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    return (1 - shrinkage) * emp + shrinkage * mu * np.eye(p), shrinkage


def hscore_shrunk(features: np.ndarray, labels: np.ndarray) -> float:
    """Regularised H-score (Ibrahim et al. 2022): tr(inv(LW cov f) (1 - a) cov g), features
    centred, a the Ledoit-Wolf shrinkage."""
    f, y = _checked(features, labels)
    f = f - f.mean(axis=0, keepdims=True)
    cov_f, shrinkage = ledoit_wolf(f)
    cov_g = np.atleast_2d(np.cov(_class_means(f, y), rowvar=False))
    return float(np.trace(np.linalg.solve(cov_f, (1 - shrinkage) * cov_g)))


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 5, chunk: int = 1024
                 ) -> float:
    """Leave-one-out k-NN accuracy (cosine; majority vote, ties to the class of the nearer
    neighbour), in [0, 1]."""
    f, y = _checked(features, labels)
    if not 1 <= k < len(f):
        raise ValueError(f"k must be in [1, {len(f) - 1}] for {len(f)} rows, got {k}")
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    classes, codes = np.unique(y, return_inverse=True)
    hits = 0
    for start in range(0, len(f), chunk):
        sims = f[start:start + chunk] @ f.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf  # leave the row itself out
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        near = np.take_along_axis(top, order, axis=1)
        votes = np.zeros((len(rows), len(classes)))
        # nearer neighbours weigh a hair more: a tie goes to the nearest neighbour's class
        np.add.at(votes, (rows[:, None], codes[near]), 1.0 + 1e-6 * (k - np.arange(k)))
        hits += int(np.sum(votes.argmax(axis=1) == codes[start:start + chunk]))
    return hits / len(f)


def score_all(features: np.ndarray, labels: np.ndarray, knn_rows: int = 2000,
              seed: int = 0) -> dict[str, float]:
    """Every estimator of `ESTIMATORS` on one (features, labels) sample; kNN on at most
    `knn_rows` rows (a seeded subset: its cost is quadratic)."""
    f, y = _checked(features, labels)
    kf, ky = f, y
    if len(f) > knn_rows:
        pick = np.sort(np.random.default_rng(seed).choice(len(f), knn_rows, replace=False))
        kf, ky = f[pick], y[pick]
    return {"logme": logme(f, y), "hscore": hscore(f, y), "hscore_shrunk": hscore_shrunk(f, y),
            "knn": knn_accuracy(kf, ky, k=min(5, len(kf) - 1))}


# English training rows, validation rows per language (0: none) and units (a QA window gives
# one per token) each transferability estimate reads at most; 2,000 rows: more sentence units
# than a large model's 1,024 feature dimensions (LogME fits N <= D rows exactly)
TRANSFERABILITY = {"rows": 2000, "language_rows": 200, "max_units": 20000}


def transferability_settings(value: Any, source: str = "<experiment>") -> dict[str, int] | None:
    """`transferability:` of an experiment file: false/null (off), true (the defaults) or a
    mapping of `TRANSFERABILITY` keys; None when off."""
    if value is None or value is False:
        return None
    if value is True:
        return dict(TRANSFERABILITY)
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: transferability must be true, false or a mapping of "
                          f"{', '.join(TRANSFERABILITY)}, got {value!r}")
    out = dict(TRANSFERABILITY)
    for key, v in value.items():
        if key not in TRANSFERABILITY:
            raise unknown(f"key in {source}: transferability", key, TRANSFERABILITY)
        low = 0 if key == "language_rows" else 2
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"{source}: transferability.{key} must be an integer >= {low}, "
                              f"got {v!r}")
        out[key] = v
    return out
