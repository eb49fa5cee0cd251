"""Restarts of the chain (``ChainConfig.restart``): the run schedule, a run that learns only from its own
results, exact propensities (a replay of a logged search), resume, bad values."""

import numpy as np
import pytest
from chain_testing import assert_replay_is_exact, assert_resume_is_exact, fit_on_noisy_results

from openmindspore.automl import make_space
from openmindspore.automl.chain import ChainConfig, MarkovChain
from openmindspore.automl.local import run_start
from openmindspore.automl.spaces.nb201 import nb201_grammar
from openmindspore.errors import ConfigError

RESTART = {"restart": 12, "local": 0.5, "local_after": 8, "warmup": 6}


@pytest.fixture(scope="module")
def nb201():
    return make_space("nb201")


def test_runs_double_in_length():
    assert [run_start(n, 0) for n in (0, 50, 500)] == [0, 0, 0]
    starts = [run_start(n, 10) for n in range(80)]
    assert starts == [0] * 10 + [10] * 20 + [30] * 40 + [70] * 10  # runs of 10, 20, 40, ...


def test_a_new_run_learns_only_from_its_own_results():
    g = nb201_grammar()
    rng = np.random.default_rng(0)
    plain = MarkovChain(g, ChainConfig(warmup=4))
    first = fit_on_noisy_results(plain, rng, 12)
    second = fit_on_noisy_results(plain, rng, 8)
    restarted = MarkovChain(g, ChainConfig(warmup=4, restart=12)).fit(first + second)
    fresh = MarkovChain(g, ChainConfig(warmup=4)).fit(second)
    assert restarted.table() == fresh.table()  # the first run's 12 results are forgotten
    before_cut = MarkovChain(g, ChainConfig(warmup=4, restart=12)).fit(first[:11])
    assert before_cut.table() == MarkovChain(g, ChainConfig(warmup=4)).fit(first[:11]).table()
    # the forgetting is real: the chain fitted on everything differs
    assert MarkovChain(g, ChainConfig(warmup=4)).fit(first + second).table() != restarted.table()


def test_replay_rebuilds_every_trial_across_restarts(nb201, tmp_path):
    counted = assert_replay_is_exact(nb201, tmp_path, RESTART, 40, 3, lambda t, _: run_start(t, 12) > 0)
    assert counted == 28  # trials 12-39 are in the second run


def test_search_with_restarts_resumes_exactly(nb201, tmp_path):
    assert_resume_is_exact(nb201, tmp_path, RESTART)


def test_negative_restart_is_a_config_error():
    with pytest.raises(ConfigError, match="restart"):
        MarkovChain(nb201_grammar(), ChainConfig(restart=-1))
