"""One ``oms features`` analysis: owns its validated configuration and the per-seed flow
(data -> optional injection -> importance and proxies -> optional selection -> optional construction ->
test scores), whose results :mod:`openmindspore.features.report` aggregates and writes.

A seed fixes the dataset's train/val/test split, the injection noise and every random draw. Importance,
selection and construction use train+val only (K-fold cross-fitting); the test split scores the model
refitted on all, selected and constructed features. An ``mlp`` run directory is measured as trained,
on its held-out rows (val+test); it can be ranked but not re-fitted, so it has no selection,
construction, injection or scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from openmindspore.errors import ConfigError
from openmindspore.features.construct import FeatureConstructor
from openmindspore.features.estimators import PRESETS, holdout_score, resolve_model, single_threaded
from openmindspore.features.importance import Importance, importances
from openmindspore.features.inject import Injection, inject_columns
from openmindspore.features.inputs import Task, check_table, default_names
from openmindspore.features.proxies import measure_set, name_proxies
from openmindspore.features.selection import Drop, intervention_elimination
from openmindspore.validation import validate

__all__ = ["FeaturesConfig", "SeedResult", "analyse_seed", "features_config", "dataset_feature_names"]


class FeaturesConfig(BaseModel):
    """What ``oms features`` runs (flags of the same names)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = None
    model: str | None = Field(None, description="logreg | random_forest | hist_gb | svm | ridge | RUN_DIR")
    kind: Literal["conditional", "marginal"] = "conditional"
    select: bool = False
    construction: bool = Field(False, description="--construct")
    inject: bool = False
    seeds: int = Field(1, ge=1, le=1000)
    repeats: int = Field(5, ge=1, le=100)
    folds: int = Field(5, ge=2, le=20)
    n_boot: int = Field(500, ge=0)
    top_k: int = Field(5, ge=1)
    max_new: int = Field(5, ge=1)
    tolerance: float = Field(1.0, ge=0, le=100, allow_inf_nan=False, description="--tolerance")
    minimal: bool = Field(False, description="--minimal")


def features_config(data: dict[str, Any]) -> FeaturesConfig:
    """Validate (every problem at once) and check the combinations of flags."""
    cfg = validate(FeaturesConfig, data, where="oms features")
    run_dir = cfg.model is not None and cfg.model not in PRESETS
    if run_dir and not Path(cfg.model or "").is_dir():
        raise ConfigError("--model", cfg.model, f"one of {sorted(PRESETS)} or an existing mlp run directory")
    if not run_dir and cfg.dataset is None:
        raise ConfigError("--dataset", None, "a dataset (see `oms datasets`)", "e.g. --dataset wine")
    if run_dir:
        for flag, on in (("select", cfg.select), ("construct", cfg.construction), ("inject", cfg.inject)):
            if on:
                raise ConfigError(
                    f"--{flag}",
                    True,
                    "a scikit-learn --model (a run directory is a fitted model: it can be ranked, not re-fitted)",
                    f"drop --{flag}, or pass --model {'|'.join(sorted(PRESETS))}",
                )
    for flag, value, off in (("--tolerance", cfg.tolerance, 1.0), ("--minimal", cfg.minimal, False)):
        if value != off and not (cfg.select and cfg.kind == "conditional"):
            raise ConfigError(
                flag,
                value,
                "--select with --kind conditional (the score guard and the readmission; the plain rule has neither)",
                f"add --select, or drop {flag}",
            )
    return cfg


@dataclass
class SeedResult:
    """Everything one seed produced (see module doc)."""

    seed: int
    task: Task
    names: list[str]
    marginal: Importance
    conditional: Importance
    status: dict[str, str]
    proxies: dict[str, str]
    kept: list[str]
    drops: list[Drop] = field(default_factory=list)
    constructed: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    injection: Injection | None = None


def dataset_feature_names(name: str, p: int) -> list[str]:
    """Column names of a registered dataset: its ``feature_names`` (meta or scikit-learn loader) or x1..xp."""
    from openmindspore.data import list_datasets, load_dataset

    meta = load_dataset(name).meta.get("feature_names")
    if meta and len(meta) == p:
        return [str(n) for n in meta]
    info = {d.name: d for d in list_datasets()}.get(name)
    if info is not None and info.source.startswith("sklearn.datasets.load_"):
        import sklearn.datasets as skd

        names = getattr(getattr(skd, info.source.rsplit(".", 1)[1])(), "feature_names", None)
        if names is not None and len(names) == p:
            return [str(n).replace(" ", "_") for n in names]
    return default_names(p)


