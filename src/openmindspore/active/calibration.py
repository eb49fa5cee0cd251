"""Calibration without extra labels: cross-fitted temperature scaling, expected calibration error.

``cross_fit`` predicts every acquired label with a learner that did not see it (K folds over the
labelled set), so fitting the temperature (Guo et al. 2017) and certifying abstention cost no labels
beyond those the learner already asked for. Probabilities are tempered as softmax(log p / T), with
log p floored at ``LOG_FLOOR`` so a class a fold never saw does not dominate the fit.
"""

from __future__ import annotations

import numpy as np

from openmindspore.active.learners import Learner

__all__ = ["LOG_FLOOR", "temper", "nll", "fit_temperature", "cross_fit", "ece", "reliability", "binned"]

LOG_FLOOR = np.log(1e-6)


def _logits(p: np.ndarray) -> np.ndarray:
    return np.maximum(np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1.0)), LOG_FLOOR)


def temper(p: np.ndarray, t: float) -> np.ndarray:
    """softmax(log p / t) over the last axis: t > 1 softens, t < 1 sharpens; t = 1 is the identity up to
    the floor."""
    z = _logits(p) / float(t)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(p: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of labels ``y`` (N,) under probabilities ``p`` (N, C), floored."""
    y = np.asarray(y, dtype=np.int64)
    return float(-_logits(p)[np.arange(len(y)), y].mean())


def fit_temperature(p: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature in ``bounds`` minimising the NLL of ``y`` under ``temper(p, t)`` (1.0 when
    there are no labels)."""
    from scipy.optimize import minimize_scalar

    if len(y) == 0:
        return 1.0
    res = minimize_scalar(
        lambda s: nll(temper(p, float(np.exp(s))), y),
        bounds=(float(np.log(bounds[0])), float(np.log(bounds[1]))),
        method="bounded",
        options={"xatol": 1e-4},
    )
    t = float(np.exp(res.x))
    return t if nll(temper(p, t), y) <= nll(temper(p, 1.0), y) else 1.0


def cross_fit(
    learner: Learner, x_pool: np.ndarray, idx: np.ndarray, y: np.ndarray, folds: int, rng: np.random.Generator
) -> np.ndarray:
    """Out-of-fold probabilities (n, C) for the labelled pool rows ``idx``: each fold is predicted by a
    fresh learner fitted on the other folds. Folds are a random partition drawn from ``rng``."""
    idx, y = np.asarray(idx, dtype=np.int64), np.asarray(y, dtype=np.int64)
    k = max(2, min(int(folds), len(idx)))
    fold_of = np.empty(len(idx), dtype=np.int64)
    fold_of[rng.permutation(len(idx))] = np.arange(len(idx)) % k
    out = np.zeros((len(idx), learner.num_classes))
    for f in range(k):
        test, train = fold_of == f, fold_of != f
        m = learner.fresh()
        m.fit(idx[train], y[train])
        out[test] = m.proba(x_pool[idx[test]])
    return out


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 15) -> dict[str, list[float]]:
    """Per equal-width confidence bin: mean confidence, accuracy and count (empty bins omitted)."""
    p, y = np.asarray(p), np.asarray(y, dtype=np.int64)
    return binned(p.max(axis=1), p.argmax(axis=1) == y, bins)


def binned(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> dict[str, list[float]]:
    """:func:`reliability` from top-class confidences (N,) and whether each prediction was right (N,)."""
    conf, correct = np.asarray(conf, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    out: dict[str, list[float]] = {"confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        sel = which == b
        if sel.any():
            out["confidence"].append(float(conf[sel].mean()))
            out["accuracy"].append(float(correct[sel].mean()))
            out["count"].append(float(sel.sum()))
    return out


def ece(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: sum over equal-width confidence bins of |accuracy - confidence|
    weighted by the bin's share of samples."""
    r = reliability(p, y, bins)
    n = sum(r["count"])
    if n == 0:
        return 0.0
    return float(sum(c / n * abs(a - f) for f, a, c in zip(r["confidence"], r["accuracy"], r["count"])))
