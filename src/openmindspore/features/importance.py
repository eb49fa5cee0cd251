"""Intervention importance: owns the cross-fitted loss changes of interventions and their 95% CIs.

For a re-fittable model, the rows (train+val) are split into K folds; a clone of the model is fitted on
K-1 folds and each intervention is applied ``repeats`` times to the held-out fold only, so every row's
loss change is measured by a model that never saw it. The conditional samplers are cross-fitted on the
same folds. A ``prefit`` model (a trained run) is measured as it is on the rows given.

A feature's importance is the mean over rows and repeats of ``loss(intervened) - loss(original)``; its
95% CI is a percentile bootstrap that resamples rows and repeats. Random draws are keyed by
``(seed, intervention, fold)``, so results do not depend on evaluation order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openmindspore.errors import ConfigError
from openmindspore.features.estimators import fit_clone, require_fitted, resolve_model, row_loss, single_threaded
from openmindspore.features.inputs import Task, check_table, check_target
from openmindspore.features.interventions import KINDS, ConditionalSampler, Kind, SamplerOptions, fold_ids

__all__ = [
    "Plan",
    "Importance",
    "CrossFit",
    "crossfit_deltas",
    "bootstrap_ci",
    "intervention_importance",
    "importances",
]


@dataclass(frozen=True)
class Plan:
    """One intervention: column ``j`` replaced by a ``kind`` draw; ``given`` restricts what a conditional
    draw conditions on (default: every other column)."""

    j: int
    kind: Kind = "conditional"
    given: tuple[int, ...] | None = None
    options: SamplerOptions = field(default_factory=SamplerOptions)


@dataclass
class Importance:
    """Per-feature importance: ``mean`` (loss units) and ``ci`` (95%, shape (p, 2)) for ``names``."""

    names: list[str]
    kind: str
    mean: np.ndarray
    ci: np.ndarray
    base_loss: float
    n_rows: int
    repeats: int

    @property
    def lower(self) -> np.ndarray:
        return self.ci[:, 0]

    def rank(self) -> list[str]:
        """Names from most to least important."""
        return [self.names[i] for i in np.argsort(-self.mean, kind="stable")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "base_loss": self.base_loss,
            "n_rows": self.n_rows,
            "repeats": self.repeats,
            "features": {
                n: {"importance": float(m), "ci95": [float(lo), float(hi)]}
                for n, m, (lo, hi) in zip(self.names, self.mean, self.ci)
            },
        }


def bootstrap_ci(
    deltas: np.ndarray, n_boot: int, rng: np.random.Generator, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and percentile CI over rows and repeats of ``deltas`` (P, R, n): shapes (P,), (P, 2)."""
    P, R, n = deltas.shape
    mean = deltas.mean(axis=(1, 2))
    if n_boot <= 0 or n < 2:
        return mean, np.stack([mean, mean], axis=1)
    w_rows = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)  # (B, n)
    w_reps = rng.multinomial(R, np.full(R, 1.0 / R), size=n_boot).astype(np.float64)  # (B, R)
    per_rep = deltas @ w_rows.T  # (P, R, B)
    est = np.einsum("prb,br->bp", per_rep, w_reps) / (n * R)
    a = (1.0 - level) / 2.0
    return mean, np.quantile(est, [a, 1.0 - a], axis=0).T


def _samplers(X: np.ndarray, plans: Sequence[Plan], folds: np.ndarray) -> list[ConditionalSampler | None]:
    cache: dict[tuple, ConditionalSampler] = {}
    out: list[ConditionalSampler | None] = []
    for pl in plans:
        if pl.kind == "marginal":
            out.append(None)
            continue
        key = (pl.j, pl.given, pl.options)
        if key not in cache:
            cache[key] = ConditionalSampler(pl.options).fit(X, pl.j, pl.given, folds)
        out.append(cache[key])
    return out


