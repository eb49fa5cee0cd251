"""Temperature scaling lowers NLL (cross-fitted, without extra labels); ECE measures what it should."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.active.calibration import cross_fit, ece, fit_temperature, nll, reliability, temper
from openmindspore.active.learners import make_learner
from openmindspore.data import load_dataset


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from calibrated probabilities q; the model reports q sharpened (q^3, renormalised)."""
    rng = np.random.default_rng(seed)
    q = rng.dirichlet(np.ones(4), size=n)
    y = np.array([rng.choice(4, p=row) for row in q])
    p = q**3 / (q**3).sum(axis=1, keepdims=True)
    return p, y


def test_temperature_scaling_lowers_held_out_nll_and_ece():
    p_cal, y_cal = _overconfident(2000, 0)
    p_test, y_test = _overconfident(2000, 1)
    t = fit_temperature(p_cal, y_cal)
    assert t == pytest.approx(3.0, rel=0.15)  # undoes the cube
    assert nll(temper(p_test, t), y_test) < nll(p_test, y_test) - 0.05
    assert ece(temper(p_test, t), y_test) < ece(p_test, y_test) / 2


def test_temperature_of_calibrated_probabilities_is_about_one():
    rng = np.random.default_rng(2)
    q = rng.dirichlet(np.ones(3), size=3000)
    y = np.array([rng.choice(3, p=row) for row in q])
    assert fit_temperature(q, y) == pytest.approx(1.0, abs=0.1)
    assert ece(q, y) < 0.05


def test_ece_and_reliability_by_hand():
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    y = np.array([0, 1, 0, 0])
    r = reliability(p, y, bins=10)
    assert r["confidence"] == pytest.approx([0.6, 0.9]) and r["accuracy"] == [1.0, 0.5] and r["count"] == [2, 2]
    assert ece(p, y, bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)


def test_cross_fitted_temperature_on_acquired_labels_lowers_test_nll():
    """The whole path the loop takes: out-of-fold predictions on the labels at hand fix T; the final
    model's test NLL drops. A random forest on few labels is badly under-confident."""
    ds = load_dataset("digits")
    idx = np.random.default_rng(0).choice(len(ds.x_train), 120, replace=False)
    learner = make_learner("random_forest", ds.x_train, ds.num_classes, seed=0)
    learner.fit(idx, ds.y_train[idx])
    oof = cross_fit(learner, ds.x_train, idx, ds.y_train[idx], 5, np.random.default_rng(1))
    assert oof.shape == (120, 10) and np.allclose(oof.sum(axis=1), 1.0)
    t = fit_temperature(oof, ds.y_train[idx])
    p = learner.proba(ds.x_test)
    assert t < 1.0  # sharpen
    assert nll(temper(p, t), ds.y_test) < nll(p, ds.y_test)


def test_cross_fit_is_out_of_fold():
    """A 1-nearest-neighbour learner predicts its own training points perfectly; out of fold it cannot
    see them, so duplicated points with conflicting labels expose any leak."""
    x = np.repeat(np.arange(20.0)[:, None], 2, axis=0)  # each point twice
    y = np.tile([0, 1], 20)  # ...with both labels
    learner = make_learner("knn", x, 2)
    oof = cross_fit(learner, x, np.arange(40), y, 40, np.random.default_rng(0))  # leave-one-out
    # out of fold, each point's only exact neighbour carries the other label
    assert (oof.argmax(axis=1) != y).all()
