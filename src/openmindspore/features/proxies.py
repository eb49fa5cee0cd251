"""Proxies: owns the measurement of a feature set (conditional, marginal and single-explainer importance
from one set of cross-fitted model fits) and the naming of proxies.

A feature with conditional importance ~ 0 (CI lower bound <= 0) is reported as ``proxy_of: X`` when
conditioning on X alone removes its importance and it has marginal importance of its own:

* X is one of its two most rank-correlated columns, and its importance when the draw conditions on X
  alone has a CI lower bound <= 0; when both remove it, X is the one that predicts it best
  (cross-fitted R^2): a copy of X is also removed by another copy of X, but X predicts it better;
* its marginal (permutation) importance has a CI lower bound > 0 in the model refitted without those
  two columns (same folds). Measuring it without them matters: a model that has X (or another copy of
  X) may give a copy of X no weight at all, and the copy is still a proxy. A prefit model cannot be
  refitted: its own marginal importance is used.

A feature no single column explains is not named. During selection a feature is judged when it is
dropped, on the set it leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openmindspore.features.importance import CrossFit, Importance, Plan, bootstrap_ci
from openmindspore.features.inputs import Task
from openmindspore.features.interventions import Kind, SamplerOptions, _rank_corr

__all__ = ["Pair", "SetMeasure", "top_explainers", "measure_set", "name_proxies", "source_of"]


@dataclass(frozen=True)
class Pair:
    """Importance of a feature when its draw conditions on the single column ``given`` only, and the
    cross-fitted R^2 with which ``given`` predicts the feature."""

    given: str
    importance: float
    ci95: tuple[float, float]
    r2: float


@dataclass
class SetMeasure:
    """Importances of one feature set: ``main`` (``kind``), ``marginal`` (when asked) and ``pairs``."""

    main: Importance
    marginal: Importance | None = None
    pairs: dict[str, list[Pair]] = field(default_factory=dict)
    #: ``feature -> marginal importance CI lower bound of the feature without its explainers``
    marginal_alone: Callable[[str], float] | None = None
    #: per-row cross-fitted loss of the model on this set (the score guard compares sets row by row)
    row_loss: np.ndarray = field(default_factory=lambda: np.empty(0))

    def proxy_source(self, name: str) -> str | None:
        """``name``'s source if it is a proxy in this set (module doc), else None."""
        i = self.main.names.index(name)
        if self.main.kind != "conditional" or self.main.lower[i] > 0:
            return None
        src = source_of(self, name)
        if src is None or self.marginal_alone is None or self.marginal_alone(name) <= 0:
            return None
        return src

    def pair(self, name: str, given: str) -> Pair | None:
        return next((p for p in self.pairs.get(name, []) if p.given == given), None)

    def drop_key(self) -> np.ndarray:
        """Per feature: its smallest importance given one of its single explainers (its main importance
        when it has none). The drop order of the elimination: a feature that one other feature makes
        redundant (a noisy copy, a proxy) goes before the feature it copies."""
        key = self.main.mean.astype(np.float64).copy()
        for i, n in enumerate(self.main.names):
            if self.pairs.get(n):
                key[i] = min(p.importance for p in self.pairs[n])
        return key


def top_explainers(X: np.ndarray, top: int) -> list[list[int]]:
    """For each column of ``X``, the ``top`` other columns most rank-correlated with it."""
    out = []
    for j in range(X.shape[1]):
        others = [c for c in range(X.shape[1]) if c != j]
        r = np.abs(_rank_corr(X[:, others], X[:, j]))
        out.append([others[i] for i in np.argsort(-r, kind="stable")[:top]])
    return out


def measure_set(
    est: Any,
    X: np.ndarray,
    y: np.ndarray,
    task: Task,
    names: Sequence[str],
    *,
    kind: Kind = "conditional",
    marginal: bool = False,
    explainers: int = 2,
    repeats: int = 5,
    folds: int = 5,
    seed: int = 0,
    n_boot: int = 500,
    options: SamplerOptions | None = None,
    prefit: bool = False,
) -> SetMeasure:
    """``kind`` importance of every column of ``X`` (plus marginal when asked), and each column whose
    ``kind`` importance has a CI lower bound <= 0 given each of its ``explainers`` most rank-correlated
    columns alone (the pairs: drop order and proxy naming), all from the same model fits."""
    opts = options or SamplerOptions()
    p = X.shape[1]
    names = list(names)
    kinds: list[Kind] = [kind] + (["marginal"] if marginal and kind != "marginal" else [])
    cf = CrossFit(est, X, y, task, folds, seed, prefit)
    deltas, _ = cf.run([Plan(j, k, None, opts) for k in kinds for j in range(p)], repeats)
    mean, ci = bootstrap_ci(deltas, n_boot, np.random.default_rng([seed, p, 65537]))

    def imp(i: int, k: str) -> Importance:
        s = slice(i * p, (i + 1) * p)
        return Importance(names, k, mean[s], ci[s], float(cf.base.mean()), len(X), repeats)

    out = SetMeasure(imp(0, kind), imp(1, "marginal") if len(kinds) > 1 else None, row_loss=cf.base.copy())
    if kind == "marginal" and marginal:
        out.marginal = out.main
    eligible = [j for j in range(p) if out.main.lower[j] <= 0]
    if explainers <= 0 or p <= 2 or not eligible:
        return out
    ex = top_explainers(X, explainers)
    pair_plans = [Plan(j, "conditional", (c,), opts) for j in eligible for c in ex[j]]
    deltas, r2 = cf.run(pair_plans, repeats)
    pmean, pci = bootstrap_ci(deltas, n_boot, np.random.default_rng([seed, p, 257]))
    for q, pl in enumerate(pair_plans):
        assert pl.given is not None
        out.pairs.setdefault(names[pl.j], []).append(
            Pair(names[pl.given[0]], float(pmean[q]), (float(pci[q, 0]), float(pci[q, 1])), float(r2[q]))
        )
    cache: dict[str, float] = {}

    def marginal_alone(name: str) -> float:
        if prefit:
            return -np.inf if out.marginal is None else float(out.marginal.lower[names.index(name)])
        if name not in cache:
            without = {pr.given for pr in out.pairs.get(name, [])}
            cols = [c for c in range(p) if names[c] not in without]
            sub = CrossFit(est, X[:, cols], y, task, folds, seed)
            d, _ = sub.run([Plan(cols.index(names.index(name)), "marginal", None, opts)], repeats)
            cache[name] = float(bootstrap_ci(d, n_boot, np.random.default_rng([seed, p, 4099]))[1][0, 0])
        return cache[name]

    out.marginal_alone = marginal_alone
    return out


def source_of(m: SetMeasure, name: str) -> str | None:
    """The single column whose conditioning removes ``name``'s importance in ``m`` (CI lower bound <= 0),
    the one that predicts it best (cross-fitted R^2) when several do; None when none does."""
    removing = [p for p in m.pairs.get(name, []) if p.ci95[0] <= 0]
    if not removing:
        return None
    return max(removing, key=lambda p: -np.inf if np.isnan(p.r2) else p.r2).given


def name_proxies(m: SetMeasure) -> dict[str, str]:
    """``{feature: source}`` for the proxies of a measured set (module doc)."""
    out = {}
    for n in m.main.names:
        src = m.proxy_source(n)
        if src is not None:
            out[n] = src
    return out