class CrossFit:
    """The folds of ``(X, y)`` and the model fitted on each fold's complement (once, on first use), so
    several batches of interventions can share the fits. ``prefit``: ``model`` is measured as it is."""

    def __init__(
        self, model: Any, X: np.ndarray, y: np.ndarray, task: Task, folds: int = 5, seed: int = 0, prefit: bool = False
    ) -> None:
        n = len(X)
        if folds < 2:
            raise ConfigError("folds", folds, "an integer >= 2 (K-fold cross-fitting)")
        if n < 2 * folds:
            raise ConfigError("X", f"{n} sample(s)", f"at least {2 * folds} rows for {folds}-fold cross-fitting")
        self.model, self.X, self.y, self.task, self.seed, self.prefit = model, X, y, task, seed, prefit
        self.fid = fold_ids(n, folds, seed, y if task == "classification" else None)
        self.folds = folds
        self._parts: list[tuple[np.ndarray, Any]] = []
        self.base = np.empty(n)

    def parts(self) -> list[tuple[np.ndarray, Any]]:
        """``[(held-out rows, fitted model)]``; the per-row original loss is in ``base`` once fitted."""
        if not self._parts:
            X, y, fid = self.X, self.y, self.fid
            if self.prefit:
                self._parts = [(np.arange(len(X)), self.model)]
            else:
                for k in range(self.folds):
                    self._parts.append((np.flatnonzero(fid == k), fit_clone(self.model, X[fid != k], y[fid != k])))
            for te, est in self._parts:
                self.base[te] = row_loss(est, X[te], y[te], self.task)
        return self._parts

    def run(self, plans: Sequence[Plan], repeats: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Loss changes ``(len(plans), repeats, n)`` and, per plan, the cross-fitted R^2 of its conditional
        regression (how well ``given`` predicts the column; NaN for a marginal or discrete draw)."""
        if repeats < 1:
            raise ConfigError("repeats", repeats, "an integer >= 1")
        X, y, p = self.X, self.y, self.X.shape[1]
        samplers = _samplers(X, plans, self.fid)
        deltas = np.empty((len(plans), repeats, len(X)))
        for k, (te, est) in enumerate(self.parts()):
            stack = np.empty((len(plans), repeats, len(te), p))
            stack[:] = X[te]
            for q, (pl, smp) in enumerate(zip(plans, samplers)):
                rng = np.random.default_rng([self.seed, pl.j, KINDS.index(pl.kind), k, 104729])
                for r in range(repeats):
                    stack[q, r, :, pl.j] = _permute(X[te, pl.j], rng) if smp is None else smp.draw(te, rng)
            loss = row_loss(est, stack.reshape(-1, p), np.tile(y[te], len(plans) * repeats), self.task)
            deltas[:, :, te] = loss.reshape(len(plans), repeats, len(te)) - self.base[te]
        r2 = np.array([np.nan if s is None or s.discrete else s.r2 for s in samplers])
        return deltas, r2


def crossfit_deltas(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    plans: Sequence[Plan],
    task: Task,
    *,
    repeats: int = 5,
    folds: int = 5,
    seed: int = 0,
    prefit: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss changes ``(len(plans), repeats, n)``, original per-row losses ``(n,)`` and the plans' R^2 (see
    :meth:`CrossFit.run` and the module doc)."""
    cf = CrossFit(model, X, y, task, folds, seed, prefit)
    deltas, r2 = cf.run(plans, repeats)
    return deltas, cf.base, r2


def _permute(col: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``col`` (the marginal intervention on a fold)."""
    return col[rng.permutation(len(col))]


def _prepare(
    model: Any, X: Any, y: Any, task: Task | None, seed: int, cv: int | str, names: Sequence[str] | None
) -> tuple[Any, np.ndarray, np.ndarray, Task, list[str], bool, int]:
    Xa, cols = check_table(X, names)
    ya, task = check_target(y, len(Xa), task)
    est, prefit = resolve_model(model, task, seed)
    if cv == "prefit":
        prefit = True
    elif not isinstance(cv, int) or isinstance(cv, bool):
        raise ConfigError("cv", cv, "an integer number of folds >= 2 or 'prefit'")
    if prefit:
        require_fitted(est)
        n_in = getattr(est, "n_features_in_", Xa.shape[1])
        if n_in != Xa.shape[1]:
            raise ConfigError("X", f"{Xa.shape[1]} columns", f"the {n_in} features the model was fitted on")
    return est, Xa, ya, task, cols, prefit, 5 if cv == "prefit" else int(cv)


def importances(
    model: Any,
    X: Any,
    y: Any,
    kinds: Sequence[Kind] = ("marginal", "conditional"),
    repeats: int = 5,
    *,
    cv: int | str = 5,
    seed: int = 0,
    task: Task | None = None,
    n_boot: int = 1000,
    feature_names: Sequence[str] | None = None,
    columns: Sequence[int] | None = None,
    options: SamplerOptions | None = None,
) -> dict[str, Importance]:
    """Importance of every column (or of ``columns``) under each of ``kinds``, from one set of model fits.

    ``model``: a preset name (``logreg``, ``random_forest``, ...), an ``sklearn-*`` pipeline spec, a
    scikit-learn estimator or an ``mlp`` run directory. ``cv``: folds of the cross-fitting, or
    ``"prefit"`` to measure a fitted model as it is."""
    for k in kinds:
        if k not in KINDS:
            raise ConfigError("kind", k, f"one of {list(KINDS)}")
    est, Xa, ya, task, cols, prefit, folds = _prepare(model, X, y, task, seed, cv, feature_names)
    idx = list(range(Xa.shape[1])) if columns is None else [int(c) for c in columns]
    opts = options or SamplerOptions()
    plans = [Plan(j, k, None, opts) for k in kinds for j in idx]
    with single_threaded():
        deltas, base, _ = crossfit_deltas(
            est, Xa, ya, plans, task, repeats=repeats, folds=folds, seed=seed, prefit=prefit
        )
    out: dict[str, Importance] = {}
    for i, k in enumerate(kinds):
        d = deltas[i * len(idx) : (i + 1) * len(idx)]
        mean, ci = bootstrap_ci(d, n_boot, np.random.default_rng([seed, i, 15485863]))
        out[k] = Importance([cols[j] for j in idx], k, mean, ci, float(base.mean()), len(Xa), repeats)
    return out


def intervention_importance(
    model: Any,
    X: Any,
    y: Any,
    kind: Kind = "conditional",
    repeats: int = 5,
    **kw: Any,
) -> Importance:
    """Each feature's held-out loss change under ``kind`` interventions, with a 95% CI (bootstrap over rows
    and repeats). Keywords as :func:`importances` (``cv``, ``seed``, ``task``, ``n_boot``, ...)."""
    return importances(model, X, y, (kind,), repeats, **kw)[kind]
