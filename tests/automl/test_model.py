"""Model trials of the chain (``ChainConfig.model``): schedule, surrogate choice, exact propensities
(a replay of logged searches), resume, any grammar."""

import numpy as np
import pytest
from chain_testing import (
    assert_replay_is_exact,
    assert_resume_is_exact,
    assert_samples_keep_floor_and_mask,
    fit_on_noisy_results,
)

from openmindspore.automl import make_space
from openmindspore.automl.chain import ChainConfig, MarkovChain
from openmindspore.automl.local import is_local_trial, neighbours
from openmindspore.automl.model import (
    candidate_seed,
    draw_walks,
    features,
    gp_scores,
    is_model_trial,
    local_model_tables,
    model_tables,
)
from openmindspore.automl.search import load_trials
from openmindspore.automl.spaces.cnn import cnn_grammar
from openmindspore.automl.spaces.nb201 import nb201_grammar
from openmindspore.errors import ConfigError

MODEL = {"model": 1.0, "model_after": 12, "local": 0.5, "local_after": 12, "model_candidates": 300}


@pytest.fixture(scope="module")
def nb201():
    return make_space("nb201")


def test_schedule_takes_a_share_of_the_trials_that_are_not_local():
    model = [is_model_trial(n, 20, 1.0, 20, 0.7) for n in range(100)]
    local = [is_local_trial(n, 20, 0.7) for n in range(100)]
    assert not any(model[:20]) and not any(m and lo for m, lo in zip(model, local))
    assert all(m or lo for m, lo in zip(model[20:], local[20:]))  # 1.0: every global trial after 20
    half = [is_model_trial(n, 20, 0.5, 20, 0.7) for n in range(100)]
    assert sum(half) == sum(model) // 2 and all(model[n] for n in range(100) if half[n])
    assert sum(is_model_trial(n, 10, 0.25, 0, 0.0) for n in range(10, 110)) == 25
    assert not any(is_model_trial(n, 0, 0.0, 0, 0.0) for n in range(50))


def test_surrogate_proposes_the_unevaluated_optimum_of_an_additive_score():
    g = nb201_grammar()
    rng = np.random.default_rng(0)
    paths = [tuple((f"edge{j}", int(rng.integers(5))) for j in range(6)) for _ in range(40)]
    paths = [p for p in dict.fromkeys(paths) if sum(i == 3 for _, i in p) < 6]
    ok = [(p, float(sum(i == 3 for _, i in p)) + 0.1 * rng.normal()) for p in paths]

    def probs(state, context, used):  # a chain that has learned conv 3x3 (so the optimum is a candidate)
        return np.array([0.05, 0.05, 0.05, 0.8, 0.05])

    def tables(kappa):
        return model_tables(g, ok, probs, True, candidate_seed(ok, len(ok)), 500, 0.0, kappa)

    t = tables(0.0)
    assert set(t) == set(g.num_choices) and all(v.sum() == 1.0 and v.max() == 1.0 for v in t.values())
    assert [int(np.argmax(t[f"edge{j}"])) for j in range(6)] == [3] * 6  # all-conv3x3: the best mean
    t = tables(1.0)  # optimism: maybe another candidate, but never an evaluated one
    assert tuple((s, int(np.argmax(t[s]))) for s in t) not in {p for p, _ in ok}
    assert all(np.array_equal(t[s], v) for s, v in tables(1.0).items())  # a pure function of the results
    # the mean of the surrogate ranks the evaluated models like their scores (kappa 0)
    x = features(g, paths)
    mean = gp_scores(x, np.array([s for _, s in ok]), x, kappa=0.0, clip=0.0)
    assert np.corrcoef(mean, [s for _, s in ok])[0, 1] > 0.9
    assert model_tables(g, ok[:2], probs, True, [0], candidates=10) == {}  # too few results
    # expected improvement (model_acq "ei"): proposes the optimum too; >= the plain gain of the mean
    t = model_tables(g, ok, probs, True, candidate_seed(ok, len(ok)), 500, 0.0, 0.0, 0.25, "ei")
    assert [int(np.argmax(t[f"edge{j}"])) for j in range(6)] == [3] * 6
    cand = features(g, draw_walks(g, probs, True, np.random.default_rng(2), 200, 0.5))
    y = np.array([s for _, s in ok])
    ei, mean = gp_scores(x, y, cand, 0.0, 0.0, "ei"), gp_scores(x, y, cand, 0.0, 0.0)
    incumbent = gp_scores(x, y, x, 0.0, 0.0).max()
    assert np.all(ei >= np.maximum(mean - incumbent, 0.0) - 1e-12) and np.all(ei > 0)
    assert not np.allclose(np.argsort(ei), np.argsort(mean))  # the spread counts, not only the mean


