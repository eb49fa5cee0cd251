"""Naming what selection dropped: a dropped copy or proxy is ``proxy_of`` the kept feature whose conditioning
removes it (also when dropped at the first step); noise is plain dropped; near-duplicates form one cluster;
the score guard keeps a feature whose removal costs more than one s.e."""

import numpy as np
from sklearn.linear_model import Ridge

from openmindspore.features import eliminate, intervention_elimination
from openmindspore.features.naming import explained_by, name_dropped, near_duplicates


def _injected(n: int = 300, seed: int = 0):
    """a, b informative; a noisy copy of a, a nonlinear proxy of a, pure noise (the benchmark's columns)."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    copy = a + 0.5 * rng.standard_normal(n)
    proxy = np.tanh(a) + 0.3 * np.tanh(a).std() * rng.standard_normal(n)
    X = np.column_stack([a, b, copy, proxy, rng.standard_normal(n)])
    y = 2.0 * a + b + 0.5 * rng.standard_normal(n)
    return X, y, ["a", "b", "copy", "proxy", "noise"]


def test_dropped_copy_and_proxy_are_named_by_the_kept_source_and_noise_is_not():
    X, y, names = _injected()
    got = name_dropped(Ridge(), X, y, "regression", names, ["a", "b"], ["copy", "proxy", "noise"], repeats=3)
    assert got == {"copy": "a", "proxy": "a"}
    src, info = explained_by(Ridge(), X, y, "regression", 2, [0, 1], repeats=3)
    assert src == 0
    assert info["marginal"][1] > 0  # the copy predicts y on its own ...
    assert info["given"][1][1] > 0.5 * info["marginal"][0]  # ... b does not explain it
    assert info["given"][0][2] > 0.7  # a predicts the copy (cross-fitted R^2)


def test_elimination_drops_and_names_the_injected_columns():
    X, y, names = _injected()
    elim, first = intervention_elimination(Ridge(), X, y, "regression", names, repeats=3, n_boot=300)
    assert elim.kept_names == ["a", "b"]
    assert elim.proxies == {"copy": "a", "proxy": "a"}
    assert "noise" in {d.name for d in elim.drops} and elim.guarded == []
    assert all(d.loss_change is not None and d.loss_change[0] <= d.loss_change[1] for d in elim.drops)
    assert len(first.row_loss) == len(X)


def test_near_duplicates_by_correlation_or_nonlinear_r2():
    rng = np.random.default_rng(1)
    a = rng.standard_normal(400)
    X = np.column_stack([a, a + 0.1 * rng.standard_normal(400), a**2, a + 1.0 * rng.standard_normal(400)])
    assert abs(np.corrcoef(a, a**2)[0, 1]) < 0.5  # a^2 is no linear duplicate of a ...
    assert near_duplicates(X, 0) == [0, 1, 2]  # ... but a predicts it (R^2 > 0.9); the noisy copy is no duplicate
    assert near_duplicates(X, 3) == [3]


def test_score_guard_vetoes_a_drop_and_goes_on_with_the_others():
    # every feature is eligible (CI lower bound <= 0); dropping feature 1 costs score, so it stays
    def score(cols):
        m = np.array([0.1 * (c + 1) for c in cols])
        return m, np.column_stack([m - 1.0, m + 1.0])

    def accept(cols):
        return 1 in cols, 0.0 if 1 in cols else 5.0, 1.0

    elim = eliminate(["f0", "f1", "f2", "f3"], score, accept=accept)
    assert elim.kept_names == ["f1"] and elim.guarded == ["f1"]
    assert [d.name for d in elim.drops] == ["f0", "f2", "f3"]
    assert all(d.loss_change == (0.0, 1.0) for d in elim.drops)
