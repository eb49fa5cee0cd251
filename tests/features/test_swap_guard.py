"""The orientation's score guard (``selection.swap_guard``): a swap is accepted when the swapped set is within
one s.e. of the full set's loss *or* not worse than the kept set it replaces (paired per row); a kept set
already near the one-s.e. limit no longer blocks a correct swap, and a clearly worse swapped set is still
vetoed. ``orient`` asks the guard with the swapped set and the set it replaces."""

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from openmindspore.features.importance import CrossFit
from openmindspore.features.interventions import fold_ids
from openmindspore.features.orient import orient
from openmindspore.features.selection import Z_PAIRED, swap_guard


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    e = rng.standard_normal(n)
    return (e - e.mean()) / e.std(ddof=1)  # mean 0, sd 1 exactly: the figures below are exact


def _losses(shift: float, noise: float, near_limit: float = 0.9):
    """Per-row losses of the full set (s.e. of its mean: ``se``), a kept set ``near_limit`` s.e. above it, and
    a swapped set ``shift`` above the kept set with per-row noise of sd ``noise``."""
    rng = np.random.default_rng(0)
    n = 400
    full = 1.0 + 0.5 * _unit(rng, n)
    se = 0.5 / np.sqrt(n)
    replaced = full + near_limit * se + 0.01 * _unit(rng, n)
    return full, replaced, replaced + shift + noise * _unit(rng, n), se


def test_a_swap_sideways_from_a_set_near_the_limit_is_accepted():
    full, replaced, swapped, se = _losses(shift=0.5 * 0.025, noise=0.5)  # paired s.e. 0.5 / 20 = 0.025
    ok, (change, full_se), (p_change, p_se) = swap_guard(swapped, replaced, full)
    assert np.isclose(full_se, se) and change > full_se  # the full-set guard alone would veto it ...
    assert np.isclose(p_se, 0.025, rtol=0.05) and p_change < Z_PAIRED * p_se  # ... the paired test does not
    assert ok


def test_a_clearly_worse_swapped_set_is_still_vetoed():
    full, replaced, swapped, _ = _losses(shift=4 * 0.025, noise=0.5)  # 4 paired s.e. worse than the kept set
    ok, (change, full_se), (p_change, p_se) = swap_guard(swapped, replaced, full)
    assert change > full_se and p_change > Z_PAIRED * p_se
    assert not ok
    # the same increase with less per-row noise is significant sooner: vetoed at a smaller shift
    full, replaced, swapped, _ = _losses(shift=0.5 * 0.025, noise=0.05)
    assert not swap_guard(swapped, replaced, full)[0]


def test_within_one_se_of_the_full_set_is_accepted_even_if_paired_worse():
    # the kept set is better than the full set; the swap costs a significant but small amount: the drop
    # guard's rule (within one s.e. of the full set) still accepts, as before the paired test was added
    full, replaced, swapped, se = _losses(shift=0.5 * 0.025, noise=0.05, near_limit=-1.0)
    ok, (change, full_se), (p_change, p_se) = swap_guard(swapped, replaced, full)
    assert p_change > Z_PAIRED * p_se and change <= full_se and ok


def test_tolerance_scales_the_full_set_allowance():
    # within one s.e. of the full set but paired clearly worse: accepted at tolerance 1, vetoed below its change
    full, replaced, swapped, se = _losses(shift=0.5 * 0.025, noise=0.05, near_limit=0.3)  # 0.8 s.e. above full
    ok, (change, _), _ = swap_guard(swapped, replaced, full, tolerance=1.0)
    assert ok and 0 < change < se
    assert not swap_guard(swapped, replaced, full, tolerance=0.9 * change / se)[0]
    assert swap_guard(swapped, replaced, full, tolerance=1.1 * change / se)[0]


def _skewed(sigma: float):
    """A lognormal source ``s`` (skew ``sigma``), its tanh proxy, two other columns of it and an independent
    ``b``; ridge fits the proxy better, the more so the more skewed the source."""
    rng = np.random.default_rng(0)
    n = 300
    u, b = rng.standard_normal(n), rng.standard_normal(n)
    s = np.exp(sigma * u)
    g = np.tanh((s - s.mean()) / s.std())
    proxy = g + 0.3 * g.std() * rng.standard_normal(n)
    w1, w2 = u + 0.6 * rng.standard_normal(n), u + 0.9 * rng.standard_normal(n)
    y = np.tanh(u) + 0.7 * b + 0.5 * rng.standard_normal(n)
    return np.column_stack([s, b, w1, w2, proxy]), y


def _orient_with_guard(sigma: float):
    X, y = _skewed(sigma)
    n = len(X)

    def loss(cols):
        cf = CrossFit(make_pipeline(StandardScaler(), Ridge()), X[:, cols], y, "regression", 5, 0)
        cf.parts()
        return cf.base

    asked = []

    def accept(cols, replaced):
        asked.append((cols, replaced))
        # the kept set at the one-s.e. limit of the full set: the full set's losses one s.e. below the kept set's
        l_rep = loss(replaced)
        return swap_guard(loss(cols), l_rep, l_rep - l_rep.std(ddof=1) / np.sqrt(n))

    kept = np.array([False, True, False, False, True])  # the proxy kept, the source dropped
    names = ["s", "b", "w1", "w2", "proxy"]
    new, tested = orient(X, y, "regression", names, kept, {"s": "proxy"}, fold_ids(n, 5, 0), accept)
    assert asked == [([0, 1], [1, 4])]  # the swapped set and the kept set it replaces
    (t,) = tested
    assert t.loss_change is not None and t.paired is not None
    assert t.z_all > 1.96 and t.loss_change[0] > t.loss_change[1]  # oriented; the full-set rule alone vetoes
    return new, t


def test_orient_lets_a_sideways_swap_through_and_vetoes_a_costly_one():
    # mildly skewed source: ridge loses a little with it (under 1.96 paired s.e.): swapped in
    new, t = _orient_with_guard(0.4)
    assert t.paired is not None and 0 < t.paired[0] < Z_PAIRED * t.paired[1]
    assert t.made and new.tolist() == [True, True, False, False, False]
    # strongly skewed: ridge loses clearly with the raw source: the score guard keeps the proxy
    new, t = _orient_with_guard(0.7)
    assert t.paired is not None and t.paired[0] > Z_PAIRED * t.paired[1]
    assert not t.made and new.tolist() == [False, True, False, False, True]
