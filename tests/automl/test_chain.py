"""The Markov chain: distributions, floor, learning, determinism, propensities."""

import math

import numpy as np
import pytest

from openmindspore.automl.chain import ChainConfig, MarkovChain
from openmindspore.automl.grammar import Grammar
from openmindspore.automl.spaces.cnn import cnn_grammar
from openmindspore.automl.spaces.nb201 import nb201_grammar
from openmindspore.errors import ConfigError


def _all_contexts(chain, rng, n=200):
    """(state, context, used) triples met while sampling."""
    seen = []
    for _ in range(n):
        _, path = chain.sample(rng)
        used, prev = {}, None
        for state, i in path:
            seen.append((state, "^" if prev is None else f"{prev[0]}={prev[1]}", dict(used)))
            for k in chain.grammar.choice(state, i).count:
                used[k] = used.get(k, 0) + 1
            prev = (state, i)
    return seen


def _fit_extreme(chain, rng, n=60):
    """Fit on results that reward one choice per state heavily."""
    results = []
    for _ in range(n):
        _, path = chain.sample(rng)
        results.append((path, float(sum(i == 0 for _, i in path))))
    return chain.fit(results)


@pytest.mark.parametrize("grammar", [nb201_grammar(), cnn_grammar()], ids=["nb201", "cnn"])
def test_probabilities_sum_to_one_and_respect_floor(grammar):
    eps = 0.03
    chain = MarkovChain(grammar, ChainConfig(epsilon=eps, warmup=5))
    rng = np.random.default_rng(0)
    _fit_extreme(chain, rng)
    for state, ctx, used in _all_contexts(chain, rng):
        p = chain.probs(state, ctx, used)
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        allowed = grammar.allowed(state, used)
        assert np.all(p[allowed] >= eps - 1e-12), (state, ctx, p)
        blocked = [j for j in range(len(p)) if j not in allowed]
        assert np.all(p[blocked] == 0.0)


def test_updates_move_mass_toward_better_models():
    g = nb201_grammar()
    chain = MarkovChain(g, ChainConfig(warmup=5))
    rng = np.random.default_rng(1)
    before = chain.probs("edge3", "^")[3]
    results = []
    for _ in range(80):
        _, path = chain.sample(rng)
        score = 90.0 if path[3][1] == 3 else 80.0 + rng.normal()  # nor_conv_3x3 on edge3 is better
        results.append((path, score))
    chain.fit(results)
    q = chain.table()["edge3"]
    assert q["nor_conv_3x3"] > 0.5 > before
    assert q["nor_conv_3x3"] == max(q.values())
    # the naive rule moves the same way, if less
    naive = MarkovChain(g, ChainConfig(rule="naive", context="none")).fit(results)
    assert naive.table()["edge3"]["nor_conv_3x3"] > 0.2


def test_failed_results_are_never_elite():
    g = nb201_grammar()
    chain = MarkovChain(g, ChainConfig(warmup=1, min_elite=1, elite_frac=0.01))
    rng = np.random.default_rng(2)
    _, good = chain.sample(rng)
    _, failed = chain.sample(rng)
    chain.fit([(failed, None), (good, 1.0)])
    assert chain.table()["edge0"][g.choice("edge0", good[0][1]).id] > 0.2


def test_sampling_is_deterministic_and_propensities_exact():
    g = cnn_grammar()
    chain = MarkovChain(g, ChainConfig(warmup=3))
    _fit_extreme(chain, np.random.default_rng(3), n=30)
    a = [chain.sample(np.random.default_rng(7)) for _ in range(5)]
    b = [chain.sample(np.random.default_rng(7)) for _ in range(5)]
    assert [p for _, p in a] == [p for _, p in b]
    steps, path = chain.sample(np.random.default_rng(11))
    assert [s.choice for s in steps] == [g.choice(st, i).id for st, i in path]
    for s in steps:
        assert s.p == pytest.approx(s.probs[s.choice]) and sum(s.probs.values()) == pytest.approx(1.0)
    assert chain.log_prob(path) == pytest.approx(sum(math.log(s.p) for s in steps))


def test_empirical_frequencies_match_propensities():
    g = nb201_grammar()
    chain = MarkovChain(g, ChainConfig(warmup=3))
    _fit_extreme(chain, np.random.default_rng(4), n=40)
    rng = np.random.default_rng(5)
    draws = [chain.sample(rng)[0][0] for _ in range(4000)]
    freq = np.mean([s.choice == "none" for s in draws])
    assert freq == pytest.approx(draws[0].probs["none"], abs=0.03)


def test_bad_config_is_rejected():
    with pytest.raises(ConfigError, match="epsilon"):
        MarkovChain(nb201_grammar(), ChainConfig(epsilon=0.3))  # 5 choices * 0.3 > 1
    with pytest.raises(ConfigError, match="rule"):
        MarkovChain(nb201_grammar(), ChainConfig(rule="magic"))


def test_context_changes_conditional_distribution():
    g = Grammar.from_dict(
        {
            "name": "xor",
            "start": "a",
            "states": {
                "a": [{"id": "0", "next": "b"}, {"id": "1", "next": "b"}],
                "b": [{"id": "0", "next": None}, {"id": "1", "next": None}],
            },
        }
    )
    rng = np.random.default_rng(0)
    results = []
    for _ in range(100):
        x, y = int(rng.integers(2)), int(rng.integers(2))
        results.append(([("a", x), ("b", y)], float(x != y)))  # reward xor: needs context
    chain = MarkovChain(
        g, ChainConfig(warmup=5, elite_frac=0.4, context="prev", backoff=2.0, average_repeats=False)
    ).fit(results)
    assert chain.probs("b", "a=0")[1] > 0.7 and chain.probs("b", "a=1")[0] > 0.7
    flat = MarkovChain(g, ChainConfig(warmup=5, elite_frac=0.4, context="none", average_repeats=False)).fit(results)
    assert abs(flat.probs("b", "a=0")[1] - flat.probs("b", "a=1")[1]) < 1e-12
