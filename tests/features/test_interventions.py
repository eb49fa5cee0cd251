"""Interventions: only the intervened column changes; marginal permutes; conditional keeps the column's
link with the others (linear-Gaussian toy) and a discrete column's support and strata."""

import numpy as np
import pytest

from openmindspore.errors import ConfigError
from openmindspore.features import ConditionalSampler, intervene
from openmindspore.features.interventions import nn_strata


def _gaussian(n: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 3))
    x0 = z[:, 0]
    x1 = 0.8 * x0 + 0.6 * z[:, 1]  # corr(x0, x1) = 0.8
    x2 = 0.5 * x1 + np.sqrt(0.75) * z[:, 2]
    return np.column_stack([x0, x1, x2])


@pytest.mark.parametrize("kind", ["marginal", "conditional"])
def test_other_columns_are_bitwise_untouched(kind):
    X = _gaussian()
    out = intervene(X, 1, kind, np.random.default_rng(0))
    assert out is not X and out.shape == X.shape
    for j in (0, 2):
        assert out[:, j].tobytes() == X[:, j].tobytes()
    assert not np.array_equal(out[:, 1], X[:, 1])
    assert X[:, 1].tobytes() == _gaussian()[:, 1].tobytes()  # the input is not modified


def test_marginal_is_a_permutation():
    X = _gaussian()
    out = intervene(X, 0, "marginal", np.random.default_rng(1))
    assert np.array_equal(np.sort(out[:, 0]), np.sort(X[:, 0]))
    # and it breaks the link with the other columns
    assert abs(np.corrcoef(out[:, 0], X[:, 1])[0, 1]) < 0.15


def test_conditional_keeps_the_correlation_with_the_other_columns():
    X = _gaussian(n=800)
    rng = np.random.default_rng(2)
    draws = np.stack([intervene(X, 1, "conditional", rng) for _ in range(5)])
    for j in (0, 2):
        before = np.corrcoef(X[:, 1], X[:, j])[0, 1]
        after = np.mean([np.corrcoef(d[:, 1], d[:, j])[0, 1] for d in draws])
        assert after == pytest.approx(before, abs=0.05)
    # the column's own part is redrawn: the draw is not the column itself
    assert np.corrcoef(draws[0][:, 1], X[:, 1])[0, 1] < 0.95
    assert draws[0][:, 1].std() == pytest.approx(X[:, 1].std(), rel=0.1)


def test_discrete_column_is_permuted_within_nearest_neighbour_strata():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((240, 2))
    level = (z[:, 0] > 0).astype(float) + (z[:, 0] > 1).astype(float)  # 3 levels, driven by z0
    X = np.column_stack([z, level])
    s = ConditionalSampler().fit(X, 2)
    assert s.discrete
    out = intervene(X, 2, "conditional", np.random.default_rng(4), sampler=s)
    assert set(np.unique(out[:, 2])) <= {0.0, 1.0, 2.0}
    strata = nn_strata(X[:, :2], 8)
    assert sorted(np.concatenate(strata).tolist()) == list(range(240))
    for st in strata:  # each stratum keeps its multiset of levels
        assert sorted(out[st, 2]) == sorted(X[st, 2])
    # conditioning keeps the dependence on z0 that a marginal permutation destroys
    marg = intervene(X, 2, "marginal", np.random.default_rng(4))
    assert np.corrcoef(out[:, 2], z[:, 0])[0, 1] > np.corrcoef(marg[:, 2], z[:, 0])[0, 1] + 0.4


def test_bad_column_and_kind():
    X = _gaussian(50)
    with pytest.raises(ConfigError, match="column"):
        intervene(X, 3, "marginal", np.random.default_rng(0))
    with pytest.raises(ConfigError, match="kind"):
        intervene(X, 0, "shuffle", np.random.default_rng(0))  # type: ignore[arg-type]
