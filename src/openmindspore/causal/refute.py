"""Sensitivity checks of an effect estimate (what DoWhy users call refuters), on a search log's units.

* **Placebo treatment** (:func:`placebo_check`): the treatment is replaced by a random one drawn
  with each trial's logged propensity, ``T~ ~ Bernoulli(e_t)``, independently of everything else;
  the estimators are re-run with ``T~`` (same weights ``1/e_t``, ``1/(1-e_t)``; AIPW's outcome model
  refitted with ``T~`` in place of ``T``). ``T~`` cannot cause the outcome, so a sound estimator
  finds ~0: the check passes when at most ``k_max`` of the ``draws`` 95% CIs exclude 0, ``k_max``
  the largest count that a Binomial(draws, 0.05) exceeds with probability >= 1% (``draws=20``: 4).
  The naive difference in means usually fails it on adaptive logs: ``T~`` follows the propensity,
  which follows the search's progress, which follows the outcome.
* **Random common cause** (:func:`random_common_cause_check`, AIPW only): an independent
  standard-normal covariate is added to the outcome model's features and the estimate recomputed
  ``draws`` times; it should not move: the check passes when the largest change is at most
  ``tol_se`` (default 0.5) standard errors of the original estimate.

Both take an optional explicit list of placebo treatments / covariates (tests use it to build logs
whose outcome depends on them: the checks must then fail).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import stats

from openmindspore.causal.estimators import estimate
from openmindspore.causal.searchlog import LogUnits

__all__ = ["placebo_check", "random_common_cause_check", "placebo_units", "max_exclusions"]


def max_exclusions(draws: int, level: float = 0.05, alpha: float = 0.01) -> int:
    """Largest number of 95% CIs excluding the truth that ``draws`` valid ones reach with probability >= alpha."""
    k = 0
    while k < draws and stats.binom.sf(k, draws, level) >= alpha:  # sf(k) = P(X > k)
        k += 1
    return k


def placebo_units(units: LogUnits, t_placebo: np.ndarray) -> LogUnits:
    """``units`` with the treatment replaced by ``t_placebo`` (propensities kept: ``t_placebo ~ Bernoulli(e)``).

    The outcome model's features carry the treatment in their last column; the placebo's conditional
    feature means are the walk's means under ``q_t`` (the placebo does not depend on the walk)."""
    t = np.asarray(t_placebo, dtype=np.float64)
    x = units.x.copy()
    x[:, -1] = t
    e = units.e[:, None]
    mean = e * units.x1 + (1.0 - e) * units.x0
    x1, x0 = mean.copy(), mean.copy()
    x1[:, -1], x0[:, -1] = 1.0, 0.0
    return replace(units, t=t, x=x, x1=x1, x0=x0)


def _draw_placebos(units: LogUnits, draws: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    while len(out) < draws:
        t = (rng.random(len(units.e)) < units.e).astype(np.float64)
        if 2 <= t.sum() <= len(t) - 2:  # both arms present (else the estimators refuse)
            out.append(t)
    return out


def placebo_check(
    units: LogUnits,
    estimators: Sequence[str],
    draws: int = 20,
    seed: int = 0,
    placebos: Sequence[np.ndarray] | None = None,
    reference: str = "search",
    ci: str = "floored",
) -> dict[str, dict[str, Any]]:
    """Per estimator: mean / s.d. of the placebo estimates, how many CIs exclude 0, and ``passed``."""
    ts = list(placebos) if placebos is not None else _draw_placebos(units, draws, seed)
    k_max = max_exclusions(len(ts))
    ates: dict[str, list[float]] = {k: [] for k in estimators}
    excl = {k: 0 for k in estimators}
    for i, t in enumerate(ts):
        data = placebo_units(units, t).effect_data(reference, seed=seed + i)
        for name in estimators:
            est = estimate(data, name, ci=ci, seed=seed)
            ates[name].append(est.ate)
            excl[name] += int(est.ci95[0] > 0.0 or est.ci95[1] < 0.0)
    return {
        name: {
            "draws": len(ts),
            "mean_ate": float(np.mean(v)),
            "sd_ate": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
            "ci_excludes_0": excl[name],
            "max_allowed": k_max,
            "passed": excl[name] <= k_max,
        }
        for name, v in ates.items()
    }


def random_common_cause_check(
    units: LogUnits,
    ate: float,
    se: float,
    draws: int = 5,
    seed: int = 0,
    tol_se: float = 0.5,
    covariates: Sequence[np.ndarray] | None = None,
    reference: str = "search",
) -> dict[str, Any]:
    """AIPW re-estimated with an extra independent N(0, 1) covariate in the outcome model (``draws`` times)."""
    rng = np.random.default_rng(seed)
    zs = list(covariates) if covariates is not None else [rng.standard_normal(len(units.y)) for _ in range(draws)]
    moved = []
    for z in zs:
        z = np.asarray(z, dtype=np.float64)[:, None]
        u = replace(
            units,
            x=np.concatenate([z, units.x], axis=1),
            x1=np.concatenate([z, units.x1], axis=1),
            x0=np.concatenate([z, units.x0], axis=1),
        )
        moved.append(estimate(u.effect_data(reference, seed=seed), "aipw").ate - ate)
    worst = float(np.max(np.abs(moved)))
    return {
        "draws": len(zs),
        "mean_change": float(np.mean(moved)),
        "max_abs_change": worst,
        "max_abs_change_se": worst / se if se > 0 else float("inf"),
        "tol_se": tol_se,
        "passed": bool(worst <= tol_se * se),
    }
