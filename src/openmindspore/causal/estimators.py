"""Average-treatment-effect estimators on host arrays (plain numpy/scipy).

Every estimator is one formula over per-unit arrays (``n`` units)::

    tau = sum(rho*(g1-g0))/sum(rho) + sum(a*(y-f))/sum(a) - sum(b*(y-f))/sum(b)
    a = t * w1,  b = (1-t) * w0

* ``y`` outcome, ``t`` treatment (0/1);
* ``w1``/``w0`` the weights that make the treated / control units stand for the target population:
  for the ATE with propensity ``e``, ``w1 = 1/e`` and ``w0 = 1/(1-e)``; for the ATT ``w1 = 1`` and
  ``w0 = e/(1-e)``; for a search log re-weighted to a reference distribution, the density ratio;
* ``f`` the outcome model's prediction for the unit as observed, ``g1``/``g0`` its mean under
  treatment / control for the unit's context, ``rho`` the target population of the model part
  (1 for the ATE, ``t`` for the ATT).

``naive`` is the difference in means (``w = 1``, no model); ``hajek`` normalised inverse
propensity weighting (no model: ``f = g = 0``); ``aipw`` the augmented (doubly robust) estimator.
Normalising each weighted sum by its weights (Hájek) keeps estimates inside the outcome range.

Confidence intervals: ``"if"`` (default) uses the influence function of the normalised estimator
(linearised ratio), ``se = sd(psi)/sqrt(n)``, normal 95%; ``"floored"`` is the same with a variance
floor per arm (below); ``"bootstrap"`` resamples units with the nuisance arrays held fixed
(percentile interval).

The floor (``"floored"``, the default of ``oms effects``): an arm with few effective units cannot
show its own tail. On NAS-Bench-201 search logs the control arm of ``skip`` holds 10-30 units, the
outcome is skewed (most cells 85-91 %, "broken" cells near 10 % with probability 1-2 % under the
search's distribution), and when the sample holds no broken cell the arm's variance -- hence the
influence-function interval -- is far too small (coverage 0.74). So each arm's variance of the
mean is taken as at least ``s2 / ESS_arm``, ``s2`` the sample variance of the outcome over all
units of both arms, and ``se = sqrt(max(se_if^2, sum over arms of max(s2_arm, s2) / ESS_arm))``,
``s2_arm`` the arm's weighted variance of the outcome (AIPW: of the residual ``y - f``; the floor
still uses the outcome's variance, because the outcome model cannot explain a tail that its
training units did not show). Same estimate, wider interval; widths are reported in
docs/benchmarks.md. The effective sample size is Kish's
``(sum w)^2 / sum w^2`` per arm, summed over the arms.

:func:`check_positivity` raises a :class:`~openmindspore.errors.ConfigError` when a treatment was
never/always chosen, a propensity is 0 or 1, or an arm's weights explode (effective sample size
below ``min_ess``), with the numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from openmindspore.errors import ConfigError

__all__ = ["Estimate", "EffectData", "ESTIMATORS", "CIS", "estimate", "kish_ess", "check_positivity"]

ESTIMATORS = ("naive", "hajek", "aipw")
CIS = ("if", "floored", "bootstrap")


@dataclass
class EffectData:
    """Per-unit arrays for the estimators (see module docstring); all shape ``[n]``."""

    y: np.ndarray
    t: np.ndarray
    w1: np.ndarray
    w0: np.ndarray
    f: np.ndarray | None = None
    g1: np.ndarray | None = None
    g0: np.ndarray | None = None
    rho: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.float64)
        self.t = np.asarray(self.t, dtype=np.float64)
        n = len(self.y)
        for name in ("t", "w1", "w0", "f", "g1", "g0", "rho"):
            v = getattr(self, name)
            if v is None:
                continue
            v = np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()
            setattr(self, name, v)
        if not np.all(np.isin(self.t, (0.0, 1.0))):
            raise ConfigError("t", sorted(set(self.t.tolist()))[:5], "a 0/1 treatment indicator")
        if not np.all(np.isfinite(self.y)):
            raise ConfigError(
                "y",
                int((~np.isfinite(self.y)).sum()),
                "finite outcomes (non-finite count shown)",
                "drop failed trials or choose another --metric",
            )

    @property
    def n(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> EffectData:
        kw: dict[str, Any] = {k: (None if v is None else v[idx]) for k, v in asdict(self).items()}
        return EffectData(**kw)


@dataclass
class Estimate:
    """One effect estimate: the JSON record of ``oms effects`` plus diagnostics."""

    estimator: str
    ate: float
    ci95: tuple[float, float]
    se: float
    n: int
    ess: float
    n_treated: int
    mean_treated: float
    mean_control: float

    def to_json(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "ate": self.ate,
            "ci95": [self.ci95[0], self.ci95[1]],
            "se": self.se,
            "n": self.n,
            "ess": self.ess,
            "n_treated": self.n_treated,
            "mean_treated": self.mean_treated,
            "mean_control": self.mean_control,
        }


def kish_ess(w: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (0 for no weight)."""
    w = np.asarray(w, dtype=np.float64)
    s2 = float((w * w).sum())
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0


