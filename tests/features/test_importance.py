"""Importance: cross-fitted loss changes with CIs; a noisy copy's conditional importance is ~0 while its
source's stays > 0; deterministic per seed; prefit models are measured as they are."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression

from openmindspore.errors import ConfigError
from openmindspore.features import importances, intervention_importance


def _copy_toy(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    x1 = rng.standard_normal(n)
    other = rng.standard_normal(n)
    copy = x1 + 0.5 * rng.standard_normal(n)
    y = 2.0 * x1 + 1.0 * other + 0.5 * rng.standard_normal(n)
    return np.column_stack([x1, other, copy]), y


def test_noisy_copy_has_no_conditional_importance_but_its_source_has():
    X, y = _copy_toy()
    # one candidate feature per split: the forest splits on the copy whenever x1 is not offered
    forest = RandomForestRegressor(n_estimators=40, max_features=1, min_samples_leaf=3, random_state=0)
    r = importances(forest, X, y, ("marginal", "conditional"), 3, n_boot=300, feature_names=["x1", "o", "c"])
    m, c = r["marginal"], r["conditional"]
    assert m.lower[2] > 0  # the model uses the copy ...
    assert c.lower[2] <= 0 <= c.ci[2, 1]  # ... but given the others it carries nothing
    assert c.mean[2] < 0.1 * c.mean[0]
    assert c.lower[0] > 0 and c.lower[1] > 0
    assert m.rank()[0] == "x1"
    for imp in (m, c):
        assert np.all(imp.ci[:, 0] <= imp.mean) and np.all(imp.mean <= imp.ci[:, 1])


def test_same_seed_same_result_other_seed_differs():
    X, y = _copy_toy(200)
    a = intervention_importance("ridge", X, y, "conditional", 2, seed=3, n_boot=100)
    b = intervention_importance("ridge", X, y, "conditional", 2, seed=3, n_boot=100)
    c = intervention_importance("ridge", X, y, "conditional", 2, seed=4, n_boot=100)
    assert a.mean.tobytes() == b.mean.tobytes() and a.ci.tobytes() == b.ci.tobytes()
    assert not np.array_equal(a.mean, c.mean)
    assert a.to_dict()["features"]["x1"]["importance"] == pytest.approx(float(a.mean[0]))


def test_prefit_model_is_measured_as_it_is_and_must_be_fitted():
    X, y = _copy_toy(200)
    fitted = LinearRegression().fit(X, y)
    imp = intervention_importance(fitted, X, y, "marginal", 2, cv="prefit", n_boot=100)
    assert imp.lower[0] > 0 and imp.n_rows == 200
    with pytest.raises(ConfigError, match="fitted model"):
        intervention_importance(LinearRegression(), X, y, "marginal", cv="prefit")
    with pytest.raises(ConfigError, match="3 features"):
        intervention_importance(fitted, np.column_stack([X, X[:, :1]]), y, "marginal", cv="prefit")


def test_classification_uses_log_loss_and_stratified_folds():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((150, 3))
    y = (X[:, 0] + 0.3 * rng.standard_normal(150) > 0).astype(int)
    imp = intervention_importance("logreg", X, y, "conditional", 2, n_boot=100)
    assert imp.lower[0] > 0 and imp.mean[0] > 10 * abs(imp.mean[1])
    assert imp.base_loss < 0.5  # mean held-out log loss of a good model


def test_a_forest_classifiers_zero_vote_costs_half_a_vote_other_models_the_clip():
    """A forest's probabilities are vote fractions: a row none of its n trees votes for costs -log(1 / 2n),
    in a pipeline too, and in a pipeline of pipelines (naming's one-column model); other classifiers keep the
    1e-6 clip."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from openmindspore.features.estimators import row_loss

    X = np.r_[np.zeros((20, 1)), np.ones((20, 1))]
    y = np.r_[np.zeros(20, dtype=int), np.ones(20, dtype=int)]
    wrong = 1 - y
    for forest in (
        RandomForestClassifier(n_estimators=50, random_state=0).fit(X, y),
        make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=50, random_state=0)).fit(X, y),
        make_pipeline(
            StandardScaler(), make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=50, random_state=0))
        ).fit(X, y),
    ):
        np.testing.assert_allclose(row_loss(forest, X, wrong, "classification"), -np.log(0.5 / 50))
        np.testing.assert_allclose(row_loss(forest, X, y, "classification"), 0.0, atol=1e-12)
    sure = LogisticRegression(C=1e6).fit(200 * X - 100, y)
    np.testing.assert_allclose(row_loss(sure, 200 * X - 100, wrong, "classification"), -np.log(1e-6))