def _data(cfg: FeaturesConfig, seed: int) -> tuple[Any, bool, np.ndarray, np.ndarray, Any, Any, Task, list[str]]:
    """``(estimator, prefit, X, y, X_test, y_test, task, names)`` for one seed."""
    from openmindspore.data import load_dataset

    if cfg.model is not None and cfg.model not in PRESETS:
        est, prefit = resolve_model(cfg.model, "classification", seed)
        if cfg.dataset is not None and cfg.dataset != est.dataset:
            raise ConfigError("--dataset", cfg.dataset, f"the run's dataset {est.dataset!r}", "omit --dataset")
        ds = load_dataset(est.dataset)
        X = np.vstack([ds.x_val, ds.x_test]).astype(np.float64)
        y = np.concatenate([ds.y_val, ds.y_test])
        return est, prefit, X, y, None, None, est.task, dataset_feature_names(est.dataset, X.shape[1])
    assert cfg.dataset is not None
    ds = load_dataset(cfg.dataset, split_seed=seed)
    if ds.x_train.ndim != 2:
        raise ConfigError(
            "--dataset",
            cfg.dataset,
            f"a tabular dataset (it holds images of shape {ds.input_shape})",
            "image data is not supported; choose a tabular one from `oms datasets` (e.g. wine, diabetes)",
        )
    task: Task = "classification" if ds.task == "classification" else "regression"
    X = np.vstack([ds.x_train, ds.x_val]).astype(np.float64)
    y = np.concatenate([ds.y_train, ds.y_val])
    names = dataset_feature_names(cfg.dataset, X.shape[1])
    check_table(X, names, where=f"dataset {cfg.dataset!r}")
    model = cfg.model or ("logreg" if task == "classification" else "ridge")
    est, prefit = resolve_model(model, task, seed)
    return est, prefit, X, y, ds.x_test.astype(np.float64), ds.y_test, task, names


def _status(names: list[str], kept: set[str], proxies: dict[str, str], selected: bool) -> dict[str, str]:
    out = {}
    for n in names:
        if selected and n in kept:
            out[n] = "kept"
        elif n in proxies:
            out[n] = f"proxy_of:{proxies[n]}"
        else:
            out[n] = "dropped" if selected else "kept"
    return out


def analyse_seed(cfg: FeaturesConfig, seed: int) -> SeedResult:
    """Run the analysis of ``cfg`` for one seed (see module doc)."""
    with single_threaded():
        return _analyse_seed(cfg, seed)


def _analyse_seed(cfg: FeaturesConfig, seed: int) -> SeedResult:
    est, prefit, X, y, Xt, yt, task, names = _data(cfg, seed)
    common: dict[str, Any] = {"repeats": cfg.repeats, "folds": cfg.folds, "seed": seed, "n_boot": cfg.n_boot}
    injection = None
    if cfg.inject:
        marg = importances(est, X, y, ("marginal",), 3, cv=cfg.folds, seed=seed, task=task, n_boot=0)["marginal"]
        src = int(np.argmax(marg.mean))
        both, names, injection = inject_columns(np.vstack([X, Xt]), names, src, seed)
        X, Xt = both[: len(X)], both[len(X) :]
    drops: list[Drop] = []
    if cfg.select and cfg.kind == "conditional":
        elim, first = intervention_elimination(
            est, X, y, task, names, tolerance=cfg.tolerance, readmit_own=not cfg.minimal, **common
        )
        kept, drops = elim.kept_names, elim.drops
    else:
        first = measure_set(est, X, y, task, names, marginal=True, prefit=prefit, **common)
        kept = list(names)
        if cfg.select:
            elim, _ = intervention_elimination(est, X, y, task, names, kind="marginal", **common)
            kept, drops = elim.kept_names, elim.drops
    proxies = elim.proxies if cfg.select and cfg.kind == "conditional" else name_proxies(first)
    assert first.marginal is not None
    res = SeedResult(
        seed, task, names, first.marginal, first.main, _status(names, set(kept), proxies, cfg.select), proxies, kept
    )
    res.drops, res.injection = drops, injection
    if prefit:
        return res
    cols = [names.index(n) for n in kept]
    res.scores["all"] = holdout_score(est, X, y, Xt, yt, task)
    if cfg.select:
        res.scores["selected"] = holdout_score(est, X[:, cols], y, Xt[:, cols], yt, task)
    if cfg.construction:
        fc = FeatureConstructor(est, cfg.top_k, cfg.max_new, repeats=cfg.repeats, folds=cfg.folds, random_state=seed)
        fc.fit(X[:, cols], y, kept)
        for f, (m, lo, hi) in zip(fc.formulas_, fc.importances_):
            res.constructed.append({"name": f, "importance": m, "ci95": [lo, hi], "status": f"constructed:{f}"})
        res.scores["constructed"] = holdout_score(est, fc.transform(X[:, cols]), y, fc.transform(Xt[:, cols]), yt, task)
        res.scores["n_constructed_features"] = float(len(cols) + len(fc.formulas_))
    return res