def _arms(d: EffectData, estimator: str) -> tuple[np.ndarray, np.ndarray]:
    if estimator == "naive":
        return d.t.copy(), 1.0 - d.t
    return d.t * d.w1, (1.0 - d.t) * d.w0


def _point_and_if(d: EffectData, estimator: str, normalize: bool = True) -> tuple[float, np.ndarray, float, float]:
    """Point estimate, influence values ``psi`` (mean ~0), and the two arm means."""
    a, b = _arms(d, estimator)
    sa, sb = a.sum(), b.sum()
    if estimator == "aipw":
        if d.f is None or d.g1 is None or d.g0 is None:
            raise ConfigError("estimator", "aipw", "an outcome model (f, g1, g0)", "use hajek or give a model")
        rho = np.ones(d.n) if d.rho is None else d.rho
        r = d.y - d.f
        dm_unit = d.g1 - d.g0
        dm = float((rho * dm_unit).sum() / rho.sum())
        if normalize:
            r1, r0 = float((a * r).sum() / sa), float((b * r).sum() / sb)
            psi = rho * (dm_unit - dm) / rho.mean() + a * (r - r1) / a.mean() - b * (r - r0) / b.mean()
        else:  # Horvitz-Thompson residual terms: unbiased unit by unit when the model is fitted on the past
            r1, r0 = float((a * r).sum() / rho.sum()), float((b * r).sum() / rho.sum())
            psi = (rho * (dm_unit - dm) + (a * r - rho * r1) - (b * r - rho * r0)) / rho.mean()
        m1 = float((rho * d.g1).sum() / rho.sum()) + r1
        m0 = float((rho * d.g0).sum() / rho.sum()) + r0
        return dm + r1 - r0, psi, m1, m0
    m1, m0 = float((a * d.y).sum() / sa), float((b * d.y).sum() / sb)
    psi = a * (d.y - m1) / a.mean() - b * (d.y - m0) / b.mean()
    return m1 - m0, psi, m1, m0


def _floor_var(d: EffectData, estimator: str) -> float:
    """Variance of the estimate with each arm's variance floored by the outcome's pooled variance."""
    a, b = _arms(d, estimator)
    r = d.y - d.f if (estimator == "aipw" and d.f is not None) else d.y
    s2 = float(d.y.var(ddof=1))
    v = 0.0
    for w in (a, b):
        c = float((w * r).sum() / w.sum())
        s2_arm = float((w * (r - c) ** 2).sum() / w.sum())
        v += max(s2_arm, s2) / kish_ess(w)
    return v


