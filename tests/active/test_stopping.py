"""Stopping rules on synthetic curves, and Cohen's kappa."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.active.stopping import cohen_kappa, fired, first_stop


def test_cohen_kappa():
    a = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(np.zeros(5), np.zeros(5)) == 1.0
    b = a.copy()
    b[0] = 1
    po, pe = 7 / 8, (3 / 8 * 2 / 8 + 3 / 8 * 4 / 8 + 2 / 8 * 2 / 8)
    assert cohen_kappa(a, b) == pytest.approx((po - pe) / (1 - pe))
    rng = np.random.default_rng(0)
    assert abs(cohen_kappa(rng.integers(0, 3, 5000), rng.integers(0, 3, 5000))) < 0.05  # chance agreement


def _rows(kappas, mu=None, window_min=None, start=20, step=10):
    return [
        {
            "labels": start + step * i,
            "kappa": k,
            "max_uncertainty": None if mu is None else mu[i],
            "kappa_window_min": None if window_min is None else window_min[i],
        }
        for i, k in enumerate(kappas)
    ]


def test_stabilizing_predictions_need_the_whole_window():
    rows = _rows([None, 0.8, 0.95, 0.99, 0.995, 0.999, 1.0])
    assert first_stop("stabilizing", rows, kappa=0.99, window=3) == 5  # mean(0.99, 0.995, 0.999) >= 0.99
    assert first_stop("stabilizing", rows, kappa=0.99, window=1) == 3
    assert first_stop("stabilizing", rows[:5], kappa=0.99, window=3) is None
    # one unstable round inside the window delays the stop
    assert first_stop("stabilizing", _rows([None, 1.0, 1.0, 0.9, 1.0, 1.0, 1.0]), kappa=0.99, window=3) == 6


def test_max_uncertainty_fires_below_the_threshold():
    rows = _rows([None] * 5, mu=[0.9, 0.6, 0.3, 0.2, 0.1])
    assert first_stop("max-uncertainty", rows, max_uncertainty=0.25) == 3
    assert first_stop("max-uncertainty", rows, max_uncertainty=0.05) is None


def test_auto_waits_until_small_changes_stop_adding_up():
    """Each round changes little (consecutive kappa 0.995) but the drift over five rounds is larger."""
    kappas = [None, 0.995, 0.995, 0.995, 0.995, 0.995, 0.995, 0.998, 0.999]
    window_min = [None, None, None, None, None, 0.97, 0.98, 0.985, 0.991]
    rows = _rows(kappas, window_min=window_min)
    assert first_stop("stabilizing", rows, kappa=0.99, window=3) == 3
    assert first_stop("auto", rows, kappa=0.99) == 8
    assert not fired("auto", rows[:8], kappa=0.99) and not fired("none", rows) and not fired("auto", [])
