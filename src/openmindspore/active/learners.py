"""Learners for active learning: one protocol, scikit-learn implementations, a registry.

A learner is bound to the pool's inputs ``x_pool`` (N, ...) when it is made; ``fit(idx, y)`` trains a
fresh model on the pool rows ``idx`` with their acquired labels ``y``. Outputs always cover all
``num_classes`` columns (a class not yet labelled gets probability 0):

- ``proba(x)`` -> (N, C) class probabilities;
- ``proba_samples(x, t)`` -> (S, N, C) posterior samples (BALD): the trees of a random forest in ``t``
  groups, or the ``ensemble`` members of a bootstrap ensemble (S = the ensemble size);
- ``embed(x)`` -> (N, D) the representation the last layer sees (for scikit-learn models the flattened,
  standardised input), used by core-set, BADGE and the diversity-aware strategies;
- ``fresh()`` -> an unfitted learner of the same kind (cross-fitting).

Everything is deterministic given ``seed`` and the labelled set (bootstrap draws use
``default_rng([seed, len(idx), member])``). The MindSpore learners (``cnn``, ``mlp``, specs) are in
:mod:`.neural`; :func:`learner_for` makes either kind from a run's options.

The issue sketched ``fit(idx)``; ``fit(idx, y)`` takes the labels too, because they come from the
oracle (a person's answers may differ from the dataset's labels), not from the pool.
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import numpy as np

from openmindspore.active.config import SKLEARN_MODELS, ActiveConfig, is_neural
from openmindspore.errors import ConfigError

__all__ = ["Learner", "SklearnLearner", "SemiSupervised", "make_learner", "learner_for", "LEARNERS", "flat"]

LEARNERS = SKLEARN_MODELS


class Learner(Protocol):
    """What the active-learning loop needs from a model (see the module docstring for shapes)."""

    num_classes: int
    has_samples: bool

    def fit(self, idx: np.ndarray, y: np.ndarray) -> None: ...

    def proba(self, x: np.ndarray) -> np.ndarray: ...

    def proba_samples(self, x: np.ndarray, t: int) -> np.ndarray: ...

    def embed(self, x: np.ndarray) -> np.ndarray: ...

    def fresh(self) -> Learner: ...


def flat(x: np.ndarray) -> np.ndarray:
    """(N, ...) -> (N, D) float64."""
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class _Constant:
    """The model when every label seen so far is one class."""

    def __init__(self, label: int) -> None:
        self.classes_ = np.array([label])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.ones((len(x), 1))


class SklearnLearner:
    """``logreg`` (L2 logistic regression, C=1), ``svm`` (RBF SVC, C=10; probabilities are the softmax of
    its one-vs-rest decision values), ``random_forest`` (100 trees) or ``knn`` (5 neighbours, distance
    weighted). ``ensemble > 1`` fits that many members on bootstrap resamples and averages them."""

    def __init__(self, kind: str, x_pool: np.ndarray, num_classes: int, seed: int = 0, ensemble: int = 1) -> None:
        if kind not in LEARNERS:
            raise ConfigError("--model", kind, f"one of {', '.join(LEARNERS)}")
        self.kind, self.num_classes, self.seed, self.ensemble = kind, int(num_classes), int(seed), int(ensemble)
        self.x_pool = flat(x_pool)
        self.has_samples = ensemble > 1 or kind == "random_forest"
        self._members: list[Any] = []

    def fresh(self) -> SklearnLearner:
        new = SklearnLearner.__new__(SklearnLearner)
        new.__dict__.update(self.__dict__)
        new._members = []
        return new

    def _estimator(self, member: int, n: int) -> Any:
        from sklearn import ensemble, linear_model, neighbors, svm

        if self.kind == "logreg":
            return linear_model.LogisticRegression(C=1.0, solver="newton-cg", max_iter=1000)
        if self.kind == "svm":
            return svm.SVC(kernel="rbf", C=10.0, gamma="scale", decision_function_shape="ovr")
        if self.kind == "random_forest":
            return ensemble.RandomForestClassifier(
                n_estimators=100, random_state=(self.seed * 7919 + member) % 2**31, n_jobs=1
            )
        return neighbors.KNeighborsClassifier(n_neighbors=min(5, n), weights="distance")

    def fit(self, idx: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> None:
        """Fit on pool rows ``idx`` with labels ``y`` (optionally per-row ``weight``; k-NN ignores it)."""
        idx, y = np.asarray(idx, dtype=np.int64), np.asarray(y, dtype=np.int64)
        if len(idx) != len(y) or len(idx) == 0:
            raise ValueError(f"fit needs as many labels as indices (got {len(idx)} indices, {len(y)} labels)")
        w = np.ones(len(idx)) if weight is None else np.asarray(weight, dtype=np.float64)
        self._members = []
        for m in range(self.ensemble):
            rows = np.arange(len(idx))
            if self.ensemble > 1:
                rows = np.random.default_rng([self.seed, len(idx), m]).integers(0, len(idx), len(idx))
            xs, ys = self.x_pool[idx[rows]], y[rows]
            if len(np.unique(ys)) < 2:
                self._members.append(_Constant(int(ys[0])))
                continue
            est = self._estimator(m, len(ys))
            kw = {} if self.kind == "knn" or weight is None else {"sample_weight": w[rows]}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(xs, ys, **kw)
            self._members.append(est)

    def _member_proba(self, est: Any, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), self.num_classes))
        cols = np.asarray(est.classes_, dtype=np.int64)
        if self.kind == "svm" and not isinstance(est, _Constant):
            d = est.decision_function(x)
            p = _softmax(np.stack([-d, d], axis=1) if d.ndim == 1 else d)
        else:
            p = est.predict_proba(x)
        out[:, cols] = p
        return out

    def _fitted(self) -> list[Any]:
        if not self._members:
            raise RuntimeError("the learner is not fitted: call fit(idx, y) first")
        return self._members

    def proba(self, x: np.ndarray) -> np.ndarray:
        xf = flat(x)
        return np.mean([self._member_proba(e, xf) for e in self._fitted()], axis=0)

    def proba_samples(self, x: np.ndarray, t: int) -> np.ndarray:
        xf, members = flat(x), self._fitted()
        if len(members) > 1:
            return np.stack([self._member_proba(e, xf) for e in members])
        est = members[0]
        if self.kind != "random_forest" or isinstance(est, _Constant):
            return self.proba(x)[None]
        trees = np.stack([self._tree_proba(est, tree, xf) for tree in est.estimators_])
        groups = np.array_split(np.arange(len(trees)), min(int(t), len(trees)))
        return np.stack([trees[g].mean(axis=0) for g in groups])

    def _tree_proba(self, forest: Any, tree: Any, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), self.num_classes))
        out[:, np.asarray(forest.classes_, dtype=np.int64)] = tree.predict_proba(x)
        return out

    def embed(self, x: np.ndarray) -> np.ndarray:
        return flat(x)


class SemiSupervised:
    """A semi-supervised variant of a scikit-learn learner: label spreading (Zhou et al. 2004) over a
    k-nearest-neighbour graph of the whole pool turns the acquired labels into a label for every pool
    row; the base learner is fitted on all of them, acquired rows with weight 1 and the others with
    the spreading's confidence. With every pool row labelled it is the base learner itself."""

    def __init__(self, base: SklearnLearner, neighbors: int = 10, alpha: float = 0.2) -> None:
        self.base, self.neighbors, self.alpha = base, int(neighbors), float(alpha)
        self.num_classes, self.has_samples = base.num_classes, base.has_samples

    def fresh(self) -> SemiSupervised:
        return SemiSupervised(self.base.fresh(), self.neighbors, self.alpha)

    def fit(self, idx: np.ndarray, y: np.ndarray) -> None:
        from sklearn.semi_supervised import LabelSpreading

        idx, y = np.asarray(idx, dtype=np.int64), np.asarray(y, dtype=np.int64)
        n = len(self.base.x_pool)
        if len(np.unique(y)) < 2 or len(idx) >= n:
            self.base.fit(idx, y)
            return
        target = np.full(n, -1, dtype=np.int64)
        target[idx] = y
        ls = LabelSpreading(kernel="knn", n_neighbors=self.neighbors, alpha=self.alpha, max_iter=200)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ls.fit(self.base.x_pool, target)
        dist = np.nan_to_num(ls.label_distributions_)
        pseudo = np.asarray(ls.classes_, dtype=np.int64)[dist.argmax(axis=1)]
        weight = dist.max(axis=1)
        pseudo[idx], weight[idx] = y, 1.0
        self.base.fit(np.arange(n), pseudo, weight)

    def proba(self, x: np.ndarray) -> np.ndarray:
        return self.base.proba(x)

    def proba_samples(self, x: np.ndarray, t: int) -> np.ndarray:
        return self.base.proba_samples(x, t)

    def embed(self, x: np.ndarray) -> np.ndarray:
        return self.base.embed(x)


