"""Proxies: in a chain A -> B -> y, A is important only through B and is reported as proxy_of: B."""

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from openmindspore.features import measure_set, name_proxies


def test_chain_a_b_y_reports_a_as_proxy_of_b():
    rng = np.random.default_rng(0)
    n = 400
    a = rng.standard_normal(n)
    b = a + 0.5 * rng.standard_normal(n)
    other = rng.standard_normal(n)
    y = 2.0 * b + other + 0.3 * rng.standard_normal(n)
    X = np.column_stack([a, b, other])
    # one candidate feature per split: the forest splits on A whenever B is not offered
    est = RandomForestRegressor(n_estimators=40, max_features=1, min_samples_leaf=3, random_state=0)
    m = measure_set(est, X, y, "regression", ["A", "B", "other"], marginal=True, repeats=3, n_boot=300)
    assert m.marginal is not None
    assert m.marginal.lower[0] > 0  # the forest does split on A ...
    assert m.main.lower[0] <= 0 < m.main.lower[1]  # ... but given B, A carries nothing
    assert name_proxies(m) == {"A": "B"}
    given_b = m.pair("A", "B")
    assert given_b is not None and given_b.ci95[0] <= 0 and given_b.r2 > 0.7
