"""Certified abstention: the guarantee holds in >= 1 - delta of simulated repeats; the uncorrected
threshold does not; too few labels are said to be too few, with an estimate of how many would do."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.active.abstention import (
    certify,
    labels_needed,
    matched_threshold,
    selective,
    uncorrected_threshold,
    upper_bound,
)

A = 20.0  # confidences ~ Beta(A, 1); P(correct | c) = c (a calibrated model, 95% accurate)


def _draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    c = rng.beta(A, 1.0, size=n)
    return c, rng.random(n) < c


def _true_selective_error(lam: float) -> float:
    """E[1 - c | c >= lam] for c ~ Beta(A, 1), in closed form."""
    tail = 1.0 - lam**A
    return ((1.0 - lam**A) - A / (A + 1.0) * (1.0 - lam ** (A + 1.0))) / tail


def test_upper_bound_is_clopper_pearson():
    assert upper_bound(0, 100, 0.1) == pytest.approx(1 - 0.1 ** (1 / 100))
    assert upper_bound(5, 100, 0.1) > 0.05 and upper_bound(100, 100, 0.1) == 1.0


@pytest.mark.parametrize("method", ["ltt", "sgr"])
def test_guarantee_holds_in_at_least_1_minus_delta_of_repeats(method):
    target, delta, reps = 0.97, 0.1, 200
    rng = np.random.default_rng(123)
    ok, naive_ok, certified, coverage = 0, 0, 0, []
    for _ in range(reps):
        c, correct = _draw(rng, 1000)
        cert = certify(c, correct, target, delta, method)
        if cert.certified:
            certified += 1
            coverage.append(cert.calib_coverage)
        ok += (not cert.certified) or _true_selective_error(cert.threshold) <= 1 - target
        naive = uncorrected_threshold(c, correct, target)
        naive_ok += naive is None or _true_selective_error(naive) <= 1 - target
    assert ok / reps >= 1 - delta
    assert naive_ok / reps < 1 - delta  # without the correction the target is missed far more often
    assert certified / reps > 0.5 and np.mean(coverage) > 0.4  # and the certificate is not vacuous


def test_too_few_labels_are_not_certified_and_the_estimate_suffices():
    target, delta = 0.95, 0.1
    rng = np.random.default_rng(7)
    c, correct = _draw(rng, 40)
    cert = certify(c, correct, target, delta)
    assert not cert.certified and cert.threshold is None
    more = cert.more_labels_needed
    assert more is not None and more > 0
    assert more == labels_needed(c, correct, target, delta)
    # with that many more labels from the same distribution the target is usually certified
    hits = sum(certify(*_draw(rng, 40 + more), target, delta).certified for _ in range(100))
    assert hits >= 50


def test_hopeless_target_has_no_estimate():
    rng = np.random.default_rng(0)
    c = rng.random(200)
    correct = rng.random(200) < 0.5  # a coin, whatever the confidence
    cert = certify(c, correct, 0.99, 0.1)
    assert not cert.certified and cert.more_labels_needed is None


def test_selective_coverage_and_accuracy():
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, True, False, True])
    assert selective(conf, correct, 0.75) == (0.5, 1.0)
    assert selective(conf, correct, None) == (0.0, None)
    assert uncorrected_threshold(conf, correct, 0.99) == 0.8
    assert uncorrected_threshold(conf, correct, 0.7) == 0.6


def test_matched_threshold_keeps_the_share_selected():
    calib = np.linspace(0.5, 1.0, 101)  # a threshold of 0.9 selects 21 of 101
    pool = np.linspace(0.8, 1.0, 1000)  # another model: more confident
    thr = matched_threshold(calib, 0.9, pool)
    share = np.mean(calib >= 0.9)
    assert np.mean(pool >= thr) == pytest.approx(share, abs=1e-3) and thr > 0.9
    assert matched_threshold(calib, None, pool) is None