def make_learner(
    name: str,
    x_pool: np.ndarray,
    num_classes: int,
    seed: int = 0,
    ensemble: int = 1,
    semi_supervised: bool = False,
    spread_alpha: float = 0.2,
) -> Learner:
    """The learner ``name`` bound to the pool inputs ``x_pool`` (its semi-supervised variant if asked, label
    spreading with ``spread_alpha``)."""
    base = SklearnLearner(name, x_pool, num_classes, seed=seed, ensemble=ensemble)
    return SemiSupervised(base, alpha=spread_alpha) if semi_supervised else base


def learner_for(
    cfg: ActiveConfig,
    ds: Any,
    seed: int,
    model: dict[str, Any] | None = None,
    keep_runs: bool = False,
    workdir: Any = None,
) -> Learner:
    """The learner of a run's options for dataset ``ds`` and loop ``seed``. A MindSpore learner takes its
    resolved ``model`` (:func:`.neural.resolve_model`; resolved here when None), asks each fit for MC
    passes only when the strategy is BALD, and with ``keep_runs`` keeps its main fits' run directories
    (under ``workdir``)."""
    if not is_neural(cfg.model):
        return make_learner(
            cfg.model,
            ds.x_train,
            ds.num_classes,
            seed=seed,
            ensemble=cfg.ensemble,
            semi_supervised=cfg.semi_supervised,
            spread_alpha=cfg.spread_alpha,
        )
    from openmindspore.active.neural import NeuralLearner, resolve_model

    return NeuralLearner(
        cfg,
        resolve_model(cfg) if model is None else model,
        ds.x_train,
        ds.x_test,
        ds.num_classes,
        seed,
        mc_passes=cfg.mc_samples if cfg.strategy == "bald" else 0,
        keep_runs=keep_runs,
        workdir=workdir,
    )
