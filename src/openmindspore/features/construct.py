"""Feature construction: owns the candidate formulas and the rule that keeps one.

Candidates come from the top-k features by conditional importance for a flexible reference model
(``rank_model``, default a random forest: a linear model sees no importance in features that matter only
through an interaction, which is what construction is for): products ``a*b``, ratios ``a/b``
(denominator kept away from 0), ``log|a|``, squares ``a^2`` and quantile bins ``qbin4(a)``. The rows are
split in two halves: the *generating* half picks the top-k, fits the candidates' constants (bin edges,
guards) and screens them by their correlation with the current model's cross-fitted residuals; the
*evaluating* half, which generated nothing, decides. A candidate is kept only if its conditional
importance given the kept set (the original features plus the candidates kept before it), cross-fitted
on the evaluating half, has a 95% CI lower bound > 0.

A constructed column is a deterministic function of kept columns, so a flexible conditional model would
make its conditional importance zero by construction: its draw conditions *linearly* on the kept set,
and its importance measures what it adds beyond a linear use of those columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from openmindspore.features.estimators import default_estimator, fit_clone, resolve_model, single_threaded
from openmindspore.features.importance import Plan, bootstrap_ci, crossfit_deltas
from openmindspore.features.inputs import Task, check_table, check_target
from openmindspore.features.interventions import SamplerOptions, fold_ids
from openmindspore.features.proxies import measure_set

__all__ = ["Candidate", "candidates", "FeatureConstructor"]

Op = Literal["mul", "div", "log", "sq", "bin"]
_LINEAR = SamplerOptions(basis="linear", discrete=False)


@dataclass(frozen=True)
class Candidate:
    """One constructed column from columns ``a`` (and ``b``) with its fitted constants."""

    op: Op
    a: int
    b: int = -1
    guard: float = 0.0
    edges: tuple[float, ...] = ()

    def formula(self, names: list[str]) -> str:
        a, b = names[self.a], names[self.b] if self.b >= 0 else ""
        return {
            "mul": f"{a}*{b}",
            "div": f"{a}/{b}",
            "log": f"log|{a}|",
            "sq": f"{a}^2",
            "bin": f"qbin{len(self.edges) + 1}({a})",
        }[self.op]

    def compute(self, X: np.ndarray) -> np.ndarray:
        a = X[:, self.a]
        if self.op == "mul":
            return a * X[:, self.b]
        if self.op == "div":
            d = X[:, self.b]
            return a / (np.where(d < 0, -1.0, 1.0) * np.maximum(np.abs(d), self.guard))
        if self.op == "log":
            return np.log(np.abs(a) + self.guard)
        if self.op == "sq":
            return a**2
        return np.searchsorted(np.asarray(self.edges), a, side="right").astype(np.float64)


def candidates(X: np.ndarray, top: list[int], bins: int = 4) -> list[Candidate]:
    """Candidates from columns ``top`` with constants fitted on ``X`` (the generating rows)."""
    out: list[Candidate] = []
    for i, a in enumerate(top):
        for b in top[i + 1 :]:
            out.append(Candidate("mul", a, b))
            for num, den in ((a, b), (b, a)):
                g = float(np.quantile(np.abs(X[:, den]), 0.1)) or 1e-3
                out.append(Candidate("div", num, den, guard=g))
    for a in top:
        g = float(np.quantile(np.abs(X[:, a]), 0.1)) or 1e-3
        edges = tuple(float(e) for e in np.unique(np.quantile(X[:, a], np.linspace(0, 1, bins + 1)[1:-1])))
        out += [Candidate("log", a, guard=g), Candidate("sq", a)]
        if len(edges) >= 1 and len(np.unique(X[:, a])) > bins:
            out.append(Candidate("bin", a, edges=edges))
    return out


def _residual_scores(est: Any, Z: np.ndarray, y: np.ndarray, task: Task, cands: np.ndarray, seed: int) -> np.ndarray:
    """|correlation| of each candidate column with the model's cross-fitted residuals (max over classes)."""
    folds = fold_ids(len(Z), 3, seed, y if task == "classification" else None)
    if task == "regression":
        res = np.empty((len(Z), 1))
    else:
        labels = np.unique(y)
        res = np.empty((len(Z), len(labels)))
    for k in range(3):
        te = folds == k
        m = fit_clone(est, Z[~te], y[~te])
        if task == "regression":
            res[te, 0] = y[te] - np.asarray(m.predict(Z[te])).reshape(-1)
        else:
            proba = np.zeros((te.sum(), len(labels)))
            if hasattr(m, "predict_proba"):
                cols = np.searchsorted(labels, m.classes_)
                proba[:, cols] = m.predict_proba(Z[te])
            else:
                proba[np.arange(te.sum()), np.searchsorted(labels, m.predict(Z[te]))] = 1.0
            res[te] = (y[te, None] == labels[None, :]) - proba
    c = (cands - cands.mean(0)) / np.where(cands.std(0) > 0, cands.std(0), 1.0)
    r = (res - res.mean(0)) / np.where(res.std(0) > 0, res.std(0), 1.0)
    return np.abs(c.T @ r / len(Z)).max(axis=1)


