"""Multi-fidelity search (successive halving): schedule, log, exact resume, causal replay, bad input."""

import json
import math

import numpy as np
import pytest

from openmindspore.automl import run_search
from openmindspore.automl.halving import load_promotions, parse_halving
from openmindspore.automl.search import load_trials
from openmindspore.automl.spaces.nb201 import NB201Space
from openmindspore.causal.effects import estimate_effects
from openmindspore.cli.main import main
from openmindspore.errors import ConfigError


class Curve(NB201Space):
    """NAS-Bench-201 cells with a learning curve: a cell reaches its table accuracy as it trains for
    ``steps``, cells with more skip connections faster (so the ranking changes with the budget)."""

    budget_option = "steps"
    default_budget = 90
    calls: list[int] = []

    def evaluate(self, spec, seed):
        steps = int(self.options.get("steps", self.default_budget))
        Curve.calls.append(steps)
        speed = 1 + sum(e["op"] == "skip_connect" for e in spec)
        q = self.true_score(spec)
        noise = float(np.random.default_rng([seed, steps]).normal(0, 0.3))
        val = q * (1 - math.exp(-steps * speed / 40)) + noise
        return {"val": {"accuracy": val}, "test": {"accuracy": q * (1 - math.exp(-steps * speed / 40))}}


@pytest.fixture()
def curve():
    Curve.calls = []
    return Curve("cifar10", steps=90)


def _lines(path):
    return [{k: v for k, v in json.loads(x).items() if k != "duration_s"} for x in path.read_text().splitlines()]


def test_schedule_promotes_the_best_third_at_three_times_the_budget(curve, tmp_path):
    res = run_search(curve, "markov", 27, out_dir=tmp_path, seed=0, halving="3")
    assert res.config["halving"] == {"eta": 3, "rungs": 3, "option": "steps", "budgets": [10, 30, 90]}
    assert sorted(Curve.calls) == [10] * 27 + [30] * 9 + [90] * 3  # 3 x 270 steps: equal work per rung
    assert [t.budget for t in res.trials] == [10] * 27
    r1 = [p for p in res.promotions if p.rung == 1]
    r2 = [p for p in res.promotions if p.rung == 2]
    by_score = sorted(res.trials, key=lambda t: (-t.score, t.trial))
    assert sorted(p.promoted_from for p in r1) == sorted(t.trial for t in by_score[:9])
    assert sorted(p.promoted_from for p in r2) == sorted(
        p.promoted_from for p in sorted(r1, key=lambda p: (-p.score, p.trial))[:3]
    )
    best = max(r2, key=lambda p: p.score)
    assert res.best.trial == best.promoted_from and res.best.budget == 90 and res.best.score == best.score
    assert res.best.metrics == best.metrics and res.best.steps == res.trials[best.promoted_from].steps
    # the schedule changed the answer: the best at 90 steps is not simply the best at 10 steps
    assert best.promoted_from != by_score[0].trial
    # one record per model with its decisions and propensities; promotions carry no decision
    trials = _lines(tmp_path / "trials.jsonl")
    assert len(trials) == 27 and all(t["budget"] == 10 and t["log_propensity"] is not None for t in trials)
    promos = _lines(tmp_path / "promotions.jsonl")
    assert [(p["rung"], p["budget"]) for p in promos] == [(1, 30)] * 9 + [(2, 90)] * 3
    assert all("steps" not in p and "log_propensity" not in p for p in promos)
    assert all(p["spec"] == trials[p["promoted_from"]]["spec"] for p in promos)
    assert json.loads((tmp_path / "search.json").read_text())["halving"]["budgets"] == [10, 30, 90]


def test_the_strategy_learns_from_rung_zero_only_and_propensities_replay(curve, tmp_path):
    res = run_search(curve, "markov", 27, out_dir=tmp_path, seed=1, halving="3")
    from openmindspore.automl.chain import MarkovChain

    _, trials = load_trials(tmp_path)
    assert [t.to_json() for t in trials] == [t.to_json() for t in res.trials]
    for h in (20, 26):  # the chain refitted on the rung-0 history reproduces the logged propensity
        chain = MarkovChain(curve.grammar).fit((t.path, t.score) for t in trials[:h])
        assert trials[h].log_propensity == pytest.approx(chain.log_prob(trials[h].path))
    assert len(res.trials) == 27


