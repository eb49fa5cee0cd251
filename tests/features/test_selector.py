"""InterventionSelector: a scikit-learn transformer that passes check_estimator, keeps one of two
redundant features and drops noise; works inside a Pipeline and through the ``intervention`` spec step."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from openmindspore.errors import ConfigError
from openmindspore.features import InterventionSelector
from openmindspore.models.sklearn import build_pipeline


def test_passes_the_applicable_check_estimator_checks():
    # every check applies (none is expected to fail); array-API input is skipped unless SCIPY_ARRAY_API is set.
    # min_features=100: one measurement per fit (no elimination steps) keeps the ~50 checks fast; the
    # elimination itself is tested below
    sel = InterventionSelector(repeats=2, n_boot=100, folds=3, min_features=100, explainers=0)
    results = check_estimator(sel, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert failed == []
    assert sum(r["status"] == "passed" for r in results) >= 45


def _redundant(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n)
    b = rng.standard_normal(n)
    X = np.column_stack([a, a + 0.05 * rng.standard_normal(n), b, rng.standard_normal(n), rng.standard_normal(n)])
    y = 2.0 * a + b + 0.5 * rng.standard_normal(n)
    return X, y


def test_keeps_one_of_two_redundant_features_and_drops_the_noise():
    X, y = _redundant()
    sel = InterventionSelector(repeats=3, n_boot=300, random_state=0)
    assert sel.get_params()["repeats"] == 3 and not hasattr(sel, "support_")  # __init__ only stores
    Xs = sel.fit_transform(X, y)
    support = sel.get_support()
    assert support[2] and not support[3] and not support[4]  # b kept, noise dropped
    assert support[0] != support[1]  # exactly one of the redundant pair
    assert Xs.shape == (300, int(support.sum())) == (300, 2)
    assert np.all(sel.ci_[support, 0] > 0)  # the stopping rule
    assert np.isnan(sel.importances_[~support]).all()
    assert {"x1", "x2"} & {d.name for d in sel.drops_}
    dropped_twin = "x2" if support[0] else "x1"
    assert sel.proxies_.get(dropped_twin) == ("x1" if support[0] else "x2")
    assert sel.n_features_in_ == 5


def test_marginal_kind_keeps_both_redundant_features():
    X, y = _redundant()
    sel = InterventionSelector(kind="marginal", repeats=3, n_boot=300).fit(X, y)
    assert sel.get_support()[:3].all()  # permutation importance cannot see the redundancy


def test_in_a_pipeline_spec_with_the_pipelines_own_model():
    import openmindspore.features  # noqa: F401  (registers the step)

    X, y = _redundant(200)
    spec = [
        {"step": "scale", "kind": "standard"},
        {"step": "features", "kind": "intervention"},
        {"step": "model", "kind": "ridge", "alpha": 1.0},
    ]
    pipe = build_pipeline(spec, "regression", seed=0).fit(X, y)
    sel = pipe.named_steps["intervention"]
    assert sel.estimator is not pipe.named_steps["model"]  # a clone of the pipeline's model
    assert sel.get_support()[2] and sel.get_support().sum() <= 3
    assert pipe.score(X, y) > 0.8


def _weak(seed: int = 4, n: int = 150):
    """x0 strong, ``weak`` with a small real effect, two noise columns (seed 4: the one-s.e. rule drops ``weak``)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, X[:, 0] + 0.2 * X[:, 1] + rng.standard_normal(n)


def test_tolerance_trades_features_for_score_loss():
    from sklearn.linear_model import Ridge

    X, y = _weak()
    one_se = InterventionSelector(estimator=Ridge(), repeats=5).fit(X, y)
    strict = InterventionSelector(estimator=Ridge(), repeats=5, tolerance=0.0).fit(X, y)
    assert one_se.get_support().tolist() == [True, False, False, False]  # weak's drop cost < 1 s.e.
    assert strict.get_support()[:2].all()  # no loss allowed: weak (x2) stays ...
    assert strict.get_support().sum() > 2 and strict.guarded_  # ... and so does a noise column whose drop cost a little
    for sel, tol in ((one_se, 1.0), (strict, 0.0)):
        assert all(d.loss_change[0] <= tol * d.loss_change[1] for d in sel.drops_)  # every drop it accepted


@pytest.mark.parametrize("tolerance", [-1.0, float("nan"), float("inf"), "1", True])
def test_tolerance_is_validated(tolerance):
    X, y = _weak()
    with pytest.raises(ConfigError, match="tolerance="):
        InterventionSelector(tolerance=tolerance).fit(X, y)


@pytest.mark.parametrize("bad", [{"kind": "shap"}, {"folds": 1}])
def test_bad_parameters(bad):
    X, y = _redundant(30)
    with pytest.raises(ValueError):
        InterventionSelector(**bad).fit(X, y)
