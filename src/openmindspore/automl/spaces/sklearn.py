"""scikit-learn pipeline spaces: preprocessing -> optional feature map -> estimator (+ hyper-parameters).

Spec (a list of steps, produced by the grammar)::

    [{"step": "scale", "kind": "standard"},
     {"step": "features", "kind": "pca", "variance": 0.95},
     {"step": "model", "kind": "svm", "kernel": "rbf", "C": 10.0, "gamma": "scale"}]

``sklearn-classifier`` models: decision tree, random forest, extra trees, histogram gradient boosting,
SVM, k-NN, logistic regression, MLP. ``sklearn-regressor`` models: decision tree, random forest,
gradient boosting, SVR, kernel ridge, polynomial ridge, k-NN, MLP, ridge. Regression targets are
standardised inside the model (``TransformedTargetRegressor``); the objective is validation R^2.
Images (e.g. digits, 1x8x8) are flattened.

Option ``select="intervention"`` (``oms search --set select=intervention``, opt-in) adds the choice
``{"step": "features", "kind": "intervention"}`` to the ``features`` state: an
:class:`openmindspore.features.InterventionSelector` that eliminates features on their conditional
importance for the pipeline's own model. Without it the grammars are unchanged.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from openmindspore.automl.grammar import Grammar
from openmindspore.automl.spaces.base import SearchSpace
from openmindspore.errors import ConfigError
from openmindspore.models.sklearn import build_pipeline
from openmindspore.validation import validate

__all__ = [
    "SklearnClassifierSpace",
    "SklearnRegressorSpace",
    "classifier_grammar",
    "regressor_grammar",
    "build_pipeline",
    "default_estimators",
    "SklearnSpaceOptions",
]

_SELECT_CHOICE = {"id": "intervention", "next": "model", "emit": {"step": "features", "kind": "intervention"}}


def _param_chain(prefix: str, params: list[tuple[str, list[Any]]], end: str | None) -> dict[str, list[dict]]:
    """States ``prefix.<param>`` that set each hyper-parameter in turn, then go to ``end``."""
    states: dict[str, list[dict]] = {}
    for j, (pname, values) in enumerate(params):
        nxt = f"{prefix}.{params[j + 1][0]}" if j + 1 < len(params) else end
        states[f"{prefix}.{pname}"] = [{"id": str(v), "next": nxt, "set": {pname: v}} for v in values]
    return states


def _family(states: dict, model_choices: list, kind: str, params: list[tuple[str, list[Any]]]) -> None:
    first = f"{kind}.{params[0][0]}" if params else None
    model_choices.append({"id": kind, "next": first, "emit": {"step": "model", "kind": kind}})
    states.update(_param_chain(kind, params, None))


def _grammar(
    name: str, features: list[dict[str, Any]], feature_states: dict, families: list, select: str | None
) -> Grammar:
    if select == "intervention":
        features = [*features, _SELECT_CHOICE]
    states: dict[str, list[dict]] = {
        "scale": [
            {"id": k, "next": "features", "emit": {"step": "scale", "kind": k}}
            for k in ("standard", "minmax", "robust", "none")
        ],
        "features": features,
        **feature_states,
    }
    model: list[dict] = []
    for kind, params in families:
        _family(states, model, kind, params)
    states["model"] = model
    return Grammar.from_dict({"name": name, "start": "scale", "states": states})


def classifier_grammar(select: str | None = None) -> Grammar:
    """Grammar of ``sklearn-classifier`` (data; see module docstring)."""
    features: list[dict[str, Any]] = [
        {"id": "none", "next": "model"},
        {"id": "pca", "next": "pca.variance", "emit": {"step": "features", "kind": "pca"}},
        {"id": "nystroem", "next": "nystroem.gamma", "emit": {"step": "features", "kind": "nystroem"}},
    ]
    fstates = {
        **_param_chain("pca", [("variance", [0.8, 0.95, 0.99])], "model"),
        **_param_chain("nystroem", [("gamma", [0.003, 0.01, 0.03, 0.1])], "model"),
    }
    families: list[tuple[str, list[tuple[str, list[Any]]]]] = [
        (
            "tree",
            [("max_depth", [3, 6, 12, None]), ("min_samples_leaf", [1, 4, 16]), ("criterion", ["gini", "entropy"])],
        ),
        ("random_forest", [("n_estimators", [50, 150]), ("max_features", ["sqrt", 0.5]), ("min_samples_leaf", [1, 3])]),
        ("extra_trees", [("n_estimators", [50, 150]), ("max_features", ["sqrt", 0.5]), ("min_samples_leaf", [1, 3])]),
        ("hist_gb", [("learning_rate", [0.03, 0.1, 0.3]), ("max_leaf_nodes", [7, 31])]),
        (
            "svm",
            [
                ("kernel", ["rbf", "poly", "linear"]),
                ("C", [0.1, 1.0, 10.0, 100.0]),
                ("gamma", ["scale", 0.003, 0.03, 0.3]),
            ],
        ),
        ("knn", [("n_neighbors", [1, 3, 7, 15]), ("weights", ["uniform", "distance"])]),
        ("logreg", [("C", [0.01, 0.1, 1.0, 10.0])]),
        ("mlp", [("hidden", [64, 256]), ("alpha", [1e-4, 1e-2, 1.0])]),
    ]
    return _grammar("sklearn-classifier", features, fstates, families, select)


def regressor_grammar(select: str | None = None) -> Grammar:
    """Grammar of ``sklearn-regressor`` (data; see module docstring)."""
    features: list[dict[str, Any]] = [
        {"id": "none", "next": "model"},
        {"id": "pca", "next": "pca.variance", "emit": {"step": "features", "kind": "pca"}},
        {"id": "poly2", "next": "model", "emit": {"step": "features", "kind": "poly", "degree": 2}},
    ]
    fstates = _param_chain("pca", [("variance", [0.8, 0.95, 0.99])], "model")
    families: list[tuple[str, list[tuple[str, list[Any]]]]] = [
        ("tree", [("max_depth", [2, 4, 8, None]), ("min_samples_leaf", [1, 5, 20])]),
        (
            "random_forest",
            [("n_estimators", [50, 150]), ("max_features", [1.0, 0.5, "sqrt"]), ("min_samples_leaf", [1, 5])],
        ),
        ("hist_gb", [("learning_rate", [0.03, 0.1, 0.3]), ("max_leaf_nodes", [7, 31])]),
        (
            "svr",
            [
                ("kernel", ["rbf", "poly", "linear"]),
                ("C", [0.1, 1.0, 10.0, 100.0]),
                ("epsilon", [0.01, 0.1, 0.5]),
                ("gamma", ["scale", 0.003, 0.03, 0.3]),
            ],
        ),
        (
            "kernel_ridge",
            [
                ("kernel", ["rbf", "laplacian", "poly"]),
                ("alpha", [0.01, 0.1, 1.0, 10.0]),
                ("gamma", [0.003, 0.03, 0.3]),
            ],
        ),
        ("poly_ridge", [("degree", [2, 3]), ("alpha", [0.1, 1.0, 10.0, 100.0])]),
        ("knn", [("n_neighbors", [3, 7, 15, 31]), ("weights", ["uniform", "distance"])]),
        ("mlp", [("hidden", [32, 128]), ("alpha", [1e-4, 1e-2, 1.0])]),
        ("ridge", [("alpha", [0.01, 1.0, 100.0])]),
    ]
    return _grammar("sklearn-regressor", features, fstates, families, select)


def _xy(ds, split: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = ds.split(split)
    return x.reshape(len(x), -1).astype(np.float64), y


def score_estimator(est, ds) -> dict[str, dict[str, float]]:
    """Fit on train, score on val and test: accuracy (+ macro F1) or R^2 (+ RMSE)."""
    from sklearn import metrics

    x, y = _xy(ds, "train")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(x, y)
    out = {}
    for split in ("val", "test"):
        xs, ys = _xy(ds, split)
        pred = est.predict(xs)
        if ds.task == "classification":
            out[split] = {
                "accuracy": float(metrics.accuracy_score(ys, pred)),
                "f1_macro": float(metrics.f1_score(ys, pred, average="macro")),
            }
        else:
            out[split] = {
                "r2": float(metrics.r2_score(ys, pred)),
                "rmse": float(np.sqrt(metrics.mean_squared_error(ys, pred))),
            }
    return out


def default_estimators(task: str, seed: int = 0) -> dict[str, Any]:
    """scikit-learn estimators with default hyper-parameters (standardised input): the baselines."""
    from sklearn import ensemble, linear_model, pipeline, preprocessing, svm, tree

    def p(m):
        return pipeline.make_pipeline(preprocessing.StandardScaler(), m)

    if task == "classification":
        return {
            "decision_tree": p(tree.DecisionTreeClassifier(random_state=seed)),
            "svc": p(svm.SVC()),
            "random_forest": p(ensemble.RandomForestClassifier(random_state=seed)),
            "logistic_regression": p(linear_model.LogisticRegression(max_iter=1000)),
        }
    return {
        "decision_tree": p(tree.DecisionTreeRegressor(random_state=seed)),
        "svr": p(svm.SVR()),
        "random_forest": p(ensemble.RandomForestRegressor(random_state=seed)),
        "ridge": p(linear_model.Ridge()),
    }


class SklearnSpaceOptions(BaseModel):
    """Options of the ``sklearn-*`` spaces (``oms search --set KEY=VALUE``)."""

    model_config = ConfigDict(extra="forbid")

    select: Literal["intervention"] | None = None


class _SklearnSpace(SearchSpace):
    task = ""

    def __init__(self, dataset: str, **options: Any) -> None:
        super().__init__(dataset, **options)
        from openmindspore.data import load_dataset

        opts = validate(SklearnSpaceOptions, options, where="--set")
        self.grammar = (classifier_grammar if self.task == "classification" else regressor_grammar)(opts.select)
        if opts.select == "intervention":
            import openmindspore.features  # noqa: F401  (registers the "intervention" feature step)

        ds = load_dataset(dataset)
        if ds.task != self.task:
            raise ConfigError(
                "dataset",
                dataset,
                f"a {self.task} dataset for space {self.name!r} (it is {ds.task})",
                "use sklearn-regressor for regression, sklearn-classifier for classification",
            )
        self._ds = ds

    def evaluate(self, spec: list[dict], seed: int) -> dict[str, dict[str, float]]:
        from threadpoolctl import threadpool_limits

        # one thread per evaluation: parallelism comes from the search's workers, and OpenMP on a
        # shared machine otherwise oversubscribes (measured 10x slower for hist_gb on 2 busy cores)
        with threadpool_limits(1):
            return score_estimator(build_pipeline(spec, self.task, seed=seed % (2**31)), self._ds)


class SklearnClassifierSpace(_SklearnSpace):
    """Classification pipelines; objective: validation accuracy."""

    name, task, objective = "sklearn-classifier", "classification", "accuracy"

    def __init__(self, dataset: str = "digits", **options: Any) -> None:
        super().__init__(dataset, **options)


class SklearnRegressorSpace(_SklearnSpace):
    """Regression pipelines; objective: validation R^2."""

    name, task, objective = "sklearn-regressor", "regression", "r2"

    def __init__(self, dataset: str = "diabetes", **options: Any) -> None:
        super().__init__(dataset, **options)
