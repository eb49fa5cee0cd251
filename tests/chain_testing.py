"""Checks shared by the chain's trial-mode tests (local moves, model trials): every sample keeps the floor and
the grammar's mask with its probabilities logged, a logged search replays with its exact propensities, and a
resumed search writes the same trials."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from openmindspore.automl import run_search
from openmindspore.automl.chain import MarkovChain
from openmindspore.automl.search import load_trials
from openmindspore.automl.strategies import MarkovSearch
from openmindspore.causal.effects import get_treatment
from openmindspore.causal.searchlog import log_units


def fit_on_noisy_results(chain: MarkovChain, rng: np.random.Generator, n: int = 20) -> list:
    """Fit ``chain`` on ``n`` of its own samples scored by their count of first choices plus N(0, 1) noise;
    returns the ``(path, score)`` results."""
    results = []
    for _ in range(n):
        _, path = chain.sample(rng)
        results.append((path, float(sum(i == 0 for _, i in path)) + rng.normal()))
    chain.fit(results)
    return results


def assert_samples_keep_floor_and_mask(chain: MarkovChain, grammar, rng: np.random.Generator, epsilon: float) -> None:
    """50 samples: at every step the distribution sums to 1, every allowed choice has >= ``epsilon``, and the
    logged probabilities are the ones used."""
    for _ in range(50):
        steps, path = chain.sample(rng)
        used: dict[str, int] = {}
        for s, (state, i) in zip(steps, path):
            p = chain.probs(state, "^", used)
            allowed = grammar.allowed(state, used)
            assert p.sum() == pytest.approx(1.0) and np.all(p[allowed] >= epsilon - 1e-12)
            assert s.p == pytest.approx(p[i]) and [s.probs[c.id] for c in grammar.states[state].choices] == list(p)
            for k in grammar.choice(state, i).count:
                used[k] = used.get(k, 0) + 1


def assert_replay_is_exact(space, out: Path, options: dict, budget: int, seed: int, count: Callable) -> int:
    """Run a markov search with ``options``, then rebuild the chain before every trial from the results so
    far: its probabilities are the logged ones, for every choice of every state, and `oms effects`' exact
    and Monte-Carlo propensities agree. Returns how many trials ``count(t, chain)`` counted."""
    res = run_search(space, "markov", budget, out_dir=out, seed=seed, strategy_options=options)
    config, trials = load_trials(out)
    assert config["strategy_options"] == options
    counted = 0
    for t, tr in enumerate(trials):
        chain: MarkovChain = MarkovSearch(space.grammar, **config["strategy_options"]).chain
        chain.fit((x.path, x.score if x.ok else None) for x in trials[:t])
        counted += bool(count(t, chain))
        # logged distributions = the probabilities actually used, for every choice of every state
        for s in tr.steps:
            p = chain.probs(s.state)
            assert [s.probs[c.id] for c in space.grammar.states[s.state].choices] == pytest.approx(list(p), abs=1e-12)
        assert chain.log_prob(tr.path) == pytest.approx(tr.log_propensity, abs=1e-9)
        assert tr.log_propensity == pytest.approx(sum(math.log(s.p) for s in tr.steps))
    assert [t.path for t in res.trials] == [t.path for t in trials]
    pred = get_treatment("skip")
    ex = log_units(config, trials, space.grammar, pred, "test.accuracy")
    mc = log_units(config, trials, space.grammar, pred, "test.accuracy", mc_samples=300, method="montecarlo")
    assert ex.exact and np.abs(mc.e - ex.e).max() < 0.15
    return counted


def assert_resume_is_exact(space, tmp: Path, options: dict) -> None:
    """A search stopped after 17 of 36 trials and resumed writes the trials of the uninterrupted one."""
    full = run_search(space, "markov", 36, out_dir=tmp / "full", seed=6, strategy_options=options)
    run_search(space, "markov", 17, out_dir=tmp / "part", seed=6, strategy_options=options)
    resumed = run_search(space, "markov", 36, out_dir=tmp / "part", seed=6, strategy_options=options)
    strip = [{k: v for k, v in t.to_json().items() if k != "duration_s"} for t in full.trials]
    assert strip == [{k: v for k, v in t.to_json().items() if k != "duration_s"} for t in resumed.trials]
