"""The floored interval on a skewed outcome with a small arm; placebo and random-common-cause checks on a real
NAS-Bench-201 markov log: they pass there, and fail on logs built so that they must."""

from dataclasses import replace

import numpy as np
import pytest

from openmindspore.automl import make_space, run_search
from openmindspore.causal.estimators import EffectData, estimate
from openmindspore.causal.refute import max_exclusions, placebo_check, random_common_cause_check
from openmindspore.causal.searchlog import log_units
from openmindspore.causal.treatments import get_treatment


def _rare_tail_log(rng: np.random.Generator, n: int = 150) -> tuple[EffectData, float]:
    """Like `skip` on NB201: ~15% controls; outcomes skewed (88 minus an exponential tail) with 'broken'
    units at 10 (2% of controls, 1% of treated); the effect is +1 on working units. Returns the data and
    the true effect."""
    e = rng.uniform(0.75, 0.95, n)
    t = (rng.random(n) < e).astype(float)
    broken = rng.random(n) < np.where(t == 1, 0.01, 0.02)
    y = np.where(broken, 10.0, 88.0 + 1.0 * t - rng.exponential(3.0, n))
    truth = (1 - 0.01) * 86.0 + 0.01 * 10.0 - ((1 - 0.02) * 85.0 + 0.02 * 10.0)
    return EffectData(y, t, 1 / e, 1 / (1 - e)), truth


def test_floored_interval_covers_a_rare_tail_where_the_plain_one_does_not():
    rng = np.random.default_rng(0)
    cover = {"if": [], "floored": []}
    for _ in range(300):
        d, truth = _rare_tail_log(rng)
        a, b = estimate(d, "hajek", ci="if"), estimate(d, "hajek", ci="floored")
        assert a.ate == b.ate and b.se >= a.se  # same estimate, never a narrower interval
        for k, r in (("if", a), ("floored", b)):
            cover[k].append(r.ci95[0] <= truth <= r.ci95[1])
    # controls without a broken unit: far too narrow (0.74 here); the pooled floor sees the treated arm's tail
    assert np.mean(cover["if"]) < 0.85, np.mean(cover["if"])
    assert np.mean(cover["floored"]) >= 0.90, np.mean(cover["floored"])


def test_floor_leaves_a_well_behaved_log_nearly_alone():
    rng = np.random.default_rng(1)
    n = 400
    e = rng.uniform(0.3, 0.7, n)
    t = (rng.random(n) < e).astype(float)
    d = EffectData(rng.normal(size=n) + 0.5 * t, t, 1 / e, 1 / (1 - e))
    a, b = estimate(d, "hajek", ci="if"), estimate(d, "hajek", ci="floored")
    assert b.se / a.se < 1.1


def test_max_exclusions_is_a_binomial_tail():
    assert max_exclusions(20) == 4  # P(Bin(20, .05) > 3) = 0.016, > 4: 0.003
    assert max_exclusions(100) == 11  # P(Bin(100, .05) > 10) = 0.011, > 11: 0.004


@pytest.fixture(scope="module")
def nb201_units():
    space = make_space("nb201", "cifar10")
    # the chain before contrast/local moves: this log (seed 1000) has a clear edge1 effect for the checks below
    out = run_search(space, "markov", 150, seed=1000, strategy_options={"contrast": 0, "local": 0})
    return {
        name: log_units(out.config, out.trials, space.grammar, get_treatment(name), "test.accuracy")
        for name in ("avgpool", "edge1=nor_conv_3x3")
    }


def test_placebo_is_zero_on_a_real_log_and_flagged_when_the_outcome_depends_on_it(nb201_units):
    u = nb201_units["avgpool"]
    res = placebo_check(u, ("hajek", "aipw"), draws=20, seed=0)
    for name in ("hajek", "aipw"):
        assert res[name]["passed"] and res[name]["draws"] == 20, res[name]
        assert abs(res[name]["mean_ate"]) < 1.0
    # a placebo the outcome depends on (+5 points): every draw finds it
    tp = (np.random.default_rng(3).random(len(u.e)) < u.e).astype(float)
    bad = replace(u, y=u.y + 5.0 * tp)
    res = placebo_check(bad, ("hajek", "aipw"), placebos=[tp] * 5)
    for name in ("hajek", "aipw"):
        assert not res[name]["passed"] and res[name]["ci_excludes_0"] == 5, res[name]
        assert res[name]["mean_ate"] == pytest.approx(5.0, abs=1.5)


def test_random_common_cause_does_not_move_aipw_but_a_real_cause_does(nb201_units):
    u = nb201_units["edge1=nor_conv_3x3"]
    est = estimate(u.effect_data("search"), "aipw", ci="floored")
    res = random_common_cause_check(u, est.ate, est.se, draws=5)
    assert res["passed"] and res["max_abs_change_se"] < 0.5, res
    # a "covariate" that is the outcome itself explains it fully: the estimate collapses towards 0
    assert abs(est.ate) > est.se  # precondition: there is an effect to lose
    res = random_common_cause_check(u, est.ate, est.se, covariates=[u.y])
    assert not res["passed"] and res["max_abs_change_se"] > 0.5, res
