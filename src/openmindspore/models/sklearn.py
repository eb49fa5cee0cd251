"""scikit-learn estimators built from pipeline specs: owns the spec -> estimator mapping and the registry of
feature steps that higher layers add (e.g. ``openmindspore.features`` registers ``intervention``).

A spec is a list of steps (the ``sklearn-*`` search spaces produce them; ``oms features`` uses them too)::

    [{"step": "scale", "kind": "standard"},
     {"step": "features", "kind": "pca", "variance": 0.95},
     {"step": "model", "kind": "svm", "kernel": "rbf", "C": 10.0, "gamma": "scale"}]

Regression models are wrapped in a ``TransformedTargetRegressor`` that standardises the target.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openmindspore.errors import ConfigError

__all__ = ["FeatureStep", "build_pipeline", "build_estimator", "register_feature_step", "feature_step_kinds"]

#: ``factory(step, model, task, seed) -> [(name, transformer), ...]``: the pipeline steps of one
#: ``{"step": "features", "kind": ...}`` spec item; ``model`` is the pipeline's (unfitted) final estimator.
FeatureStep = Callable[[dict[str, Any], Any, str, int], list[tuple[str, Any]]]

_FEATURE_STEPS: dict[str, FeatureStep] = {}


def register_feature_step(kind: str, factory: FeatureStep) -> None:
    """Let :func:`build_pipeline` build ``{"step": "features", "kind": kind}`` with ``factory``."""
    _FEATURE_STEPS[kind] = factory


def feature_step_kinds() -> list[str]:
    """Feature-step kinds beyond the built-in ``pca``, ``nystroem`` and ``poly``."""
    return sorted(_FEATURE_STEPS)


def build_estimator(m: dict[str, Any], task: str, seed: int) -> Any:
    """The unfitted scikit-learn estimator of one ``{"step": "model", "kind": ...}`` spec item."""
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
        prob = bool(m.get("probability", False))
        return svm.SVC(kernel=m["kernel"], C=m["C"], gamma=m["gamma"], probability=prob, random_state=seed)
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


def _features_steps(s: dict[str, Any], model: Any, task: str, seed: int) -> list[tuple[str, Any]]:
    from sklearn import decomposition, kernel_approximation, preprocessing

    kind = s["kind"]
    if kind == "pca":
        return [("pca", decomposition.PCA(n_components=s["variance"], random_state=seed))]
    if kind == "nystroem":
        return [("nystroem", kernel_approximation.Nystroem(gamma=s["gamma"], n_components=300, random_state=seed))]
    if kind == "poly":
        return [("poly", preprocessing.PolynomialFeatures(s["degree"])), ("poly_scale", preprocessing.StandardScaler())]
    if kind in _FEATURE_STEPS:
        return _FEATURE_STEPS[kind](s, model, task, seed)
    raise ConfigError(
        "spec.features.kind",
        kind,
        f"one of {['nystroem', 'pca', 'poly', *feature_step_kinds()]}",
        "import openmindspore.features to register the 'intervention' step",
    )


def build_pipeline(spec: list[dict[str, Any]], task: str, seed: int = 0) -> Any:
    """An unfitted scikit-learn ``Pipeline`` for ``spec`` (``task``: classification or regression)."""
    from sklearn import compose, pipeline, preprocessing

    model_items = [s for s in spec if s.get("step") == "model"]
    if not model_items:
        raise ConfigError("spec", spec, "a 'model' step")
    model = build_estimator(model_items[-1], task, seed)
    if task == "regression":
        model = compose.TransformedTargetRegressor(regressor=model, transformer=preprocessing.StandardScaler())
    scalers = {
        "standard": preprocessing.StandardScaler,
        "minmax": preprocessing.MinMaxScaler,
        "robust": preprocessing.RobustScaler,
    }
    steps: list[tuple[str, Any]] = []
    for s in spec:
        if s["step"] == "scale" and s["kind"] in scalers:
            steps.append(("scale", scalers[s["kind"]]()))
        elif s["step"] == "features":
            steps.extend(_features_steps(s, model, task, seed))
    steps.append(("model", model))
    return pipeline.Pipeline(steps)
