"""Query strategies: what each picks, determinism, and the diversity primitives they rest on."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.active._diversity import kcenter_greedy, kmeanspp, sq_dists, typical_picks
from openmindspore.active.learners import make_learner
from openmindspore.active.strategies import (
    STRATEGIES,
    bald,
    entropy,
    gradient_embeddings,
    initial_labels,
    least_confidence,
    margin,
    select,
)
from openmindspore.data import load_dataset


class FixedProba:
    """A learner whose probabilities are given per pool row (the strategy, not the model, is under test)."""

    num_classes, has_samples = 3, True

    def __init__(self, x_pool: np.ndarray, p: np.ndarray) -> None:
        self.x_pool, self.p = x_pool, p

    def _rows(self, x: np.ndarray) -> np.ndarray:
        return np.array([int(np.flatnonzero((self.x_pool == r).all(axis=1))[0]) for r in x])

    def proba(self, x: np.ndarray) -> np.ndarray:
        return self.p[self._rows(x)]

    def proba_samples(self, x: np.ndarray, t: int) -> np.ndarray:
        return np.stack([self.proba(x)] * 2)

    def embed(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)


def _pool(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    p = rng.dirichlet(np.ones(3) * 0.5, size=n)
    return x, p


def test_scores():
    p = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(margin(p), [0.2, 0.85, 0.0])
    np.testing.assert_allclose(least_confidence(p), [0.5, 0.1, 2 / 3])
    assert entropy(p).argmax() == 2 and entropy(p)[1] < entropy(p)[0]
    same = np.stack([p, p, p])
    np.testing.assert_allclose(bald(same), 0.0, atol=1e-12)  # agreeing samples: no mutual information
    split = np.stack([np.eye(3)[[0, 0, 0]], np.eye(3)[[1, 0, 0]]])  # disagree only on point 0
    assert bald(split)[0] == pytest.approx(np.log(2)) and bald(split)[1:].max() < 1e-9


def test_margin_picks_the_smallest_margins_among_unlabelled():
    x, p = _pool()
    labeled = np.arange(0, 60, 7)
    got = select("margin", FixedProba(x, p), x, labeled, 8, np.random.default_rng([0, 1]))
    unl = np.setdiff1d(np.arange(60), labeled)
    expected = unl[np.argsort(margin(p[unl]))[:8]]
    assert sorted(got.tolist()) == sorted(expected.tolist())
    assert not set(got.tolist()) & set(labeled.tolist())


def test_coreset_radius_never_grows_and_picks_the_farthest():
    rng = np.random.default_rng(3)
    cand, centers = rng.normal(size=(200, 5)), rng.normal(size=(4, 5))
    picks, radius = kcenter_greedy(cand, centers, 30, rng)
    assert len(set(picks.tolist())) == 30 and len(radius) == 31
    assert np.all(np.diff(radius) <= 1e-12)
    # the first pick is the candidate farthest from the centers
    assert picks[0] == np.argmax(np.sqrt(sq_dists(cand, centers)).min(axis=1))
    # radius[k] is the covering radius of centers + the first k picks
    all_c = np.vstack([centers, cand[picks]])
    assert radius[-1] == pytest.approx(np.sqrt(sq_dists(cand, all_c).min(axis=1)).max())


def _reference_kmeanspp(emb: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """k-means++ seeding written out plainly: the largest-norm row first, then D^2 sampling."""
    chosen = [int(np.argmax(np.linalg.norm(emb, axis=1)))]
    while len(chosen) < k:
        d2 = np.min([((emb - emb[c]) ** 2).sum(axis=1) for c in chosen], axis=0)
        chosen.append(int(rng.choice(len(emb), p=d2 / d2.sum())))
    return chosen


def test_badge_is_kmeanspp_on_gradient_embeddings():
    x, p = _pool(80, seed=5)
    labeled = np.arange(10)
    got = select("badge", FixedProba(x, p), x, labeled, 6, np.random.default_rng([2, 3]))
    unl = np.setdiff1d(np.arange(80), labeled)
    # the gradient embedding of cross-entropy at the predicted label w.r.t. last-layer weights and bias
    g = np.zeros((len(unl), 3 * 5))
    for r, i in enumerate(unl):
        e = p[i].copy()
        e[p[i].argmax()] -= 1.0
        g[r] = np.outer(e, np.r_[x[i], 1.0]).ravel()
    np.testing.assert_allclose(gradient_embeddings(p[unl], x[unl]), g, rtol=1e-5, atol=1e-6)
    ref = _reference_kmeanspp(g, 6, np.random.default_rng([2, 3]))
    assert got.tolist() == unl[ref].tolist()


def test_kmeanspp_draws_proportional_to_squared_distance():
    emb = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [10.0, 10.0]])
    d2 = ((emb - emb[4]) ** 2).sum(axis=1)
    d2[4] = 0.0
    rng = np.random.default_rng(11)
    counts = np.bincount([kmeanspp(emb, 2, rng)[1] for _ in range(4000)], minlength=5)
    expected = 4000 * d2 / d2.sum()
    assert counts[4] == 0
    chi2 = (((counts - expected) ** 2)[:4] / expected[:4]).sum()
    assert chi2 < 16.3  # chi-square, 3 degrees of freedom, p = 0.001


@pytest.fixture(scope="module")
def digits_learner():
    ds = load_dataset("digits")
    learner = make_learner("logreg", ds.x_train, ds.num_classes, seed=0, ensemble=3)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(ds.x_train), 40, replace=False)
    learner.fit(idx, ds.y_train[idx])
    return ds, learner, idx


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_is_deterministic_and_asks_new_ids(digits_learner, strategy):
    ds, learner, idx = digits_learner
    a = select(strategy, learner, ds.x_train, idx, 10, np.random.default_rng([4, 2]))
    b = select(strategy, learner, ds.x_train, idx, 10, np.random.default_rng([4, 2]))
    assert a.tolist() == b.tolist()
    assert len(set(a.tolist())) == 10 and not set(a.tolist()) & set(idx.tolist())
    if strategy in ("random", "badge", "margin-kmeans"):  # these draw from the round's generator
        c = select(strategy, learner, ds.x_train, idx, 10, np.random.default_rng([5, 2]))
        assert a.tolist() != c.tolist()


def test_margin_variants_stay_within_the_smallest_margins(digits_learner):
    ds, learner, idx = digits_learner
    unl = np.setdiff1d(np.arange(len(ds.x_train)), idx)
    m = margin(learner.proba(ds.x_train[unl]))
    top = set(unl[np.argsort(m)[:100]].tolist())
    for s in ("margin-kmeans", "margin-kcenter"):
        got = select(s, learner, ds.x_train, idx, 10, np.random.default_rng([1, 1]))
        assert set(got.tolist()) <= top


def test_initial_labels():
    ds = load_dataset("digits")
    a = initial_labels("random", ds.x_train, 20, np.random.default_rng([0, 0]))
    assert len(set(a.tolist())) == 20 and a.tolist() == sorted(a.tolist())
    k = initial_labels("kcenter", ds.x_train, 20, np.random.default_rng([0, 0]))
    assert len(set(k.tolist())) == 20
    assert k.tolist() == initial_labels("kcenter", ds.x_train, 20, np.random.default_rng([0, 0])).tolist()
    # k-center covers the pool better than the random draw of the same size
    flat = ds.x_train.reshape(len(ds.x_train), -1)
    cover = [np.sqrt(sq_dists(flat, flat[s]).min(axis=1)).max() for s in (a, k)]
    assert cover[1] < cover[0]


def test_typical_picks_the_densest_point_of_each_cluster_not_an_outlier():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    blobs = [c + rng.normal(scale=1.0, size=(n, 2)) for c, n in zip(centers, (60, 40, 20))]
    outliers = np.array([[4.0, 4.0], [-5.0, -5.0]])
    x = np.concatenate([*blobs, outliers])
    picks = typical_picks(x, 3, np.random.default_rng([0, 0]))
    assert picks.tolist() == typical_picks(x, 3, np.random.default_rng([0, 0])).tolist()  # deterministic
    # one per blob, largest cluster first, each close to its blob's centre (the densest region)
    near = [int(np.argmin(((centers - x[p]) ** 2).sum(axis=1))) for p in picks]
    assert near == [0, 1, 2]
    assert all(np.linalg.norm(x[p] - centers[c]) < 1.0 for p, c in zip(picks, near))
    ds = load_dataset("digits")
    t = initial_labels("typical", ds.x_train, 20, np.random.default_rng([0, 0]))
    assert len(set(t.tolist())) == 20 and t.tolist() == sorted(t.tolist())
    # typical first labels sit in denser places than random ones: smaller mean distance to 20 neighbours
    flat = ds.x_train.reshape(len(ds.x_train), -1)
    r = initial_labels("random", ds.x_train, 20, np.random.default_rng([0, 0]))
    density = [np.sort(np.sqrt(sq_dists(flat[s], flat)), axis=1)[:, 1:21].mean() for s in (t, r)]
    assert density[0] < density[1]
