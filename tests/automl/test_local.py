"""Local moves (``ChainConfig.local``) and the contrast of the chain: schedule, neighbour tables, exact
propensities (a replay of logged searches), resume."""

import numpy as np
import pytest
from chain_testing import (
    assert_replay_is_exact,
    assert_resume_is_exact,
    assert_samples_keep_floor_and_mask,
    fit_on_noisy_results,
)

from openmindspore.automl import make_space, run_search
from openmindspore.automl.chain import ChainConfig, MarkovChain
from openmindspore.automl.local import is_local_trial, local_tables, rank_models
from openmindspore.automl.spaces.cnn import cnn_grammar
from openmindspore.automl.spaces.nb201 import nb201_grammar
from openmindspore.automl.strategies import MarkovSearch
from openmindspore.errors import ConfigError

LOCAL = {"local": 0.5, "local_after": 12}


@pytest.fixture(scope="module")
def nb201():
    return make_space("nb201")


def test_schedule_spreads_the_fraction_after_the_start():
    marks = [is_local_trial(n, 10, 0.5) for n in range(30)]
    assert not any(marks[:10]) and sum(marks[10:]) == 10 and marks[10:12] == [False, True]
    assert sum(is_local_trial(n, 0, 0.25) for n in range(1, 101)) == 25
    assert not any(is_local_trial(n, 5, 0.0) for n in range(50))
    assert all(is_local_trial(n, 5, 1.0) for n in range(5, 50))


def test_neighbour_tables_keep_the_incumbent_but_one_unevaluated_move():
    g = nb201_grammar()
    inc = [(f"edge{j}", 3) for j in range(6)]
    nb = [[(s, a if j == 0 else i) for j, (s, i) in enumerate(inc)] for a in (0, 1, 2)]
    ok = [(inc, 90.0), (inc, 89.0)] + [(p, 80.0) for p in nb] + [([(f"edge{j}", 0) for j in range(6)], 10.0)]
    assert rank_models(ok)[0] == (tuple(inc), 89.5, 2)
    q = {s: np.full(5, 0.2) for s in g.num_choices}
    t = local_tables(g, ok, q)
    assert set(t) == set(g.num_choices)
    moved = [s for s, v in t.items() if v[3] != 1.0]
    assert len(moved) == 1 and moved[0] != "edge0"  # edge0's neighbours 0,1,2 were evaluated: only 4 is new
    q["edge0"] = np.array([0.0, 0.0, 0.0, 0.1, 0.9])  # now edge0's one fresh alternative carries most mass
    t = local_tables(g, ok, q)
    assert np.array_equal(t["edge0"], [0, 0, 0, 0, 1.0]) and all(t[f"edge{j}"][3] == 1.0 for j in range(1, 6))
    # every neighbour of the top models evaluated: no local move
    all_nb = [[(s, a if j == k else i) for j, (s, i) in enumerate(inc)] for k in range(6) for a in range(5)]
    assert local_tables(g, [(p, 80.0) for p in all_nb] + [(inc, 90.0)], q, top=1) == {}


@pytest.mark.parametrize("grammar", [nb201_grammar(), cnn_grammar()], ids=["nb201", "cnn"])
def test_local_trial_keeps_the_floor_and_mask(grammar):
    chain = MarkovChain(grammar, ChainConfig(local=1.0, warmup=5, epsilon=0.03))
    rng = np.random.default_rng(0)
    fit_on_noisy_results(chain, rng)
    assert chain._local, "a local trial after warmup"
    assert_samples_keep_floor_and_mask(chain, grammar, rng, 0.03)


def test_local_move_is_a_neighbour_of_the_incumbent_most_of_the_time(nb201):
    res = run_search(nb201, "markov", 60, seed=2, strategy_options=LOCAL)
    ok = [(t.path, t.score) for t in res.trials[:41]]  # trial 41 is a local one
    chain = MarkovSearch(nb201.grammar, **LOCAL).chain.fit(ok)
    assert chain._local
    inc = rank_models(ok)[0][0]
    seen = {tuple(p) for p, _ in ok}
    rng = np.random.default_rng(0)
    draws = [tuple(chain.sample(rng)[1]) for _ in range(400)]
    dist = [sum(a != b for a, b in zip(d, inc)) for d in draws]
    assert np.mean([d == 1 for d in dist]) > 0.5  # the floor moves other edges in the rest
    assert np.mean([d in seen for d in draws]) < 0.1  # the move avoids evaluated neighbours


def test_replay_rebuilds_every_local_trial_with_its_logged_propensities(nb201, tmp_path):
    n_local = assert_replay_is_exact(nb201, tmp_path, LOCAL, 40, 4, lambda _, chain: chain._local)
    assert n_local == 14  # trials 13, 15, ..., 39


def test_local_search_resumes_exactly(nb201, tmp_path):
    assert_resume_is_exact(nb201, tmp_path, LOCAL)


def test_contrast_moves_mass_from_choices_the_rest_also_takes():
    g = nb201_grammar()
    rng = np.random.default_rng(0)
    # the bad models take skip_connect on edge0 (and anything else elsewhere); the good ones take skip or conv1x1
    rest = [[("edge0", 1)] + [(f"edge{j}", int(rng.integers(5))) for j in range(1, 6)] for _ in range(30)]
    good = [[("edge0", a)] + [(f"edge{j}", 3) for j in range(1, 6)] for a in (1, 2)]
    results = [(p, 90.0) for p in good] + [(p, 10.0 + rng.normal()) for p in rest]
    cfg = {"warmup": 1, "min_elite": 2, "elite_frac": 0.05, "local": 0.0}
    plain = MarkovChain(g, ChainConfig(contrast=0.0, **cfg)).fit(results)
    sharp = MarkovChain(g, ChainConfig(contrast=1.0, **cfg)).fit(results)
    p, s = plain.table()["edge0"], sharp.table()["edge0"]
    assert p["skip_connect"] >= p["nor_conv_1x1"]  # the elite alone: skip (rank 1) at least as likely
    assert s["nor_conv_1x1"] > s["skip_connect"] and sum(s.values()) == pytest.approx(1.0)
    assert sharp.table()["edge3"]["nor_conv_3x3"] > plain.table()["edge3"]["nor_conv_3x3"]


def test_bad_local_options_are_config_errors():
    with pytest.raises(ConfigError, match="local"):
        MarkovChain(nb201_grammar(), ChainConfig(local=1.5))
    with pytest.raises(ConfigError, match="local_after"):
        MarkovChain(nb201_grammar(), ChainConfig(local=0.5, local_after=-1))
    with pytest.raises(ConfigError, match="contrast"):
        MarkovChain(nb201_grammar(), ChainConfig(contrast=-1.0))
