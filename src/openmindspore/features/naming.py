"""Naming what selection dropped: owns the rule that names a dropped feature ``proxy_of`` a kept one, and
the clusters of near-duplicate features a source is read through.

A dropped feature ``d`` is ``proxy_of: c``, ``c`` a *kept* feature, when, in the model refitted on ``d``
alone (cross-fitted on the same folds as the selection):

* ``d`` predicts the target on its own: its marginal (permutation) importance has a 95% CI lower bound > 0;
* conditioning on ``c`` removes that: ``d``'s importance when its draw conditions on ``c`` alone (``d | c``,
  the conditional sampler) is at most ``1 - EXPLAINED`` (10%) of its marginal importance, by the CI
  lower bound. In a model that sees only ``d`` this asks whether ``d`` carries anything about the target
  that ``c`` does not (``d`` independent of ``y`` given ``c``). The 10% tolerance is for the sampler, not
  the data: its draws are fitted value + permuted cross-fitted residual, and the residual of a fitted
  regression carries its estimation error, so even an exact copy plus noise keeps a small positive
  importance given its source (measured: 4-7% of the marginal importance on wine's proline copy).

When several kept features remove it, ``c`` is the one that predicts ``d`` best (cross-fitted R^2). So a
feature is named by the conditioning that removes it, whenever in the elimination it was dropped (also at
the first step), and always after a feature that stays. A dropped feature no kept feature explains
(noise, or information the model did not need) stays plain ``dropped``.

Near-duplicates: features with |Pearson correlation| > 0.9 or a cross-fitted R^2 > 0.9 of one predicting
the other are one source in practice; which member is kept is arbitrary, and a copy of any member is
named ``proxy_of`` the member that was kept. :func:`near_duplicates` lists a feature's cluster (the
benchmark counts a proxy named by any member of its source's cluster as named correctly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from openmindspore.features.importance import CrossFit, Plan, bootstrap_ci
from openmindspore.features.inputs import Task
from openmindspore.features.interventions import ConditionalSampler, SamplerOptions, fold_ids

__all__ = ["explained_by", "name_dropped", "near_duplicates", "NEAR_DUPLICATE", "EXPLAINED"]

#: |correlation| or cross-fitted R^2 above which two features are near-duplicates
NEAR_DUPLICATE = 0.9
#: the share of a dropped feature's marginal importance that conditioning on its source must remove
EXPLAINED = 0.9


def _alone(est: Any) -> Pipeline:
    """``est`` that sees only the first column of its input (the others are there for the samplers)."""
    return Pipeline([("only", ColumnTransformer([("d", "passthrough", [0])])), ("model", est)])


def explained_by(
    est: Any,
    X: np.ndarray,
    y: np.ndarray,
    task: Task,
    d: int,
    candidates: Sequence[int],
    *,
    repeats: int = 5,
    folds: int = 5,
    seed: int = 0,
    n_boot: int = 500,
    options: SamplerOptions | None = None,
) -> tuple[int | None, dict[str, Any]]:
    """The candidate column that explains column ``d`` (module doc), or None; and the measurements:
    ``marginal`` (mean, lower) of ``d`` alone and per candidate ``(mean, lower, r2)``."""
    opts = options or SamplerOptions()
    cols = [d, *candidates]
    cf = CrossFit(_alone(est), X[:, cols], y, task, folds, seed)
    plans = [Plan(0, "marginal", None, opts)] + [Plan(0, "conditional", (i,), opts) for i in range(1, len(cols))]
    deltas, r2 = cf.run(plans, repeats)
    mean, ci = bootstrap_ci(deltas, n_boot, np.random.default_rng([seed, d, 6151]))
    info: dict[str, Any] = {
        "marginal": (float(mean[0]), float(ci[0, 0])),
        "given": {
            int(c): (float(mean[q + 1]), float(ci[q + 1, 0]), float(r2[q + 1])) for q, c in enumerate(candidates)
        },
    }
    if ci[0, 0] <= 0:
        return None, info
    removing = [q for q in range(len(candidates)) if ci[q + 1, 0] <= (1.0 - EXPLAINED) * mean[0]]
    if not removing:
        return None, info
    best = max(removing, key=lambda q: -np.inf if np.isnan(r2[q + 1]) else r2[q + 1])
    return int(candidates[best]), info


def name_dropped(
    est: Any,
    X: np.ndarray,
    y: np.ndarray,
    task: Task,
    names: Sequence[str],
    kept: Sequence[str],
    dropped: Sequence[str],
    **kw: Any,
) -> dict[str, str]:
    """``{dropped feature: kept feature it is a proxy of}`` (module doc); keywords as :func:`explained_by`."""
    names = list(names)
    kidx = [names.index(k) for k in kept]
    out = {}
    for n in dropped:
        c, _ = explained_by(est, X, y, task, names.index(n), kidx, **kw)
        if c is not None:
            out[n] = names[c]
    return out


def near_duplicates(X: np.ndarray, j: int, threshold: float = NEAR_DUPLICATE, seed: int = 0) -> list[int]:
    """Column ``j`` and every column that is a near-duplicate of it (module doc), in column order."""
    X = np.asarray(X, dtype=np.float64)
    corr = np.nan_to_num(np.corrcoef(X, rowvar=False)[j])
    fid = fold_ids(len(X), 5, seed)
    out = []
    for c in range(X.shape[1]):
        if c == j or abs(corr[c]) > threshold:
            out.append(c)
            continue
        r2 = [ConditionalSampler().fit(X[:, [a, b]], 0, (1,), fid).r2 for a, b in ((j, c), (c, j))]
        if max((r for r in r2 if r == r), default=0.0) > threshold:  # NaN: a discrete column
            out.append(c)
    return out