class FeatureConstructor(TransformerMixin, BaseEstimator):
    """Appends constructed columns (module doc) to ``X``.

    Fitted attributes: ``constructed_`` (kept :class:`Candidate`), ``formulas_``, ``importances_`` (mean,
    CI lower, CI upper of each kept candidate on the evaluating half), ``tested_`` (formula -> (mean,
    lower, upper) of every candidate tested), ``n_features_in_``."""

    def __init__(
        self,
        estimator: Any = None,
        top_k: int = 5,
        max_new: int = 5,
        screen: int = 5,
        repeats: int = 5,
        folds: int = 5,
        n_boot: int = 500,
        rank_model: str | None = "random_forest",
        random_state: int = 0,
    ) -> None:
        self.estimator = estimator
        self.rank_model = rank_model
        self.top_k = top_k
        self.max_new = max_new
        self.screen = screen
        self.repeats = repeats
        self.folds = folds
        self.n_boot = n_boot
        self.random_state = random_state

    def fit(self, X: Any, y: Any, feature_names: list[str] | None = None) -> FeatureConstructor:
        with single_threaded():
            return self._fit(X, y, feature_names)

    def _fit(self, X: Any, y: Any, feature_names: list[str] | None) -> FeatureConstructor:
        Xa, names = check_table(X, feature_names)
        ya, task = check_target(y, len(Xa))
        seed = int(self.random_state)
        est = self.estimator if self.estimator is not None else default_estimator(task, seed)
        half = fold_ids(len(Xa), 2, seed + 1, ya if task == "classification" else None)
        G, E = np.flatnonzero(half == 0), np.flatnonzero(half == 1)
        ranker = resolve_model(self.rank_model, task, seed)[0] if self.rank_model is not None else est
        rank = measure_set(
            ranker, Xa[G], ya[G], task, names, explainers=0, repeats=3, folds=self.folds, seed=seed, n_boot=0
        )
        top = [int(j) for j in np.argsort(-rank.main.mean, kind="stable")[: self.top_k]]
        pool = candidates(Xa[G], top)
        tested: dict[str, tuple[float, float, float]] = {}
        kept: list[Candidate] = []
        imps: list[tuple[float, float, float]] = []
        while len(kept) < self.max_new:
            Z = self._with(Xa, kept)
            left = [c for c in pool if c.formula(names) not in tested]
            if not left:
                break
            cols = np.column_stack([c.compute(Xa[G]) for c in left])
            order = np.argsort(-_residual_scores(est, Z[G], ya[G], task, cols, seed), kind="stable")
            found = None
            for i in order[: self.screen]:
                c = left[int(i)]
                ZE = np.column_stack([Z[E], c.compute(Xa[E])])
                deltas, _, _ = crossfit_deltas(
                    est, ZE, ya[E], [Plan(ZE.shape[1] - 1, "conditional", None, _LINEAR)], task,
                    repeats=self.repeats, folds=self.folds, seed=seed,
                )  # fmt: skip
                mean, ci = bootstrap_ci(deltas, self.n_boot, np.random.default_rng([seed, len(tested), 99991]))
                tested[c.formula(names)] = (float(mean[0]), float(ci[0, 0]), float(ci[0, 1]))
                if ci[0, 0] > 0:
                    found = c
                    imps.append(tested[c.formula(names)])
                    break
            if found is None:
                break
            kept.append(found)
        self.constructed_ = kept
        self.formulas_ = [c.formula(names) for c in kept]
        self.importances_ = imps
        self.tested_ = tested
        self.feature_names_ = names
        self.n_features_in_ = Xa.shape[1]
        return self

    @staticmethod
    def _with(X: np.ndarray, kept: list[Candidate]) -> np.ndarray:
        return np.column_stack([X, *[c.compute(X) for c in kept]]) if kept else X

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "constructed_")
        Xa, _ = check_table(X)
        return self._with(Xa, self.constructed_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "constructed_")
        return np.asarray([*self.feature_names_, *self.formulas_], dtype=object)
