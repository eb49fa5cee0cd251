"""Query strategies: which unlabelled pool points to ask labels for next.

Every strategy is a pure function of the fitted learner, the pool and a ``numpy`` generator; the loop
passes ``default_rng([seed, round])``, so a round's queries are a function of (seed, round, labelled
set) and a resumed run asks for exactly the same labels. Ties between equal scores are broken by a
random permutation drawn from that generator.

- ``random``: uniform without replacement.
- ``least-confidence`` (1 - max p), ``margin`` (smallest p(1st) - p(2nd)), ``entropy``: top-scoring.
- ``bald``: largest mutual information between the label and the model (Houlsby et al. 2011) from the
  learner's posterior samples (MC dropout, ensemble members, forest trees).
- ``coreset``: greedy k-center on the learner's embeddings (Sener & Savarese 2018).
- ``badge``: k-means++ seeding on gradient embeddings (p - onehot(argmax p)) x [h, 1] (Ash et al. 2020).
- ``margin-kmeans``: the ``PREFILTER * batch`` smallest margins, clustered by k-means weighted by
  1 - margin, the point nearest each centroid (Zhdanov 2019).
- ``margin-kcenter``: the ``PREFILTER * batch`` smallest margins, then greedy k-center among them.
"""

from __future__ import annotations

import numpy as np

from openmindspore.active._diversity import kcenter_greedy, kmeans_centroid_picks, kmeanspp, typical_picks
from openmindspore.active.config import STRATEGY_NAMES
from openmindspore.active.learners import Learner, flat
from openmindspore.errors import ConfigError

__all__ = [
    "STRATEGIES",
    "PREFILTER",
    "select",
    "initial_labels",
    "least_confidence",
    "margin",
    "entropy",
    "bald",
    "gradient_embeddings",
    "top_k",
]

STRATEGIES = STRATEGY_NAMES
PREFILTER = 10


def least_confidence(p: np.ndarray) -> np.ndarray:
    """1 - max_c p (N,); larger is more uncertain."""
    return 1.0 - np.asarray(p).max(axis=1)


def margin(p: np.ndarray) -> np.ndarray:
    """p(most likely) - p(second most likely) (N,); *smaller* is more uncertain."""
    s = np.sort(np.asarray(p), axis=1)
    return s[:, -1] - s[:, -2] if s.shape[1] > 1 else s[:, -1]


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats (N,) over the last axis."""
    p = np.asarray(p)
    return -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=-1)


def bald(samples: np.ndarray) -> np.ndarray:
    """Mutual information H(mean_s p_s) - mean_s H(p_s) (N,) from posterior samples (S, N, C); >= 0."""
    samples = np.asarray(samples)
    return np.maximum(entropy(samples.mean(axis=0)) - entropy(samples).mean(axis=0), 0.0)


def gradient_embeddings(p: np.ndarray, h: np.ndarray) -> np.ndarray:
    """BADGE's embedding: the gradient of the cross-entropy at the predicted label with respect to the
    last layer's weights and bias, (p - onehot(argmax p)) outer [h, 1]: (N, C * (D + 1)), float32."""
    p = np.asarray(p, dtype=np.float32)
    g = p.copy()
    g[np.arange(len(p)), p.argmax(axis=1)] -= 1.0
    hb = np.concatenate([np.asarray(h, dtype=np.float32), np.ones((len(h), 1), np.float32)], axis=1)
    return (g[:, :, None] * hb[:, None, :]).reshape(len(p), -1)


def top_k(score: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` largest scores; ties in random order (from ``rng``)."""
    perm = rng.permutation(len(score))
    return perm[np.argsort(-np.asarray(score)[perm], kind="stable")][: int(k)]


def initial_labels(how: str, x_pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The first ``n`` pool indices to label: ``random``, ``kcenter`` (greedy k-center on the inputs) or
    ``typical`` (the most typical point of each of ``n`` k-means clusters of the inputs, TypiClust)."""
    if how == "random":
        return np.sort(rng.choice(len(x_pool), size=int(n), replace=False)).astype(np.int64)
    if how == "kcenter":
        picks, _ = kcenter_greedy(flat(x_pool), np.zeros((0, flat(x_pool[:1]).shape[1])), int(n), rng)
        return picks
    if how == "typical":
        return np.sort(typical_picks(flat(x_pool), int(n), rng))
    raise ConfigError("--init", how, "random, kcenter or typical")


def select(
    strategy: str,
    learner: Learner,
    x_pool: np.ndarray,
    labeled: np.ndarray,
    batch: int,
    rng: np.random.Generator,
    mc_samples: int = 20,
) -> np.ndarray:
    """``batch`` pool indices (not in ``labeled``) chosen by ``strategy`` with the fitted ``learner``."""
    if strategy not in STRATEGIES:
        raise ConfigError("--strategy", strategy, f"one of {', '.join(STRATEGIES)}")
    unl = np.setdiff1d(np.arange(len(x_pool)), np.asarray(labeled, dtype=np.int64))
    b = min(int(batch), len(unl))
    if b == 0:
        return np.zeros(0, dtype=np.int64)
    if strategy == "random":
        return unl[rng.choice(len(unl), size=b, replace=False)]
    xu = x_pool[unl]
    if strategy == "bald":
        return unl[top_k(bald(learner.proba_samples(xu, mc_samples)), b, rng)]
    if strategy == "coreset":
        picks, _ = kcenter_greedy(learner.embed(xu), learner.embed(x_pool[labeled]), b, rng)
        return unl[picks]
    p = learner.proba(xu)
    if strategy == "least-confidence":
        return unl[top_k(least_confidence(p), b, rng)]
    if strategy == "margin":
        return unl[top_k(-margin(p), b, rng)]
    if strategy == "entropy":
        return unl[top_k(entropy(p), b, rng)]
    if strategy == "badge":
        return unl[kmeanspp(gradient_embeddings(p, learner.embed(xu)), b, rng)]
    m = margin(p)
    cand = top_k(-m, min(PREFILTER * b, len(unl)), rng)
    emb = learner.embed(xu[cand])
    if strategy == "margin-kmeans":
        return unl[cand[kmeans_centroid_picks(emb, 1.0 - m[cand], b, rng)]]
    picks, _ = kcenter_greedy(emb, learner.embed(x_pool[labeled]), b, rng)  # margin-kcenter
    return unl[cand[picks]]
