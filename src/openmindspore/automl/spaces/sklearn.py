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
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from openmindspore.automl.grammar import Grammar
from openmindspore.automl.spaces.base import SearchSpace
from openmindspore.errors import ConfigError

__all__ = [
    "SklearnClassifierSpace",
    "SklearnRegressorSpace",
    "classifier_grammar",
    "regressor_grammar",
    "build_pipeline",
    "default_estimators",
]


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


def _grammar(name: str, features: list[dict], feature_states: dict, families: list) -> Grammar:
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


def classifier_grammar() -> Grammar:
    """Grammar of ``sklearn-classifier`` (data; see module docstring)."""
    features = [
        {"id": "none", "next": "model"},
        {"id": "pca", "next": "pca.variance", "emit": {"step": "features", "kind": "pca"}},
        {"id": "nystroem", "next": "nystroem.gamma", "emit": {"step": "features", "kind": "nystroem"}},
    ]
    fstates = {
        **_param_chain("pca", [("variance", [0.8, 0.95, 0.99])], "model"),
        **_param_chain("nystroem", [("gamma", [0.003, 0.01, 0.03, 0.1])], "model"),
    }
    families = [
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
    return _grammar("sklearn-classifier", features, fstates, families)


def regressor_grammar() -> Grammar:
    """Grammar of ``sklearn-regressor`` (data; see module docstring)."""
    features = [
        {"id": "none", "next": "model"},
        {"id": "pca", "next": "pca.variance", "emit": {"step": "features", "kind": "pca"}},
        {"id": "poly2", "next": "model", "emit": {"step": "features", "kind": "poly", "degree": 2}},
    ]
    fstates = _param_chain("pca", [("variance", [0.8, 0.95, 0.99])], "model")
    families = [
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
    return _grammar("sklearn-regressor", features, fstates, families)


def _estimator(m: dict, task: str, seed: int):
    from sklearn import (
        ensemble,
        kernel_ridge,
        linear_model,
        neighbors,
        neural_network,
        pipeline,
        preprocessing,
        svm,
        tree,
    )

    k, clf = m["kind"], task == "classification"
    if k == "tree":
        cls = tree.DecisionTreeClassifier if clf else tree.DecisionTreeRegressor
        kw = {"criterion": m.get("criterion", "gini")} if clf else {}
        return cls(max_depth=m["max_depth"], min_samples_leaf=m["min_samples_leaf"], random_state=seed, **kw)
    if k in ("random_forest", "extra_trees"):
        if clf:
            cls = ensemble.RandomForestClassifier if k == "random_forest" else ensemble.ExtraTreesClassifier
        else:
            cls = ensemble.RandomForestRegressor if k == "random_forest" else ensemble.ExtraTreesRegressor
        return cls(
            n_estimators=m["n_estimators"],
            max_features=m["max_features"],
            min_samples_leaf=m["min_samples_leaf"],
            random_state=seed,
            n_jobs=1,
        )
    if k == "hist_gb":
        cls = ensemble.HistGradientBoostingClassifier if clf else ensemble.HistGradientBoostingRegressor
        return cls(
            learning_rate=m["learning_rate"], max_leaf_nodes=m["max_leaf_nodes"], max_iter=100, random_state=seed
        )
    if k == "svm":
        return svm.SVC(kernel=m["kernel"], C=m["C"], gamma=m["gamma"], random_state=seed)
    if k == "svr":
        return svm.SVR(kernel=m["kernel"], C=m["C"], epsilon=m["epsilon"], gamma=m["gamma"])
    if k == "kernel_ridge":
        return kernel_ridge.KernelRidge(kernel=m["kernel"], alpha=m["alpha"], gamma=m["gamma"])
    if k == "poly_ridge":
        return pipeline.make_pipeline(
            preprocessing.PolynomialFeatures(m["degree"]),
            preprocessing.StandardScaler(),
            linear_model.Ridge(alpha=m["alpha"]),
        )
    if k == "knn":
        cls = neighbors.KNeighborsClassifier if clf else neighbors.KNeighborsRegressor
        return cls(n_neighbors=m["n_neighbors"], weights=m["weights"])
    if k == "logreg":
        return linear_model.LogisticRegression(C=m["C"], max_iter=1000)
    if k == "ridge":
        return linear_model.Ridge(alpha=m["alpha"])
    if k == "mlp":
        cls = neural_network.MLPClassifier if clf else neural_network.MLPRegressor
        return cls(hidden_layer_sizes=(m["hidden"],), alpha=m["alpha"], max_iter=300, random_state=seed)
    raise ConfigError("spec.model.kind", k, "a model kind of the grammar")


def build_pipeline(spec: list[dict], task: str, seed: int = 0):
    """An unfitted scikit-learn estimator for ``spec``."""
    from sklearn import compose, decomposition, kernel_approximation, pipeline, preprocessing

    steps: list[tuple[str, Any]] = []
    model = None
    for s in spec:
        if s["step"] == "scale":
            scaler = {
                "standard": preprocessing.StandardScaler,
                "minmax": preprocessing.MinMaxScaler,
                "robust": preprocessing.RobustScaler,
            }.get(s["kind"])
            if scaler is not None:
                steps.append(("scale", scaler()))
        elif s["step"] == "features":
            if s["kind"] == "pca":
                steps.append(("pca", decomposition.PCA(n_components=s["variance"], random_state=seed)))
            elif s["kind"] == "nystroem":
                steps.append(
                    ("nystroem", kernel_approximation.Nystroem(gamma=s["gamma"], n_components=300, random_state=seed))
                )
            elif s["kind"] == "poly":
                steps.append(("poly", preprocessing.PolynomialFeatures(s["degree"])))
                steps.append(("poly_scale", preprocessing.StandardScaler()))
        elif s["step"] == "model":
            model = _estimator(s, task, seed)
    if model is None:
        raise ConfigError("spec", spec, "a 'model' step")
    if task == "regression":
        model = compose.TransformedTargetRegressor(regressor=model, transformer=preprocessing.StandardScaler())
    steps.append(("model", model))
    return pipeline.Pipeline(steps)


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


class _SklearnSpace(SearchSpace):
    task = ""

    def __init__(self, dataset: str, **options: Any) -> None:
        super().__init__(dataset, **options)
        from openmindspore.data import load_dataset

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
        self.grammar = classifier_grammar()
        super().__init__(dataset, **options)


class SklearnRegressorSpace(_SklearnSpace):
    """Regression pipelines; objective: validation R^2."""

    name, task, objective = "sklearn-regressor", "regression", "r2"

    def __init__(self, dataset: str = "diabetes", **options: Any) -> None:
        self.grammar = regressor_grammar()
        super().__init__(dataset, **options)
