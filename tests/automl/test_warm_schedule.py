"""The warm-only schedule of the chain (``ChainConfig.warm_local_after``, ``warm_model``,
``warm_model_after``): a warm-started chain moves to the incumbent's neighbours and asks the surrogate
earlier; a cold chain ignores the fields (the same trials); the logged propensities stay exact (replay,
resume)."""

import numpy as np
import pytest
from chain_testing import assert_replay_is_exact, assert_resume_is_exact

from openmindspore.automl import make_space, run_search
from openmindspore.automl.chain import ChainConfig, MarkovChain
from openmindspore.automl.prior import prior_from_results
from openmindspore.errors import ConfigError

EARLY = {"warm_local_after": 3, "warm_model": 0.5, "warm_model_after": 3}


@pytest.fixture(scope="module")
def nb201():
    return make_space("nb201")


@pytest.fixture(scope="module")
def table(nb201):
    """A prior table from a 40-trial search on cifar100 (the target is cifar10)."""
    res = run_search(make_space("nb201", "cifar100"), "markov", 40, seed=100)
    ok = [([(s.state, s.choice) for s in t.steps], t.score) for t in res.trials if t.ok]
    return prior_from_results(nb201.grammar, [ok])


def _strip(trials) -> list[dict]:
    return [{k: v for k, v in t.to_json().items() if k != "duration_s"} for t in trials]


def test_a_cold_chain_ignores_the_warm_schedule(nb201):
    plain = run_search(nb201, "markov", 25, seed=1)
    early = run_search(nb201, "markov", 25, seed=1, strategy_options={**EARLY, "warm_model": 1.0})
    assert _strip(plain.trials) == _strip(early.trials)


def test_a_prior_is_exploited_before_trial_10_and_replays_exactly(nb201, table, tmp_path):
    sched = {"warm": table, "warm_local_after": 5, "warm_model": 0.5, "warm_model_after": 5}
    early = assert_replay_is_exact(nb201, tmp_path, sched, 16, 4, lambda t, chain: t < 10 and chain._local)
    assert early == 4  # local moves at trials 6, 7, 9, a model trial at 5 or 8 (and so on)
    # the defaults: the cold chain's schedule, no local move nor model trial before 20
    assert assert_replay_is_exact(nb201, tmp_path / "d", {"warm": table}, 16, 4, lambda t, c: c._local) == 0


def test_the_schedule_holds_for_any_prior_and_only_with_one():
    nb = make_space("nb201")
    rng = np.random.default_rng(0)
    paths = [[(f"edge{e}", int(rng.integers(5))) for e in range(6)] for _ in range(12)]
    results = [(p, nb.true_score(nb.spec(p))) for p in paths]
    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    good = {f"edge{e}": dict(zip(ops, (0.02, 0.08, 0.3, 0.5, 0.1))) for e in range(6)}
    bad = {f"edge{e}": dict(zip(ops, (0.5, 0.1, 0.08, 0.02, 0.3))) for e in range(6)}
    cfg = {"warm_local_after": 0, "local": 1.0}
    agree = MarkovChain(nb.grammar, ChainConfig(warm={"probs": good}, **cfg)).fit(results)
    mislead = MarkovChain(nb.grammar, ChainConfig(warm={"probs": bad}, **cfg)).fit(results)
    cold = MarkovChain(nb.grammar, ChainConfig(**cfg)).fit(results)
    assert agree.warm_weight > 0.9 and mislead.warm_weight == 0.0
    # trial 12: a local move with either prior (a misleading one recovers sooner), none without a prior (from 20)
    assert agree._local and mislead._local and not cold._local


@pytest.mark.parametrize("bad", [{"warm_model": 1.5}, {"warm_local_after": -1}, {"warm_model_after": -3}])
def test_bad_warm_schedule_options_are_config_errors(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        MarkovChain(make_space("nb201").grammar, ChainConfig(**bad))


def test_warm_schedule_resumes_exactly(nb201, table, tmp_path):
    assert_resume_is_exact(nb201, tmp_path, {"warm": table, **EARLY})
