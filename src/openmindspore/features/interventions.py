"""Interventions on one column of a feature table: owns how a column is replaced.

* ``marginal``: the column is permuted (permutation importance's intervention: it breaks the column's
  link with the target *and* with the other columns).
* ``conditional``: a draw from ``X_j | X_given`` (default: every other column). A continuous column is
  regressed on the others with a cross-fitted ridge regression (linear terms plus restricted cubic
  splines of its most related columns by default, or linear terms only; see
  :mod:`openmindspore.features._ridge`); the draw is the fitted value plus a permutation of the held-out
  residuals, so the link with the other columns is kept and only the column's own information is
  broken. A discrete column (at most ``max_levels`` distinct values) is permuted within strata of nearest
  neighbours in the standardised conditioning columns instead, which keeps its support.

Every column other than the intervened one is returned bitwise untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from openmindspore.errors import ConfigError
from openmindspore.features._ridge import rcs_basis, rcs_knots, ridge_gcv

__all__ = ["Kind", "SamplerOptions", "ConditionalSampler", "intervene", "is_discrete", "fold_ids", "nn_strata"]

Kind = Literal["marginal", "conditional"]
KINDS: tuple[str, ...] = ("marginal", "conditional")


@dataclass(frozen=True)
class SamplerOptions:
    """How :class:`ConditionalSampler` models ``X_j | X_given``."""

    basis: Literal["spline", "linear"] = "spline"
    n_knots: int = 5
    spline_top: int = 3  # splines for this many most rank-correlated columns; linear terms for all
    max_levels: int = 10  # a column with at most this many distinct values is discrete
    stratum: int = 8  # rows per nearest-neighbour stratum (discrete columns)
    discrete: bool | None = None  # None: decided from the column


def is_discrete(col: np.ndarray, max_levels: int = 10) -> bool:
    """A column with at most ``max_levels`` distinct values."""
    return len(np.unique(col)) <= max_levels


def fold_ids(n: int, folds: int, seed: int, y: np.ndarray | None = None) -> np.ndarray:
    """Fold index (0..folds-1) of each of ``n`` rows; stratified by ``y`` when given (classification)."""
    rng = np.random.default_rng([seed, 7919])
    out = np.empty(n, dtype=np.int64)
    if y is None:
        out[rng.permutation(n)] = np.arange(n) % folds
        return out
    start = 0
    for c in np.unique(y):  # deal each class's rows round-robin so every fold gets its share
        idx = rng.permutation(np.flatnonzero(y == c))
        out[idx] = (np.arange(len(idx)) + start) % folds
        start += len(idx)
    return out


def _rank_corr(z: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Spearman correlation of each column of ``z`` with ``x`` (0 for a constant column)."""
    rz = np.argsort(np.argsort(z, axis=0, kind="stable"), axis=0, kind="stable").astype(np.float64)
    rx = np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(np.float64)
    rz -= rz.mean(axis=0)
    rx -= rx.mean()
    den = np.sqrt((rz**2).sum(axis=0) * (rx**2).sum())
    return np.where(den > 0, (rz * rx[:, None]).sum(axis=0) / np.where(den > 0, den, 1.0), 0.0)


