"""Construction: in y = x1*x2 + noise, the product x1*x2 is constructed (and kept on the rows that did
not generate it); useless candidates are not."""

import numpy as np

from openmindspore.features import FeatureConstructor, candidates
from openmindspore.features.estimators import resolve_model


def test_finds_the_product_in_y_equals_x1_times_x2():
    rng = np.random.default_rng(0)
    n = 500
    X = rng.standard_normal((n, 4))
    y = X[:, 0] * X[:, 1] + 0.3 * rng.standard_normal(n)
    est, _ = resolve_model("ridge", "regression", 0)
    fc = FeatureConstructor(est, top_k=3, max_new=3, repeats=3, n_boot=300).fit(X, y, ["x1", "x2", "x3", "x4"])
    assert fc.formulas_[0] in ("x1*x2", "x2*x1")
    mean, lo, hi = fc.importances_[0]
    assert lo > 0
    Z = fc.transform(X)
    assert Z.shape == (n, 4 + len(fc.formulas_))
    assert np.allclose(Z[:, 4], X[:, 0] * X[:, 1])
    assert list(fc.get_feature_names_out())[:5] == ["x1", "x2", "x3", "x4", fc.formulas_[0]]


def test_candidate_formulas_and_values():
    X = np.array([[1.0, 2.0], [-3.0, 0.5], [0.0, -4.0], [2.0, 1.0], [4.0, 3.0], [-1.0, -2.0]])
    cands = {c.formula(["a", "b"]): c for c in candidates(X, [0, 1], bins=2)}
    assert {"a*b", "a/b", "b/a", "log|a|", "a^2", "qbin2(a)"} <= set(cands)
    assert np.allclose(cands["a*b"].compute(X), X[:, 0] * X[:, 1])
    assert np.allclose(cands["a^2"].compute(X), X[:, 0] ** 2)
    assert np.all(np.isfinite(cands["b/a"].compute(X)))  # a = 0 in a row: the guard keeps it finite
    assert set(cands["qbin2(a)"].compute(X)) == {0.0, 1.0}