def estimate(
    d: EffectData, estimator: str = "hajek", ci: str = "if", n_boot: int = 1000, seed: int = 0, normalize: bool = True
) -> Estimate:
    """Estimate the effect with ``estimator`` (naive | hajek | aipw) and a 95% CI (``if`` | ``bootstrap``).

    ``normalize=False`` makes AIPW's residual terms Horvitz-Thompson sums over the target population
    (``sum(a*r)/sum(rho)``) instead of Hájek ratios: exactly unbiased unit by unit when the propensities
    are known and the outcome model of each unit was fitted on earlier units only (adaptive logs)."""
    if estimator not in ESTIMATORS:
        raise ConfigError("--estimator", estimator, f"one of {list(ESTIMATORS)}")
    if ci not in CIS:
        raise ConfigError(
            "--ci", ci, "one of 'if' (influence function), 'floored' (with a pooled-variance floor), 'bootstrap'"
        )
    ate, psi, m1, m0 = _point_and_if(d, estimator, normalize)
    n = d.n
    se = float(psi.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    if ci == "floored" and n > 1:
        se = max(se, float(np.sqrt(_floor_var(d, estimator))))
    if ci in ("if", "floored"):
        z = float(stats.norm.ppf(0.975))
        lo, hi = ate - z * se, ate + z * se
    else:
        rng = np.random.default_rng(seed)
        boots = []
        for _ in range(n_boot):
            idx = rng.integers(n, size=n)
            sub = d.take(idx)
            if sub.t.sum() < 1 or sub.t.sum() > n - 1:
                continue
            boots.append(_point_and_if(sub, estimator, normalize)[0])
        lo, hi = (float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))) if boots else (np.nan, np.nan)
    a, b = _arms(d, estimator)
    ess = kish_ess(a) + kish_ess(b)
    return Estimate(estimator, float(ate), (float(lo), float(hi)), se, n, float(ess), int(d.t.sum()), m1, m0)


def check_positivity(d: EffectData, treatment: str, min_ess: float = 5.0, e: np.ndarray | None = None) -> None:
    """Raise when the effect is not identified from these units (see module docstring).

    ``e`` (optional, shape ``[n]``) is each unit's propensity of treatment, checked to lie in (0, 1)."""
    n, n1 = d.n, int(d.t.sum())
    if n1 == 0 or n1 == n:
        which = "never" if n1 == 0 else "always"
        raise ConfigError(
            "--treatment",
            treatment,
            f"a treatment that is sometimes chosen and sometimes not "
            f"(it was {which} chosen: {n1} of {n} units treated); positivity fails",
            "choose another treatment, or log more trials / a less concentrated search",
        )
    if min(n1, n - n1) < 2:
        raise ConfigError(
            "--treatment",
            treatment,
            f"at least 2 treated and 2 control units (got {n1} treated, {n - n1} control of {n})",
            "log more trials",
        )
    if e is not None:
        e = np.asarray(e, dtype=np.float64)
        bad = np.flatnonzero((e <= 0.0) | (e >= 1.0))
        if len(bad):
            raise ConfigError(
                "--treatment",
                treatment,
                f"propensities strictly inside (0, 1); P(treated) is "
                f"{e[bad[0]]:g} for unit {int(bad[0])} ({len(bad)} units at 0 or 1); positivity fails",
                "the sampler could not choose the other arm there: restrict to other trials",
            )
    for arm, w in (("treated", d.t * d.w1), ("control", (1.0 - d.t) * d.w0)):
        k = int((w > 0).sum())
        ess = kish_ess(w)
        if not np.all(np.isfinite(w)) or ess < min_ess:
            share = float(w.max() / w.sum()) if np.isfinite(w).all() and w.sum() > 0 else float("nan")
            raise ConfigError(
                "--treatment",
                treatment,
                f"weights that do not explode: the {arm} arm has effective "
                f"sample size {ess:.1f} from {k} units (min_ess={min_ess:g}); its largest weight "
                f"carries {share:.0%} of the arm",
                "log more trials (with --reference uniform: "
                "try --reference search), or lower --min-ess if you accept a noisy estimate",
            )