@pytest.mark.parametrize("grammar", [nb201_grammar(), cnn_grammar()], ids=["nb201", "cnn"])
def test_model_trial_keeps_the_floor_and_mask(grammar):
    chain = MarkovChain(grammar, ChainConfig(model=1.0, model_after=5, local=0.0, warmup=5, epsilon=0.03))
    rng = np.random.default_rng(0)
    results = fit_on_noisy_results(chain, rng)
    assert chain._local, "a model trial after model_after"
    seen = {tuple(p) for p, _ in results}
    assert_samples_keep_floor_and_mask(chain, grammar, rng, 0.03)
    # the candidates are valid walks of the grammar (counters respected), some of them new
    walks = draw_walks(grammar, chain.probs, False, np.random.default_rng(1), 50, 0.5)
    assert all(grammar.walk([grammar.choice(s, i).id for s, i in w]) == list(w) for w in walks)
    assert any(w not in seen for w in walks)


def test_replay_rebuilds_every_model_trial_with_its_logged_propensities(nb201, tmp_path):
    n_model = assert_replay_is_exact(nb201, tmp_path, MODEL, 40, 4, lambda t, _: is_model_trial(t, 12, 1.0, 12, 0.5))
    assert n_model == 14  # trials 12, 14, ..., 38
    # a model trial proposes a model not evaluated before (the floor moves an edge now and then)
    _, trials = load_trials(tmp_path)
    fresh = [tuple(tr.path) not in {tuple(x.path) for x in trials[:t]} for t, tr in enumerate(trials) if t >= 12]
    assert np.mean(fresh) > 0.8


def test_model_search_resumes_exactly(nb201, tmp_path):
    assert_resume_is_exact(nb201, tmp_path, MODEL)


def test_replay_rebuilds_expected_improvement_trials(nb201, tmp_path):
    options = {**MODEL, "model_acq": "ei"}
    assert (
        assert_replay_is_exact(nb201, tmp_path, options, 30, 5, lambda t, _: is_model_trial(t, 12, 1.0, 12, 0.5)) == 9
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"model": 1.5},
        {"model_after": -1},
        {"model_candidates": 0},
        {"model_uniform": 2.0},
        {"model_clip": 1.0},
        {"model_acq": "pi"},
    ],
)
def test_bad_model_options_are_config_errors(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        MarkovChain(nb201_grammar(), ChainConfig(**bad))


# ---------------------------------------------------------------- local moves picked by the surrogate
LOCAL_MODEL = {"local": 0.5, "local_after": 12, "local_pick": "model"}


def test_surrogate_local_move_is_the_best_scored_unevaluated_neighbour():
    g = nb201_grammar()
    rng = np.random.default_rng(0)
    # additive score: conv 3x3 everywhere is best; the incumbent has edge2 = conv 1x1 (one edge from the optimum)
    inc = tuple((f"edge{j}", 2 if j == 2 else 3) for j in range(6))
    paths = [tuple((f"edge{j}", int(rng.integers(5))) for j in range(6)) for _ in range(40)]
    paths = [p for p in dict.fromkeys(paths) if sum(i == 3 for _, i in p) < 5]
    ok = [(p, float(sum(i == 3 for _, i in p)) + 0.1 * rng.normal()) for p in paths] + [(inc, 5.0)]
    # the surrogate's pick reads no learned mass: a chain sure of edge2 (the "mass" pick) would never move it
    t = local_model_tables(g, ok, top=1, kappa=0.0)
    assert [int(np.argmax(t[f"edge{j}"])) for j in range(6)] == [3] * 6  # the optimum, a neighbour of inc
    assert all(v.sum() == 1.0 and v.max() == 1.0 for v in t.values())
    again = local_model_tables(g, ok, top=1, kappa=0.0)
    assert all(np.array_equal(again[s], v) for s, v in t.items())  # a pure function of the results
    # its neighbours all evaluated: the next incumbent's (top 2), never an evaluated model
    ok2 = ok + [(p, 4.0) for p in neighbours(g, inc)]
    t2 = local_model_tables(g, ok2, top=2, kappa=1.0)
    assert t2 and tuple((s, int(np.argmax(t2[s]))) for s in t2) not in {p for p, _ in ok2}
    assert local_model_tables(g, ok2, top=1, kappa=1.0) == {}
    assert local_model_tables(g, ok[:2]) == {}  # too few results


def test_neighbours_are_one_allowed_move_away():
    g = cnn_grammar()
    rng = np.random.default_rng(3)
    inc = tuple(MarkovChain(g).sample(rng)[1])
    nb = neighbours(g, inc)
    assert nb and len(set(nb)) == len(nb) and inc not in nb
    assert all(sum(a != b for a, b in zip(p, inc)) == 1 and len(p) == len(inc) for p in nb)
    assert len(neighbours(nb201_grammar(), tuple((f"edge{j}", 0) for j in range(6)))) == 24


def test_replay_rebuilds_every_surrogate_local_trial(nb201, tmp_path):
    n_local = assert_replay_is_exact(nb201, tmp_path, LOCAL_MODEL, 40, 4, lambda _, chain: chain._local)
    assert n_local == 14  # trials 13, 15, ..., 39, as with the default local moves


def test_surrogate_local_search_resumes_exactly(nb201, tmp_path):
    assert_resume_is_exact(nb201, tmp_path, {**LOCAL_MODEL, "restart": 20})


def test_bad_local_pick_is_a_config_error():
    with pytest.raises(ConfigError, match="local_pick"):
        MarkovChain(nb201_grammar(), ChainConfig(local_pick="gp"))
