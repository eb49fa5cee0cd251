"""Backward elimination on importance: owns the drop rule and the record of what was dropped when.

The rule (shared by every importance measure, so they can be compared side by side): compute each
remaining feature's importance with a 95% CI; stop when every lower bound is > 0; otherwise drop one
feature whose lower bound is <= 0 and recompute.

Which one is dropped: :func:`eliminate` takes a ``choose`` callback; the plain rule drops the eligible
feature of smallest importance. :func:`intervention_elimination` orders by each eligible
feature's importance *given its best single explainer* (the conditional draw conditions on one other
column, the one of its two most rank-correlated columns that removes most of it): a feature that one
other feature makes redundant (a noisy copy, a proxy) goes before the feature it copies, whose own
importance given that copy stays clearly positive. Conditional importance (given all the others) still
decides who is eligible and when to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from openmindspore.features.inputs import Task
from openmindspore.features.interventions import Kind, SamplerOptions
from openmindspore.features.proxies import SetMeasure, measure_set

__all__ = ["Drop", "Elimination", "eliminate", "intervention_elimination"]

#: ``score(columns) -> (mean, ci)`` for the listed columns (shapes (m,), (m, 2))
Score = Callable[[list[int]], tuple[np.ndarray, np.ndarray]]


@dataclass
class Drop:
    """One elimination step: ``name`` left with this importance (CI) among ``remaining`` features."""

    name: str
    importance: float
    ci95: tuple[float, float]
    remaining: int
    proxy_of: str | None = None


@dataclass
class Elimination:
    """Kept mask over ``names``, the drops in order, and the last importances of the kept features."""

    names: list[str]
    kept: np.ndarray
    drops: list[Drop]
    final_mean: np.ndarray
    final_ci: np.ndarray

    @property
    def kept_names(self) -> list[str]:
        return [n for n, k in zip(self.names, self.kept) if k]

    @property
    def proxies(self) -> dict[str, str]:
        """``{dropped feature: source}`` for the drops named as proxies."""
        return {d.name: d.proxy_of for d in self.drops if d.proxy_of}


def eliminate(
    names: Sequence[str],
    score: Score,
    min_features: int = 1,
    choose: Callable[[np.ndarray, np.ndarray, np.ndarray], int] | None = None,
) -> Elimination:
    """Backward elimination with the CI rule (module doc). ``choose(mean, ci, eligible)`` returns the
    position (into the remaining columns) to drop; default: the eligible one of smallest importance."""
    cols = list(range(len(names)))
    drops: list[Drop] = []
    while True:
        mean, ci = score(cols)
        eligible = np.flatnonzero(ci[:, 0] <= 0)
        if len(eligible) == 0 or len(cols) <= min_features:
            break
        i = int(eligible[np.argmin(mean[eligible])]) if choose is None else int(choose(mean, ci, eligible))
        drops.append(Drop(names[cols[i]], float(mean[i]), (float(ci[i, 0]), float(ci[i, 1])), len(cols)))
        cols.pop(i)
    kept = np.zeros(len(names), dtype=bool)
    kept[cols] = True
    return Elimination(list(names), kept, drops, mean, ci)


def intervention_elimination(
    est: Any,
    X: np.ndarray,
    y: np.ndarray,
    task: Task,
    names: Sequence[str],
    *,
    kind: Kind = "conditional",
    repeats: int = 5,
    folds: int = 5,
    seed: int = 0,
    n_boot: int = 500,
    min_features: int = 1,
    explainers: int = 2,
    options: SamplerOptions | None = None,
) -> tuple[Elimination, SetMeasure]:
    """Backward elimination on ``kind`` importance, recomputed (cross-fitted) after each drop; returns it
    and the measurement of the full set (conditional, marginal and pairs: for proxy naming).

    With ``kind="conditional"`` each step also measures every feature given each of its ``explainers``
    most rank-correlated columns (same model fits), which orders the drops (module doc)."""
    first: list[SetMeasure] = []
    now: list[SetMeasure] = []

    def score(cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
        m = measure_set(
            est,
            X[:, cols],
            y,
            task,
            [names[c] for c in cols],
            kind=kind,
            marginal=not first,
            explainers=explainers if kind == "conditional" else 0,
            repeats=repeats,
            folds=folds,
            seed=seed,
            n_boot=n_boot,
            options=options,
        )
        first[:] = first or [m]
        now[:] = [m]
        return m.main.mean, m.main.ci

    sources: dict[str, str] = {}

    def choose(mean: np.ndarray, ci: np.ndarray, eligible: np.ndarray) -> int:
        i = int(eligible[np.argmin(now[0].drop_key()[eligible])])
        name = now[0].main.names[i]
        src = now[0].proxy_source(name)
        if src is not None:
            sources[name] = src
        return i

    res = eliminate(names, score, min_features, choose if kind == "conditional" else None)
    for d in res.drops:
        d.proxy_of = sources.get(d.name)
    return res, first[0]
