"""``InterventionSelector``: the scikit-learn transformer over :func:`intervention_elimination`; owns its
parameters and fitted state, and registers the ``intervention`` feature step of pipeline specs.

    >>> sel = InterventionSelector(random_state=0).fit(X, y)
    >>> sel.get_support(), sel.transform(X).shape

``__init__`` only stores parameters; everything learnt ends in ``_``: ``support_``, ``importances_``
(last conditional importance of each kept feature, NaN for dropped ones), ``ci_`` ((p, 2)), ``drops_``
(the elimination steps), ``guarded_`` (features the score guard kept), ``swaps_`` (``{kept feature swapped
out: dropped feature swapped in}`` by the orientation), ``readmitted_`` (dropped features kept again by the
readmission), ``proxies_`` (``{dropped feature:
kept feature whose conditioning removes it}``), ``full_set_`` (the first step's
:class:`~openmindspore.features.proxies.SetMeasure`: conditional and marginal importance of every
feature), ``n_features_in_``.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from openmindspore.errors import ConfigError
from openmindspore.features.estimators import default_estimator, single_threaded
from openmindspore.features.inputs import check_table, check_target, default_names
from openmindspore.features.selection import intervention_elimination
from openmindspore.models.sklearn import register_feature_step

__all__ = ["InterventionSelector"]


class InterventionSelector(SelectorMixin, BaseEstimator):
    """Keeps the features whose conditional (or marginal) importance has a 95% CI lower bound > 0,
    eliminating backward with the importance recomputed after each drop.

    Parameters: ``estimator`` (any scikit-learn estimator; default logistic regression or ridge on
    standardised features, by the target), ``kind`` (``conditional`` or ``marginal``), ``repeats``
    (interventions per row), ``folds`` (cross-fitting; reduced to what the rows allow), ``n_boot``
    (bootstrap resamples of the CI), ``min_features`` (never fewer), ``explainers`` (single explainers
    measured per non-significant feature: they order the drops and name proxies; 0 drops the plain
    lowest importance first), ``orient`` (swap a kept feature for a dropped one named ``proxy_of`` it that
    carries clearly more information: :mod:`openmindspore.features.orient`), ``prune`` (drop a kept feature
    that carries nothing of its own beyond its closest kept column: :mod:`openmindspore.features.redundancy`; on
    by default), ``readmit`` (keep again a dropped feature that carries information of its own about the other
    columns and predicts the target alone: :func:`~openmindspore.features.redundancy.readmit`; on by default,
    ``False`` gives the elimination's smallest set), ``tolerance`` (the score guard's allowance in standard errors
    of the full set's mean cross-fitted loss: 1, the one-s.e. rule, by default; smaller keeps more features and
    loses less score), ``random_state`` (int)."""

    def __init__(
        self,
        estimator: Any = None,
        kind: str = "conditional",
        repeats: int = 5,
        folds: int = 5,
        n_boot: int = 500,
        min_features: int = 1,
        explainers: int = 2,
        orient: bool = True,
        prune: bool = True,
        readmit: bool = True,
        tolerance: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.estimator = estimator
        self.kind = kind
        self.repeats = repeats
        self.folds = folds
        self.n_boot = n_boot
        self.min_features = min_features
        self.explainers = explainers
        self.orient = orient
        self.prune = prune
        self.readmit = readmit
        self.tolerance = tolerance
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> InterventionSelector:
        if self.kind not in ("conditional", "marginal"):
            raise ConfigError("kind", self.kind, "one of ['conditional', 'marginal']")
        tol = _tolerance(self.tolerance)
        if y is None:
            raise ValueError("InterventionSelector requires y to be passed, but the target y is None")
        names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
        Xv = validate_data(self, X, reset=True, ensure_min_features=1, ensure_all_finite=False, dtype=None)
        Xa, cols = check_table(Xv, names or default_names(Xv.shape[1]))
        ya, task = check_target(y, len(Xa))
        if task == "classification" and len(np.unique(ya)) < 2:
            raise ValueError(f"y has 1 class: {np.unique(ya).tolist()}; at least 2 classes are needed")
        folds = int(min(self.folds, len(Xa) // 2))
        if task == "classification":
            folds = min(folds, int(np.unique(ya, return_counts=True)[1].min()))
        if folds < 2:
            raise ValueError(f"n_samples={len(Xa)} is too few for {self.folds}-fold cross-fitting")
        seed = int(self.random_state)
        est = clone(self.estimator) if self.estimator is not None else default_estimator(task, seed)
        with single_threaded():
            elim, first = intervention_elimination(
                est,
                Xa,
                ya,
                task,
                cols,
                kind="marginal" if self.kind == "marginal" else "conditional",
                repeats=int(self.repeats),
                folds=folds,
                seed=seed,
                n_boot=int(self.n_boot),
                min_features=int(self.min_features),
                explainers=int(self.explainers),
                orient_pairs=bool(self.orient),
                prune_kept=bool(self.prune),
                readmit_own=bool(self.readmit),
                tolerance=tol,
            )
        self.support_ = elim.kept
        self.importances_ = np.full(len(cols), np.nan)
        self.ci_ = np.full((len(cols), 2), np.nan)
        self.importances_[elim.kept] = elim.final_mean
        self.ci_[elim.kept] = elim.final_ci
        self.drops_ = elim.drops
        self.guarded_ = elim.guarded
        self.swaps_ = elim.swaps
        self.readmitted_ = [r.name for r in elim.readmitted if r.made]
        self.full_set_ = first
        self.proxies_ = elim.proxies if self.kind == "conditional" else {}
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "support_")
        return np.asarray(self.support_)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        return tags


def _tolerance(value: Any) -> float:
    """The score guard's allowance as a float, or a ConfigError naming it."""
    tol = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else float("nan")
    if not (np.isfinite(tol) and tol >= 0):
        raise ConfigError("tolerance", value, "a number >= 0 (standard errors; 1 is the one-s.e. rule)")
    return tol


def _intervention_step(step: dict[str, Any], model: Any, task: str, seed: int) -> list[tuple[str, Any]]:
    """The ``{"step": "features", "kind": "intervention"}`` pipeline step: a selector measuring with a clone
    of the pipeline's own model."""
    sel = InterventionSelector(
        estimator=clone(model),
        kind=step.get("importance", "conditional"),
        repeats=int(step.get("repeats", 3)),
        folds=int(step.get("folds", 5)),
        n_boot=int(step.get("n_boot", 300)),
        random_state=seed,
    )
    return [("intervention", sel)]


register_feature_step("intervention", _intervention_step)
