"""Models that ``openmindspore.features`` measures: owns turning a model argument into an estimator
(a preset name, an ``sklearn-*`` pipeline spec, a scikit-learn estimator or an ``mlp`` run directory),
fitting clones of it, and the per-row held-out loss an intervention changes.

Loss per row: log loss ``-log p(y_i)`` for a classifier with ``predict_proba``, else the 0-1 error; squared
error for a regressor. Probabilities are clipped at 1e-6, a forest classifier's at half a vote, ``1 / (2 n_trees)``
(:func:`probability_floor`): its probabilities are fractions of its trees' votes, so a 0 means fewer than one vote,
and at 1e-6 a single row moving between one vote and none moved a fully grown forest's mean loss by more than the
score guard's tolerance (breast_cancer, 512 rows: 9.2 / 512 = 0.018 against a standard error of 0.017), which
vetoed correct drops at random (docs/benchmarks.md, "half a vote").
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.errors import ConfigError
from openmindspore.features.inputs import Task

__all__ = [
    "PRESETS",
    "preset_spec",
    "resolve_model",
    "fit_clone",
    "row_loss",
    "probability_floor",
    "require_fitted",
    "default_estimator",
    "holdout_score",
    "single_threaded",
]

#: ``oms features --model NAME``: a spec (``openmindspore.models.sklearn.build_pipeline``) per task
PRESETS: dict[str, dict[str, dict[str, Any] | None]] = {
    "logreg": {"classification": {"kind": "logreg", "C": 1.0}, "regression": None},
    "ridge": {"classification": None, "regression": {"kind": "ridge", "alpha": 1.0}},
    "random_forest": {
        "classification": {"kind": "random_forest", "n_estimators": 100, "max_features": "sqrt", "min_samples_leaf": 1},
        # leaves of >= 5 rows for a numeric target: randomForest's and ranger's regression default (docs/features.md)
        "regression": {"kind": "random_forest", "n_estimators": 100, "max_features": 1.0, "min_samples_leaf": 5},
    },
    "hist_gb": {
        "classification": {"kind": "hist_gb", "learning_rate": 0.1, "max_leaf_nodes": 31},
        "regression": {"kind": "hist_gb", "learning_rate": 0.1, "max_leaf_nodes": 31},
    },
    "svm": {
        "classification": {"kind": "svm", "kernel": "rbf", "C": 1.0, "gamma": "scale", "probability": True},
        "regression": {"kind": "svr", "kernel": "rbf", "C": 1.0, "epsilon": 0.1, "gamma": "scale"},
    },
}


def preset_spec(name: str, task: Task) -> list[dict[str, Any]]:
    """The pipeline spec (standardise, then the model) of preset ``name`` for ``task``."""
    if name not in PRESETS:
        raise ConfigError("--model", name, f"one of {sorted(PRESETS)} or an mlp run directory")
    m = PRESETS[name][task]
    if m is None:
        other = "ridge" if task == "regression" else "logreg"
        raise ConfigError("--model", name, f"a {task} model", f"{name} does not fit a {task} target; use {other}")
    return [{"step": "scale", "kind": "standard"}, {"step": "model", **m}]


def default_estimator(task: Task, seed: int = 0) -> Any:
    """Logistic regression (classification) or ridge (regression) on standardised features."""
    from openmindspore.models.sklearn import build_pipeline

    return build_pipeline(preset_spec("logreg" if task == "classification" else "ridge", task), task, seed)


def resolve_model(model: Any, task: Task, seed: int = 0) -> tuple[Any, bool]:
    """``(estimator, prefit)``. ``model``: a preset name, a spec list, a scikit-learn estimator (cloned and
    fitted per fold, prefit False) or an ``mlp`` run directory (already trained, prefit True)."""
    from openmindspore.models.sklearn import build_pipeline

    if model is None:
        return default_estimator(task, seed), False
    if isinstance(model, list):
        return build_pipeline(model, task, seed), False
    if isinstance(model, str | Path):
        if isinstance(model, str) and model in PRESETS:
            return build_pipeline(preset_spec(model, task), task, seed), False
        if Path(model).is_dir():
            from openmindspore.features._mlp import MLPRunModel

            return MLPRunModel.load(model), True
        raise ConfigError("model", str(model), f"one of {sorted(PRESETS)} or an existing mlp run directory")
    if not (hasattr(model, "fit") and hasattr(model, "predict")):
        raise ConfigError("model", type(model).__name__, "a scikit-learn estimator (fit/predict)")
    return model, False


def single_threaded() -> Any:
    """A context in which BLAS/OpenMP use one thread: the fits here are small and many, and threads only
    contend (measured 8x slower on 2 busy cores for a logistic regression on 30 rows)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def require_fitted(est: Any) -> None:
    """A :class:`ConfigError` for an unfitted estimator (used where the model is not re-fitted)."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if getattr(est, "prefit", False):
        return
    try:
        check_is_fitted(est)
    except (NotFittedError, TypeError):
        raise ConfigError(
            "model",
            type(est).__name__,
            "a fitted model (cv='prefit' measures the model as it is)",
            "fit it first, or pass cv=K to cross-fit clones of it",
        ) from None


def fit_clone(est: Any, X: np.ndarray, y: np.ndarray) -> Any:
    """A fitted clone of ``est`` (convergence warnings silenced: the held-out loss judges the fit)."""
    from sklearn.base import clone

    c = clone(est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c.fit(X, y)
    return c


#: the smallest probability the log loss credits a classifier with (a forest classifier: half a vote, if larger)
MIN_PROBABILITY = 1e-6


def probability_floor(est: Any) -> float:
    """The smallest probability the log loss credits fitted ``est`` with (a pipeline: its last step, in a
    pipeline of pipelines too, as naming's one-column model): :data:`MIN_PROBABILITY`, or half a vote,
    ``1 / (2 n_estimators)``, for a forest classifier (module doc)."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    last = est
    while hasattr(last, "steps"):
        last = last.steps[-1][1]
    if isinstance(last, (RandomForestClassifier, ExtraTreesClassifier)):
        return max(MIN_PROBABILITY, 0.5 / int(last.n_estimators))
    return MIN_PROBABILITY


def row_loss(est: Any, X: np.ndarray, y: np.ndarray, task: Task) -> np.ndarray:
    """Per-row loss of fitted ``est`` on ``(X, y)``: log loss / 0-1 error, or squared error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task == "regression":
            pred = np.asarray(est.predict(X), dtype=np.float64).reshape(len(X), -1)[:, 0]
            return (pred - y) ** 2
        if hasattr(est, "predict_proba"):
            proba = np.asarray(est.predict_proba(X), dtype=np.float64)
            col = {c: i for i, c in enumerate(np.asarray(est.classes_).tolist())}
            idx = np.array([col.get(v, -1) for v in y.tolist()])
            p = np.where(idx >= 0, proba[np.arange(len(y)), np.maximum(idx, 0)], 0.0)
            return -np.log(np.clip(p, probability_floor(est), 1.0))
        return (np.asarray(est.predict(X)) != y).astype(np.float64)


def holdout_score(est: Any, X: np.ndarray, y: np.ndarray, Xt: np.ndarray, yt: np.ndarray, task: Task) -> float:
    """Test accuracy (classification) or R^2 (regression) of a clone of ``est`` fitted on ``(X, y)``."""
    m = fit_clone(est, X, y)
    if task == "classification":
        return float((np.asarray(m.predict(Xt)) == yt).mean())
    return float(1.0 - row_loss(m, Xt, yt, task).mean() / max(float(yt.var()), 1e-12))
