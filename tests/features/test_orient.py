"""Orientation of a redundant pair: of a skewed source and its tanh proxy that a linear model prefers, the
source is kept; the injected copy of a kept source is tested and not swapped in; two real correlated features
that do not remove each other are never tested."""

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from openmindspore.features import intervention_elimination
from openmindspore.features.importance import CrossFit
from openmindspore.features.interventions import fold_ids
from openmindspore.features.orient import information_gain, orient

NAMES = ["s", "b", "w1", "w2", "proxy"]


def _skewed_source(n: int = 300, seed: int = 0):
    """``s`` skewed (lognormal), ``y`` saturating in log ``s`` (a linear model fits the tanh proxy better),
    ``w1``, ``w2`` other columns that depend on ``s``, ``b`` an independent informative feature."""
    rng = np.random.default_rng(seed)
    u, b = rng.standard_normal(n), rng.standard_normal(n)
    s = np.exp(0.7 * u)
    g = np.tanh((s - s.mean()) / s.std())
    proxy = g + 0.3 * g.std() * rng.standard_normal(n)
    w1, w2 = u + 0.6 * rng.standard_normal(n), u + 0.9 * rng.standard_normal(n)
    y = np.tanh(u) + 0.7 * b + 0.5 * rng.standard_normal(n)
    return np.column_stack([s, b, w1, w2, proxy]), y


def _cv_loss(X: np.ndarray, y: np.ndarray, cols: list[int]) -> float:
    cf = CrossFit(make_pipeline(StandardScaler(), Ridge()), X[:, cols], y, "regression", 5, 0)
    cf.parts()
    return float(cf.base.mean())


def test_a_linear_model_prefers_the_proxy_but_the_source_is_kept():
    X, y = _skewed_source()
    assert _cv_loss(X, y, [1, 4]) < _cv_loss(X, y, [1, 0])  # the premise: ridge fits better with the proxy
    fid = fold_ids(len(X), 5, 0)
    z_all, z_y = information_gain(X, y, "regression", 4, 0, fid)
    assert z_all > 3.0 and z_y > -1.0  # the source predicts the other columns clearly better
    kept = np.array([False, True, False, False, True])  # the selection kept the proxy, dropped the source
    asked = []

    def accept(cols, replaced):
        asked.append((cols, replaced))
        return True, (0.0, 1.0), (0.0, 1.0)

    new, tested = orient(X, y, "regression", NAMES, kept, {"s": "proxy"}, fid, accept)
    assert new.tolist() == [True, True, False, False, False]
    assert asked == [([0, 1], [1, 4])]
    swaps = [t for t in tested if t.made]
    assert [(t.kept, t.by) for t in swaps] == [("proxy", "s")]
    # the score guard decides: vetoed, nothing changes
    new, tested = orient(
        X, y, "regression", NAMES, kept, {"s": "proxy"}, fid, lambda c, r: (False, (9.0, 1.0), (9.0, 1.0))
    )
    assert new.tolist() == kept.tolist() and not any(t.made for t in tested)


def test_a_kept_source_is_not_swapped_for_its_copy_or_proxy():
    X, y = _skewed_source(seed=1)
    n = len(X)
    copy = X[:, 0] + 0.5 * X[:, 0].std() * np.random.default_rng(5).standard_normal(n)
    X = np.column_stack([X, copy])
    names = [*NAMES, "copy"]
    kept = np.array([True, True, False, False, False, False])
    new, tested = orient(
        X,
        y,
        "regression",
        names,
        kept,
        {"proxy": "s", "copy": "s"},
        fold_ids(n, 5, 1),
        lambda c, r: (True, (0.0, 1.0), (0.0, 1.0)),
    )
    assert new.tolist() == kept.tolist()
    assert sorted(t.by for t in tested) == ["copy", "proxy"]  # both pairs were tested ...
    assert all(t.z_all < 0 and not t.made for t in tested)  # ... and the source predicts better than either


def test_real_correlated_features_without_a_link_are_never_swapped():
    rng = np.random.default_rng(2)
    n = 300
    a = rng.standard_normal(n)
    b = 0.8 * a + 0.6 * rng.standard_normal(n)  # corr 0.8 with a
    c = a + 0.5 * rng.standard_normal(n)  # makes a the more "central" column
    y = a + b + 0.5 * rng.standard_normal(n)
    X = np.column_stack([a, b, c])
    elim, _ = intervention_elimination(Ridge(), X, y, "regression", ["a", "b", "c"], repeats=3, n_boot=300)
    assert {"a", "b"} <= set(elim.kept_names)
    assert elim.swaps == {} and all(t.kept != "b" and t.by != "b" for t in elim.oriented)
    # the rule on its own: no naming link between a and b, nothing tested
    kept = np.array([True, True, False])
    new, tested = orient(
        X, y, "regression", ["a", "b", "c"], kept, {}, fold_ids(n, 5, 0), lambda c, r: (True, (0.0, 1.0), (0.0, 1.0))
    )
    assert new.tolist() == kept.tolist() and tested == []
