"""Closed-form regressions for the conditional samplers: owns the restricted cubic spline basis and ridge
regression with its penalty chosen by generalised cross-validation (one SVD per fit, all in NumPy: the
samplers fit thousands of these, where scikit-learn's input checks cost more than the algebra).
"""

from __future__ import annotations

import numpy as np

__all__ = ["rcs_knots", "rcs_basis", "ridge_gcv"]

ALPHAS = np.logspace(-3, 4, 15)


def rcs_knots(z: np.ndarray, n_knots: int) -> list[np.ndarray]:
    """Per column of ``z``: ``n_knots`` knots at equally spaced quantiles (fewer when values repeat)."""
    qs = np.linspace(0.05, 0.95, n_knots)
    return [np.unique(np.quantile(z[:, c], qs)) for c in range(z.shape[1])]


def rcs_basis(z: np.ndarray, knots: list[np.ndarray]) -> np.ndarray:
    """Restricted (natural) cubic spline terms of each column of ``z``, without the linear term: cubic
    between the knots, linear beyond the boundary knots (Harrell's parametrisation)."""
    cols = []
    for c, t in enumerate(knots):
        k = len(t)
        if k < 3:
            continue
        x = z[:, c]
        scale = (t[-1] - t[0]) ** 2

        def p3(u: np.ndarray) -> np.ndarray:
            return np.maximum(u, 0.0) ** 3

        for j in range(k - 2):
            cols.append(
                (
                    p3(x - t[j])
                    - p3(x - t[-2]) * (t[-1] - t[j]) / (t[-1] - t[-2])
                    + p3(x - t[-1]) * (t[-2] - t[j]) / (t[-1] - t[-2])
                )
                / scale
            )
    return np.column_stack(cols) if cols else np.empty((len(z), 0))


def ridge_gcv(btr: np.ndarray, ytr: np.ndarray, bte: np.ndarray) -> np.ndarray:
    """Predictions on ``bte`` of a ridge regression (intercept unpenalised, columns standardised) fitted
    on ``(btr, ytr)`` with the penalty that minimises the GCV error over :data:`ALPHAS`."""
    mu, sd = btr.mean(axis=0), btr.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    a, b = (btr - mu) / sd, (bte - mu) / sd
    ym = float(ytr.mean())
    yc = ytr - ym
    n = len(a)
    if a.shape[1] == 0:
        return np.full(len(b), ym)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    uty = u.T @ yc
    s2 = s**2
    best, best_gcv = ALPHAS[0], np.inf
    for alpha in ALPHAS:
        h = s2 / (s2 + alpha)
        resid = yc - u @ (h * uty)
        gcv = float(resid @ resid) / max(n - float(h.sum()), 1e-9) ** 2
        if gcv < best_gcv:
            best, best_gcv = alpha, gcv
    coef = vt.T @ (s / (s2 + best) * uty)
    return np.asarray(ym + b @ coef, dtype=np.float64)
