"""Estimators on simulated data with a known effect; positivity errors name the problem and the numbers."""

import numpy as np
import pytest

from openmindspore.causal.estimators import EffectData, check_positivity, estimate, kish_ess
from openmindspore.errors import ConfigError

TAU = 2.0


def _confounded(n: int, rng: np.random.Generator) -> tuple[EffectData, EffectData]:
    """x confounds: it raises both the chance of treatment and the outcome. Returns (ATE data with the true
    propensity and a linear outcome model fitted per arm, same without the model)."""
    x = rng.normal(size=n)
    e = 1.0 / (1.0 + np.exp(-1.2 * x))
    t = (rng.random(n) < e).astype(float)
    y = 1.0 + TAU * t + 3.0 * x + 0.5 * x**2 + rng.normal(size=n)
    X = np.c_[np.ones(n), x, x**2]
    b1 = np.linalg.lstsq(X[t == 1], y[t == 1], rcond=None)[0]
    b0 = np.linalg.lstsq(X[t == 0], y[t == 0], rcond=None)[0]
    m1, m0 = X @ b1, X @ b0
    with_model = EffectData(y, t, 1 / e, 1 / (1 - e), f=np.where(t == 1, m1, m0), g1=m1, g0=m0)
    return with_model, EffectData(y, t, 1 / e, 1 / (1 - e))


def test_naive_is_biased_ipw_and_aipw_cover_the_truth():
    rng = np.random.default_rng(0)
    est = {k: [] for k in ("naive", "hajek", "aipw")}
    cover = {k: [] for k in est}
    for _ in range(200):
        d, _ = _confounded(400, rng)
        for k in est:
            r = estimate(d, k)
            est[k].append(r.ate)
            cover[k].append(r.ci95[0] <= TAU <= r.ci95[1])
    bias = {k: np.mean(v) - TAU for k, v in est.items()}
    se_mean = {k: np.std(v) / np.sqrt(len(v)) for k, v in est.items()}
    assert bias["naive"] > 2.0  # treated units have larger x: visibly biased upwards
    for k in ("hajek", "aipw"):
        assert abs(bias[k]) < 4 * se_mean[k] + 0.02, (k, bias[k], se_mean[k])
        assert 0.90 <= np.mean(cover[k]) <= 0.99, (k, np.mean(cover[k]))
    assert np.mean(cover["naive"]) < 0.05
    assert np.std(est["aipw"]) < np.std(est["hajek"])  # the outcome model removes variance


def test_bootstrap_ci_agrees_with_influence_function():
    d, _ = _confounded(600, np.random.default_rng(1))
    a, b = estimate(d, "hajek", ci="if"), estimate(d, "hajek", ci="bootstrap", n_boot=400)
    assert a.ate == b.ate
    width_a, width_b = a.ci95[1] - a.ci95[0], b.ci95[1] - b.ci95[0]
    assert 0.7 < width_b / width_a < 1.4


def test_hajek_matches_hand_computation_and_att_weights():
    rng = np.random.default_rng(2)
    y, t = rng.normal(size=50), (np.arange(50) % 3 == 0).astype(float)
    e = np.clip(rng.random(50), 0.1, 0.9)
    r = estimate(EffectData(y, t, 1 / e, 1 / (1 - e)), "hajek")
    m1 = (t * y / e).sum() / (t / e).sum()
    m0 = ((1 - t) * y / (1 - e)).sum() / ((1 - t) / (1 - e)).sum()
    assert r.ate == pytest.approx(m1 - m0) and r.n == 50 and r.n_treated == 17
    assert estimate(EffectData(y, t, 1 / e, 1 / (1 - e)), "naive").ate == pytest.approx(
        y[t == 1].mean() - y[t == 0].mean()
    )
    # ATT: treated weight 1, controls e/(1-e); AIPW with m0 only: mean_T(y - m0) - weighted mean_C(y - m0)
    m = 0.3 * y
    att = EffectData(y, t, 1.0, e / (1 - e), f=np.where(t == 1, y, m), g1=y, g0=m, rho=t)
    w = e / (1 - e) * (1 - t)
    want = (y - m)[t == 1].mean() - (w * (y - m)).sum() / w.sum()
    assert estimate(att, "aipw").ate == pytest.approx(want)


def test_kish_ess():
    assert kish_ess(np.ones(10)) == pytest.approx(10)
    assert kish_ess(np.r_[np.ones(9), 1000.0]) < 1.1


def test_positivity_never_always_and_exploding():
    y = np.arange(8.0)
    with pytest.raises(ConfigError, match=r"never chosen: 0 of 8"):
        check_positivity(EffectData(y, np.zeros(8), 1.0, 1.0), "maxpool")
    with pytest.raises(ConfigError, match=r"always chosen: 8 of 8"):
        check_positivity(EffectData(y, np.ones(8), 1.0, 1.0), "maxpool")
    t = np.r_[np.ones(4), np.zeros(4)]
    with pytest.raises(ConfigError, match=r"P\(treated\) is 1 for unit 4"):
        check_positivity(EffectData(y, t, 2.0, 2.0), "bn", e=np.r_[np.full(4, 0.5), 1.0, np.full(3, 0.5)])
    w = np.r_[1.0, 1.0, 1.0, 500.0, np.ones(4)]
    with pytest.raises(ConfigError, match=r"treated arm has effective sample size 1\.0 from 4 units.*carries 99%"):
        check_positivity(EffectData(y, t, w, 1.0), "bn", min_ess=2)
    check_positivity(EffectData(y, t, 1.0, 1.0), "bn", min_ess=2)  # balanced: fine


def test_bad_inputs():
    with pytest.raises(ConfigError, match="0/1 treatment"):
        EffectData(np.zeros(3), np.array([0, 1, 2]), 1.0, 1.0)
    with pytest.raises(ConfigError, match="--estimator='dr'"):
        estimate(EffectData(np.zeros(4), np.array([0, 1, 0, 1]), 1.0, 1.0), "dr")
