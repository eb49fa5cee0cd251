"""Learners: the protocol's shapes, missing classes, posterior samples, the semi-supervised variant,
and the audit stream that certifies abstention."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.active._audit import audit_order, audit_share, extend_audit
from openmindspore.active.learners import LEARNERS, make_learner
from openmindspore.data import load_dataset


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("name", LEARNERS)
def test_protocol_shapes_and_unseen_classes(digits, name):
    idx = np.flatnonzero(digits.y_train < 5)[:60]  # classes 5-9 never labelled
    learner = make_learner(name, digits.x_train, 10, seed=0)
    learner.fit(idx, digits.y_train[idx])
    p = learner.proba(digits.x_test)
    assert p.shape == (len(digits.x_test), 10) and np.allclose(p.sum(axis=1), 1.0)
    assert np.all(p[:, 5:] == 0)
    assert learner.embed(digits.x_test[:3]).shape == (3, 64)
    s = learner.proba_samples(digits.x_test[:7], 4)
    assert s.ndim == 3 and s.shape[1:] == (7, 10)
    assert (s.shape[0] > 1) == learner.has_samples  # only the forest has posterior samples of its own
    acc = (p.argmax(axis=1) == digits.y_test)[digits.y_test < 5].mean()
    assert acc > 0.8


def test_one_class_is_a_constant_model(digits):
    learner = make_learner("logreg", digits.x_train, 10)
    learner.fit(np.array([3, 4]), np.array([7, 7]))
    assert (learner.proba(digits.x_test[:5]).argmax(axis=1) == 7).all()


def test_bootstrap_ensemble_gives_distinct_deterministic_samples(digits):
    idx = np.arange(80)
    a = make_learner("logreg", digits.x_train, 10, seed=3, ensemble=4)
    b = make_learner("logreg", digits.x_train, 10, seed=3, ensemble=4)
    a.fit(idx, digits.y_train[idx])
    b.fit(idx, digits.y_train[idx])
    sa = a.proba_samples(digits.x_test[:20], 10)
    assert sa.shape[0] == 4 and a.has_samples
    np.testing.assert_array_equal(sa, b.proba_samples(digits.x_test[:20], 10))
    assert np.abs(sa[0] - sa[1]).max() > 1e-3
    np.testing.assert_allclose(a.proba(digits.x_test[:20]), sa.mean(axis=0))


def test_semi_supervised_variant_uses_the_unlabelled_pool(digits):
    rng = np.random.default_rng(0)
    idx = rng.choice(len(digits.x_train), 40, replace=False)
    sup = make_learner("logreg", digits.x_train, 10)
    semi = make_learner("logreg", digits.x_train, 10, semi_supervised=True)
    sup.fit(idx, digits.y_train[idx])
    semi.fit(idx, digits.y_train[idx])
    acc = [(m.proba(digits.x_test).argmax(axis=1) == digits.y_test).mean() for m in (sup, semi)]
    assert acc[1] > acc[0] + 0.02
    # with every pool row labelled it is the base learner
    everything = np.arange(len(digits.x_train))
    full_sup, full_semi = sup.fresh(), semi.fresh()
    full_sup.fit(everything, digits.y_train)
    full_semi.fit(everything, digits.y_train)
    np.testing.assert_allclose(full_sup.proba(digits.x_test), full_semi.proba(digits.x_test))
    # alpha: how far the graph outweighs a given label
    smooth = make_learner("logreg", digits.x_train, 10, semi_supervised=True, spread_alpha=0.8)
    smooth.fit(idx, digits.y_train[idx])
    assert np.abs(smooth.proba(digits.x_test) - semi.proba(digits.x_test)).max() > 1e-3


def test_audit_stream_is_a_uniform_prefix_with_free_hits():
    order = audit_order(5, 100)
    assert sorted(order.tolist()) == list(range(100))
    assert order.tolist() == audit_order(5, 100).tolist()
    taken = {int(order[0]), int(order[2])}
    new, pos = extend_audit(order, 0, taken, 3)
    assert new == [int(order[1]), int(order[3]), int(order[4])] and pos == 5  # two were free
    assert audit_share(0.5, 10) == 5 and audit_share(0.0, 10) == 0 and audit_share(0.01, 10) == 1
    new, pos = extend_audit(order, 98, set(), 5)
    assert len(new) == 2 and pos == 100