def test_resume_is_exact_and_never_retrains_a_logged_promotion(curve, tmp_path):
    full = run_search(curve, "markov", 27, out_dir=tmp_path / "a", seed=2, halving="3")

    class Stop(Exception):
        pass

    seen = []

    def stop_after(rec):
        seen.append(rec)
        if len(seen) == 27 + 5:  # in rung 1, after 5 of its 9 promotions
            raise Stop

    with pytest.raises(Stop):
        run_search(curve, "markov", 27, out_dir=tmp_path / "b", seed=2, halving="3", on_trial=stop_after)
    assert len(load_promotions(tmp_path / "b")) == 5
    Curve.calls = []
    resumed = run_search(curve, "markov", 27, out_dir=tmp_path / "b", seed=2, halving="3")
    assert sorted(Curve.calls) == [30] * 4 + [90] * 3  # only what was missing
    for name in ("trials.jsonl", "promotions.jsonl"):
        a, b = _lines(tmp_path / "a" / name), _lines(tmp_path / "b" / name)
        assert sorted(a, key=json.dumps) == sorted(b, key=json.dumps)
    assert resumed.best.trial == full.best.trial and resumed.best.score == full.best.score
    Curve.calls = []  # resuming without --halving keeps the stored schedule (nothing left to train)
    again = run_search(curve, "markov", 27, out_dir=tmp_path / "b", seed=2)
    assert Curve.calls == [] and again.best.budget == 90 and len(again.promotions) == 12
    # another schedule on the same directory is a different configuration
    with pytest.raises(ConfigError, match="halving"):
        run_search(curve, "markov", 27, out_dir=tmp_path / "b", seed=2, halving="3,2")


def test_effects_replay_uses_the_lowest_fidelity_by_default_and_can_choose(tmp_path):
    sp = Curve("cifar10", steps=60)
    run_search(sp, "markov", 60, out_dir=tmp_path, seed=3, halving="2,2")
    lowest = estimate_effects(tmp_path, "avgpool", "val.accuracy", checks=False)
    assert lowest.info["n_ok"] == 60 and lowest.info["fidelity"] == 30
    # the default is exactly the analysis of the trials alone (promotions do not enter)
    (tmp_path / "promotions.jsonl").rename(tmp_path / "aside.jsonl")
    alone = estimate_effects(tmp_path, "avgpool", "val.accuracy", checks=False)
    assert [r["ate"] for r in alone.records] == [r["ate"] for r in lowest.records]
    (tmp_path / "aside.jsonl").rename(tmp_path / "promotions.jsonl")
    high = estimate_effects(tmp_path, "avgpool", "val.accuracy", checks=False, fidelity=60, min_ess=2)
    assert high.info["n_ok"] == 30 and high.info["fidelity"] == 60
    assert [r["ate"] for r in high.records] != [r["ate"] for r in lowest.records]
    # the Monte-Carlo replay refits the chain on the rung-0 history: it reproduces every logged propensity
    from openmindspore.causal.searchlog import log_units
    from openmindspore.causal.treatments import get_treatment

    config, trials = load_trials(tmp_path)
    units = log_units(config, trials, sp.grammar, get_treatment("skip"), "val.accuracy", 100, method="montecarlo")
    assert len(units.y) == 60
    with pytest.raises(ConfigError, match="--fidelity"):
        estimate_effects(tmp_path, "skip", "val.accuracy", checks=False, fidelity=45)


@pytest.mark.parametrize(
    ("value", "field"),
    [("1", "eta"), ("3,1", "rungs"), ("x", "--halving"), ("3,3,3", "--halving"), ({"eta": 0}, "eta")],
)
def test_bad_halving_values_name_the_field(value, field):
    with pytest.raises(ConfigError, match=field):
        parse_halving(value)


def test_budgets_that_cannot_be_divided_and_spaces_without_a_budget_are_errors(curve):
    with pytest.raises(ConfigError, match=r"--set steps=99 or 108") as e:
        run_search(Curve("cifar10", steps=100), "random", 9, halving="3")
    assert "divisible by eta**(rungs-1) = 9" in str(e.value)
    with pytest.raises(ConfigError, match="--budget"):
        run_search(curve, "random", 8, halving="3")
    with pytest.raises(ConfigError, match="step budget"):
        run_search(NB201Space("cifar10"), "random", 9, halving="3")
    assert Curve.calls == []


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--halving", "1"], "eta"),
        (["--halving", "3"], "step budget"),
    ],
)
def test_cli_bad_halving_is_one_line_exit_2(tmp_path, capsys, argv, needle):
    code = main(["search", "--space", "nb201", "--budget", "9", "--out", str(tmp_path / "s"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
