"""The search loop: determinism, trial log and propensities, failures, resume, strategies."""

import json
import math

import numpy as np
import pytest

from openmindspore.automl import make_space, run_search
from openmindspore.automl.search import load_trials
from openmindspore.automl.spaces.nb201 import NB201Space
from openmindspore.automl.strategies import RegularizedEvolution
from openmindspore.errors import ConfigError


@pytest.fixture(scope="module")
def nb201():
    return make_space("nb201")


def _strip(line: dict) -> dict:
    return {k: v for k, v in line.items() if k != "duration_s"}


@pytest.mark.parametrize("strategy", ["markov", "random", "evolution"])
def test_deterministic_under_seed(nb201, strategy):
    a = run_search(nb201, strategy, 40, seed=3)
    b = run_search(nb201, strategy, 40, seed=3)
    c = run_search(nb201, strategy, 40, seed=4)
    assert [_strip(t.to_json()) for t in a.trials] == [_strip(t.to_json()) for t in b.trials]
    assert [t.spec for t in a.trials] != [t.spec for t in c.trials]


def test_log_fields_and_propensities(nb201, tmp_path):
    res = run_search(nb201, "markov", 30, out_dir=tmp_path, seed=0)
    lines = [json.loads(x) for x in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert len(lines) == 30
    for rec in lines:
        assert {
            "trial",
            "strategy",
            "spec",
            "steps",
            "metrics",
            "seed",
            "duration_s",
            "status",
            "error",
            "log_propensity",
        } <= set(rec)
        assert rec["status"] == "ok" and set(rec["metrics"]) >= {"val", "test"}
        assert rec["log_propensity"] == pytest.approx(sum(math.log(s["p"]) for s in rec["steps"]))
        for s in rec["steps"]:
            assert s["p"] == pytest.approx(s["probs"][s["choice"]])
            assert sum(s["probs"].values()) == pytest.approx(1.0)
    # before the warm-up the chain is uniform; afterwards it has learned (non-uniform propensities)
    assert all(s["p"] == pytest.approx(0.2) for s in lines[0]["steps"])
    assert any(abs(s["p"] - 0.2) > 0.05 for s in lines[-1]["steps"])
    # the logged propensities are exactly those of the chain refitted on the log's history
    from openmindspore.automl.chain import MarkovChain

    chain = MarkovChain(nb201.grammar).fit((t.path, t.score) for t in res.trials[:25])
    assert res.trials[25].log_propensity == pytest.approx(chain.log_prob(res.trials[25].path))


def test_random_propensities_are_uniform(nb201):
    res = run_search(nb201, "random", 5, seed=0)
    assert all(s.p == 0.2 for t in res.trials for s in t.steps)


def test_evolution_mutates_one_decision_with_exact_propensity(nb201):
    res = run_search(nb201, "evolution", 60, seed=1, strategy_options={"population": 10, "sample": 3})
    children = [t for t in res.trials if t.parent is not None]
    assert len(children) == 50
    for t in children:
        parent = res.trials[t.parent]
        assert parent.ok and parent.trial < t.trial
        diff = [i for i, (a, b) in enumerate(zip(t.path, parent.path)) if a != b]
        assert len(diff) == 1
        mutated = [s for s in t.steps if s.origin == "mutated"]
        assert len(mutated) == 1 and mutated[0].p == pytest.approx(1 / (6 * 4))
        assert all(s.p == pytest.approx(5 / 6) for s in t.steps if s.origin == "inherited")


def test_resume_continues_exactly(nb201, tmp_path):
    full = run_search(nb201, "markov", 40, out_dir=tmp_path / "full", seed=5)
    run_search(nb201, "markov", 15, out_dir=tmp_path / "part", seed=5)
    # a crash mid-write leaves a truncated last line: it is ignored and re-evaluated
    with open(tmp_path / "part" / "trials.jsonl", "a") as f:
        f.write('{"trial": 15, "stra')
    resumed = run_search(nb201, "markov", 40, out_dir=tmp_path / "part", seed=5)
    assert [_strip(t.to_json()) for t in resumed.trials] == [_strip(t.to_json()) for t in full.trials]
    _, logged = load_trials(tmp_path / "part")
    assert [t.trial for t in logged] == list(range(40))
    with pytest.raises(ConfigError, match="same configuration"):
        run_search(nb201, "random", 50, out_dir=tmp_path / "part", seed=5)


class _Flaky(NB201Space):
    """NB-201 where every cell with avg_pool on edge 0 crashes (a failing trainer)."""

    def evaluate(self, spec, seed):
        if spec[0]["op"] == "avg_pool_3x3":
            raise RuntimeError("simulated out-of-memory")
        return super().evaluate(spec, seed)


@pytest.mark.parametrize("strategy", ["markov", "evolution"])
def test_failed_trials_are_logged_and_search_goes_on(tmp_path, strategy):
    res = run_search(_Flaky(), strategy, 40, out_dir=tmp_path, seed=0)
    failed = [t for t in res.trials if t.status == "failed"]
    assert len(res.trials) == 40 and failed
    assert all("simulated out-of-memory" in t.error and t.score is None for t in failed)
    assert res.best.ok and res.best.spec[0]["op"] != "avg_pool_3x3"
    assert all(res.trials[t.parent].ok for t in res.trials if t.parent is not None)


def test_bad_input_is_a_config_error(nb201):
    with pytest.raises(ConfigError, match="budget"):
        run_search(nb201, "markov", 0)
    with pytest.raises(ConfigError, match="strategy"):
        run_search(nb201, "hillclimb", 5)
    with pytest.raises(ConfigError, match="space"):
        run_search("transformer", "markov", 5)
    with pytest.raises(ConfigError, match="dataset"):
        run_search("sklearn-classifier", "markov", 5, dataset="no-such-data")
    with pytest.raises(ConfigError, match="chain options"):
        run_search(nb201, "markov", 5, strategy_options={"temperature": 2})


def test_markov_learns_better_than_random(nb201):
    """On NB-201 the learned chain beats uniform random search at 100 evaluations (12 paired seeds)."""
    best = nb201.all_true_scores().max()

    def regret(strategy, seed):
        r = run_search(nb201, strategy, 100, seed=seed)
        return best - nb201.true_score(r.best.spec)

    m = np.array([regret("markov", s) for s in range(12)])
    r = np.array([regret("random", s) for s in range(12)])
    assert m.mean() < r.mean() - 0.1, (m.mean(), r.mean())


def test_evolution_rejects_bad_options(nb201):
    with pytest.raises(ConfigError, match="population"):
        RegularizedEvolution(nb201.grammar, population=5, sample=6)