def _standardise(z: np.ndarray) -> np.ndarray:
    sd = z.std(axis=0)
    return (z - z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def nn_strata(z: np.ndarray, size: int) -> list[np.ndarray]:
    """Rows of ``z`` grouped greedily into strata of ``size`` nearest neighbours (standardised distance)."""
    n = len(z)
    if z.shape[1] == 0 or n <= size:
        return [np.arange(n)]
    zs = _standardise(z)
    free = np.ones(n, dtype=bool)
    out = []
    for i in range(n):
        if not free[i]:
            continue
        cand = np.flatnonzero(free)
        d = ((zs[cand] - zs[i]) ** 2).sum(axis=1)
        take = cand[np.argsort(d, kind="stable")[:size]]
        if free.sum() - len(take) < size // 2:  # do not leave a tiny last stratum
            take = cand
        free[take] = False
        out.append(np.sort(take))
    return out


class ConditionalSampler:
    """Draws of column ``j`` given columns ``given`` for the rows of the table it was fitted on.

    ``fit`` computes, for every row, a cross-fitted fitted value ``mu`` (from a regression trained on the
    other folds) and residual ``r``; ``draw(rows, rng)`` returns ``mu[rows] + permutation(r[rows])``.
    """

    def __init__(self, options: SamplerOptions | None = None) -> None:
        self.options = options or SamplerOptions()
        self.j = -1
        self.discrete = False
        self.mu = np.empty(0)
        self.resid = np.empty(0)
        self.r2 = float("nan")  # cross-fitted R^2 of the regression (continuous columns)
        self._x: np.ndarray = np.empty((0, 0))
        self._given: list[int] = []
        self._strata: dict[bytes, list[np.ndarray]] = {}

    def fit(
        self, X: np.ndarray, j: int, given: Sequence[int] | None = None, folds: np.ndarray | None = None
    ) -> ConditionalSampler:
        """Fit on ``X`` (n, p). ``folds``: fold id per row for cross-fitting (default 5 random folds)."""
        n, p = X.shape
        if not 0 <= j < p:
            raise ConfigError("column", j, f"a column index in [0, {p})")
        self.j = j
        self._given = [c for c in (range(p) if given is None else given) if c != j]
        self._x = X
        o = self.options
        self.discrete = is_discrete(X[:, j], o.max_levels) if o.discrete is None else o.discrete
        self._strata = {}
        if self.discrete:
            return self
        folds = fold_ids(n, min(5, n), 0) if folds is None else folds
        xj, z = X[:, j], X[:, self._given]
        keep = z.std(axis=0) > 0 if len(z) else np.zeros(0, dtype=bool)
        z = z[:, keep]
        self.mu = np.full(n, float(xj.mean()))
        for k in np.unique(folds):
            te = folds == k
            tr = ~te
            if z.shape[1] == 0 or tr.sum() < 3:
                self.mu[te] = xj[tr].mean() if tr.any() else xj.mean()
                continue
            self.mu[te] = self._regress(z[tr], xj[tr], z[te])
        self.resid = xj - self.mu
        var = float(xj.var())
        self.r2 = 1.0 - float(self.resid.var()) / var if var > 0 else 0.0
        return self

    def _regress(self, ztr: np.ndarray, xtr: np.ndarray, zte: np.ndarray) -> np.ndarray:
        """Ridge (penalty by GCV) of ``x`` on the conditioning columns: linear terms of all of them plus
        restricted cubic splines of the ``spline_top`` most rank-correlated with ``x``."""
        o = self.options
        btr, bte = ztr, zte
        if o.basis == "spline" and len(ztr) > 4 * o.n_knots and o.spline_top > 0:
            top = np.argsort(-np.abs(_rank_corr(ztr, xtr)), kind="stable")[: o.spline_top]
            knots = rcs_knots(ztr[:, top], o.n_knots)
            btr = np.column_stack([ztr, rcs_basis(ztr[:, top], knots)])
            bte = np.column_stack([zte, rcs_basis(zte[:, top], knots)])
        return ridge_gcv(btr, xtr, bte)

    def draw(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """New values of column ``j`` for ``rows`` (indices into the fitted table)."""
        rows = np.asarray(rows)
        if not self.discrete:
            return self.mu[rows] + self.resid[rows][rng.permutation(len(rows))]
        key = rows.tobytes()
        if key not in self._strata:
            self._strata[key] = nn_strata(
                self._x[np.ix_(rows, np.asarray(self._given, dtype=np.int64))], self.options.stratum
            )
        col = self._x[rows, self.j]
        out = col.copy()
        for s in self._strata[key]:
            out[s] = col[s[rng.permutation(len(s))]]
        return out


def intervene(
    X: np.ndarray,
    j: int,
    kind: Kind,
    rng: np.random.Generator,
    sampler: ConditionalSampler | None = None,
) -> np.ndarray:
    """A copy of ``X`` with column ``j`` replaced by a ``marginal`` or ``conditional`` intervention.

    ``conditional`` fits a :class:`ConditionalSampler` on ``X`` itself unless a sampler fitted on ``X``
    (same rows) is given. All other columns are bitwise those of ``X``."""
    X = np.asarray(X)
    if X.ndim != 2 or not 0 <= j < X.shape[1]:
        raise ConfigError("column", j, f"a column index of a 2-D table (X has shape {X.shape})")
    if kind not in KINDS:
        raise ConfigError("kind", kind, f"one of {list(KINDS)}")
    out = X.copy()
    rows = np.arange(len(X))
    if kind == "marginal":
        out[:, j] = X[rng.permutation(len(X)), j]
        return out
    if sampler is None:
        sampler = ConditionalSampler().fit(np.asarray(X, dtype=np.float64), j)
    elif sampler.j != j or sampler._x.shape != X.shape:
        raise ConfigError("sampler", f"fitted for column {sampler.j}", f"a sampler fitted on this X for column {j}")
    out[:, j] = sampler.draw(rows, rng)
    return out
