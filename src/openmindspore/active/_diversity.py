"""Diversity for batch selection (plain numpy): k-center greedy, k-means++ seeding, weighted k-means picks,
typical picks (the cold start).

Inputs are embeddings ``(M, D)``; outputs are row indices into them, in the order picked.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sq_dists", "kcenter_greedy", "kmeanspp", "kmeans_centroid_picks", "typical_picks"]


def sq_dists(a: np.ndarray, b: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)), computed in row chunks; never negative."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    bb = (b * b).sum(axis=1)
    out = np.empty((len(a), len(b)))
    for s in range(0, len(a), chunk):
        aa = a[s : s + chunk]
        out[s : s + chunk] = np.maximum((aa * aa).sum(axis=1)[:, None] + bb[None, :] - 2.0 * aa @ b.T, 0.0)
    return out


def kcenter_greedy(
    cand: np.ndarray, centers: np.ndarray, k: int, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center (Sener & Savarese 2018): ``k`` rows of ``cand`` picked one by one, each the farthest
    from ``centers`` and the rows already picked. Returns (picks, radius) where ``radius[j]`` is the
    covering radius (largest distance of a candidate to its nearest center) just before pick ``j``
    and ``radius[k]`` after the last; it never grows. With no centers the first pick is random (``rng``)."""
    cand = np.asarray(cand, dtype=np.float64)
    k = min(int(k), len(cand))
    picks: list[int] = []
    radius: list[float] = []
    if len(centers):
        mind = np.sqrt(sq_dists(cand, centers).min(axis=1))
    else:  # no centers yet: the covering radius is infinite until the first (random) pick
        mind = np.full(len(cand), np.inf)
    for _ in range(k):
        if np.isinf(mind).all():
            j = int(rng.integers(len(cand))) if rng is not None else 0
        else:
            j = int(np.argmax(mind))
        radius.append(float(mind.max()))
        picks.append(j)
        mind = np.minimum(mind, np.sqrt(sq_dists(cand, cand[j : j + 1])[:, 0]))
        mind[j] = 0.0
    radius.append(float(mind.max()) if len(mind) else 0.0)
    return np.asarray(picks, dtype=np.int64), np.asarray(radius)


def kmeanspp(emb: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding as BADGE uses it (Ash et al. 2020): the first row is the one of largest norm,
    each next one is drawn with probability proportional to its squared distance to the nearest row
    already picked (uniformly among the rest when every distance is 0)."""
    emb = np.asarray(emb, dtype=np.float64)
    k = min(int(k), len(emb))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    picks = [int(np.argmax((emb * emb).sum(axis=1)))]
    d2 = sq_dists(emb, emb[picks[0] : picks[0] + 1])[:, 0]
    d2[picks[0]] = 0.0
    while len(picks) < k:
        total = d2.sum()
        if total > 0:
            j = int(rng.choice(len(emb), p=d2 / total))
        else:
            rest = np.setdiff1d(np.arange(len(emb)), picks)
            j = int(rng.choice(rest))
        picks.append(j)
        d2 = np.minimum(d2, sq_dists(emb, emb[j : j + 1])[:, 0])
        d2[picks] = 0.0
    return np.asarray(picks, dtype=np.int64)


def kmeans_centroid_picks(emb: np.ndarray, weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Weighted k-means with ``k`` clusters (Zhdanov 2019), then per cluster the row nearest its centroid
    (the next nearest not yet taken when two clusters share one). Deterministic given ``rng``."""
    from sklearn.cluster import KMeans

    emb = np.asarray(emb, dtype=np.float64)
    k = min(int(k), len(emb))
    if k == len(emb):
        return np.arange(k, dtype=np.int64)
    km = KMeans(n_clusters=k, n_init=1, random_state=int(rng.integers(2**31 - 1)))
    km.fit(emb, sample_weight=np.maximum(np.asarray(weights, dtype=np.float64), 1e-12))
    d = sq_dists(km.cluster_centers_, emb)
    taken: list[int] = []
    for c in range(k):
        for j in np.argsort(d[c], kind="stable"):
            if int(j) not in taken:
                taken.append(int(j))
                break
    return np.asarray(taken, dtype=np.int64)


def typical_picks(emb: np.ndarray, k: int, rng: np.random.Generator, neighbors: int = 20) -> np.ndarray:
    """TypiClust's cold start (Hacohen et al. 2022): k-means with ``k`` clusters, then in each cluster the
    most *typical* row, the one with the highest inverse mean distance to its ``neighbors`` nearest rows of
    the same cluster. Dense, representative first labels rather than random or extreme ones. Returns the
    picks, largest cluster first; deterministic given ``rng``."""
    from sklearn.cluster import KMeans

    emb = np.asarray(emb, dtype=np.float64)
    k = min(int(k), len(emb))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    km = KMeans(n_clusters=k, n_init=1, random_state=int(rng.integers(2**31 - 1))).fit(emb)
    clusters = sorted(range(k), key=lambda c: (-int((km.labels_ == c).sum()), c))
    picks = []
    for c in clusters:
        rows = np.flatnonzero(km.labels_ == c)
        if len(rows) == 1:
            picks.append(int(rows[0]))
            continue
        d = np.sqrt(sq_dists(emb[rows], emb[rows]))
        nn = min(int(neighbors), len(rows) - 1)
        mean_d = np.sort(d, axis=1)[:, 1 : nn + 1].mean(axis=1)  # column 0 is the row itself
        picks.append(int(rows[np.argmin(mean_d)]))
    return np.asarray(picks, dtype=np.int64)
